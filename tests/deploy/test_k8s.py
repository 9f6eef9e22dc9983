"""Kubernetes manifests (deploy/k8s): the base and the overlays render with `kubectl kustomize`,
every object validates against the Kubernetes schemas (strict, fixed version), and the manifests
agree with the server they deploy: ports (grpc 50051, http 8080 on the Deployment and the
dinov3-http Service, metrics 9464), probes, drain timing, the configuration file (checked by the
server itself), resources per overlay, security settings, the autoscaling metric.

Tools: kubectl 1.21+ (kustomize v4+; DINOV3_TEST_KUBECTL names another binary), the Python
package kubernetes-validate (requirements.txt), promtool (Debian's prometheus) and
build/bin/dinov3-server (BUILD_DIR). A missing tool fails the test; nothing is skipped.
"""

import copy
import functools
import os
import re
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "k8s"
SERVER = ROOT / os.environ.get("BUILD_DIR", "build") / "bin" / "dinov3-server"
KUBECTL = os.environ.get("DINOV3_TEST_KUBECTL", "kubectl")
KUBERNETES_VERSION = "1.30.0"  # the schemas every object is validated against
GRPC_SERVICE = "dinov3.v1.EmbeddingService"
HTTP_PORT = 8080  # the HTTP front doors' port (KServe's runtimes use 8080 too)
HPA_METRIC = "dinov3_inflight_requests"

TREES = ("base", "overlays/cpu", "overlays/gpu", "overlays/two-models")
EXPECTED_OBJECTS = {
    ("ConfigMap", "dinov3-config"),  # name before kustomize's hash suffix
    ("Deployment", "dinov3"),
    ("PersistentVolumeClaim", "dinov3-models"),
    ("Service", "dinov3-headless"),
    ("Service", "dinov3-http"),
    ("Service", "dinov3-metrics"),
    ("HorizontalPodAutoscaler", "dinov3"),
    ("PodDisruptionBudget", "dinov3"),
    ("ServiceMonitor", "dinov3"),
}
SERVER_LABELS = {"app.kubernetes.io/name": "dinov3", "app.kubernetes.io/component": "server"}


# ---------------------------------------------------------------------------------------------
# Tools


def run_tool(args, missing_hint, **kwargs):
    try:
        return subprocess.run(args, capture_output=True, text=True, timeout=120, **kwargs)
    except FileNotFoundError:
        pytest.fail(f"{args[0]} not found: {missing_hint}", pytrace=False)


def clean_env(**extra):
    """The test's environment without DINOV3_* variables (they would change the server's
    configuration), plus `extra`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("DINOV3_")}
    env.update(extra)
    return env


def require_server():
    if not (SERVER.is_file() and os.access(SERVER, os.X_OK)):
        pytest.fail(f"{SERVER} is missing: build the server first (scripts/build.sh)",
                    pytrace=False)


def print_config(args, env):
    """Runs dinov3-server --print_config; returns (returncode, parsed config or None, stderr)."""
    require_server()
    proc = run_tool([str(SERVER), *args, "--print_config"], "build the server (scripts/build.sh)",
                    env=env, cwd=ROOT)
    config = yaml.safe_load(proc.stdout) if proc.returncode == 0 else None
    return proc.returncode, config, proc.stderr


def kubernetes_validate():
    try:
        import kubernetes_validate as kv  # noqa: PLC0415 (a missing package fails, not errors)
    except ImportError:
        pytest.fail("the Python package kubernetes-validate is not installed: run scripts/setup.sh "
                    "(requirements.txt pins it)", pytrace=False)
    return kv


def port_of(address):
    assert not address.startswith("unix:"), f"{address}: a pod needs a TCP address"
    host, _, port = address.rpartition(":")
    assert host and port.isdigit(), f"{address}: expected HOST:PORT"
    return int(port)


# ---------------------------------------------------------------------------------------------
# Rendering and lookups


@functools.lru_cache(maxsize=None)
def kustomize(tree):
    """The finished `kubectl kustomize` of one tree, run once per tree for every test."""
    proc = run_tool([KUBECTL, "kustomize", str(K8S / tree)],
                    "install a kubectl with kustomize v4+ (kubectl 1.21+), or set "
                    "DINOV3_TEST_KUBECTL to a kubectl binary")
    assert proc.returncode == 0, f"kubectl kustomize {tree} failed:\n{proc.stderr}"
    return proc


@pytest.fixture(scope="module", params=TREES)
def rendered(request):
    """(tree, list of rendered objects) for one kustomization."""
    tree = request.param
    proc = kustomize(tree)
    objects = [o for o in yaml.safe_load_all(proc.stdout) if o]
    assert objects, f"kubectl kustomize {tree} rendered nothing"
    return tree, objects


def base_name(obj):
    name = obj["metadata"]["name"]
    if obj["kind"] == "ConfigMap":  # configMapGenerator appends -<hash>
        name = re.sub(r"-[a-z0-9]{10}$", "", name)
    return name


def find(objects, kind, name):
    found = [o for o in objects if o["kind"] == kind and base_name(o) == name]
    assert len(found) == 1, f"expected one {kind} {name}, found {len(found)}"
    return found[0]


def server_container(objects):
    deployment = find(objects, "Deployment", "dinov3")
    containers = deployment["spec"]["template"]["spec"]["containers"]
    [container] = [c for c in containers if c["name"] == "server"]
    return container


def pod_spec(objects):
    return find(objects, "Deployment", "dinov3")["spec"]["template"]["spec"]


def container_port(container, name):
    [port] = [p["containerPort"] for p in container["ports"] if p.get("name") == name]
    return port


def config_file(objects):
    """(path inside the container, file content) of the server's config file."""
    container = server_container(objects)
    env = {e["name"]: e for e in container.get("env", [])}
    assert "DINOV3_CONFIG" in env, "the server container must set DINOV3_CONFIG"
    config_path = env["DINOV3_CONFIG"]["value"]
    config_map = find(objects, "ConfigMap", "dinov3-config")
    volumes = {v["name"]: v for v in pod_spec(objects)["volumes"]}
    for mount in container["volumeMounts"]:
        volume = volumes[mount["name"]]
        if "configMap" in volume and config_path.startswith(mount["mountPath"].rstrip("/") + "/"):
            assert volume["configMap"]["name"] == config_map["metadata"]["name"], \
                "the config volume must use the generated ConfigMap"
            assert mount.get("readOnly") is True
            key = config_path[len(mount["mountPath"].rstrip("/")) + 1:]
            assert key in config_map["data"], f"ConfigMap has no key {key} for {config_path}"
            return config_path, config_map["data"][key]
    pytest.fail(f"DINOV3_CONFIG={config_path} is not on a mounted ConfigMap")


@pytest.fixture(scope="module")
def server_defaults():
    code, config, stderr = print_config([], clean_env(DINOV3_MODEL_PATH="x"))
    assert code == 0, f"dinov3-server --print_config failed:\n{stderr}"
    return config


@pytest.fixture(scope="module")
def effective(rendered, tmp_path_factory):
    """The configuration the server in the pod would run with: the rendered config file, found
    through the container's environment (DINOV3_CONFIG and any other DINOV3_* it sets)."""
    tree, objects = rendered
    _, content = config_file(objects)
    path = tmp_path_factory.mktemp("k8s") / "server.yaml"
    path.write_text(content)
    env = clean_env()
    for entry in server_container(objects).get("env", []):
        assert "value" in entry, f"{entry['name']}: only literal env values are checked"
        env[entry["name"]] = entry["value"]
    env["DINOV3_CONFIG"] = str(path)
    code, config, stderr = print_config([], env)
    assert code == 0, f"{tree}: the server refuses the pod's configuration:\n{stderr}"
    return config


# ---------------------------------------------------------------------------------------------
# Schemas

# The Prometheus operator's ServiceMonitor (monitoring.coreos.com/v1), limited to the fields
# these manifests may use; anything else is an error, as in the strict Kubernetes schemas.
_NAME = {"type": "string", "pattern": r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$", "maxLength": 63}
_LABELS = {"type": "object", "additionalProperties": {"type": "string"}}
_DURATION = {"type": "string", "pattern": r"^[0-9]+(ms|s|m|h)$"}
SERVICE_MONITOR_SCHEMA = {
    "type": "object",
    "additionalProperties": False,
    "required": ["apiVersion", "kind", "metadata", "spec"],
    "properties": {
        "apiVersion": {"const": "monitoring.coreos.com/v1"},
        "kind": {"const": "ServiceMonitor"},
        "metadata": {
            "type": "object",
            "additionalProperties": False,
            "required": ["name"],
            "properties": {"name": _NAME, "namespace": _NAME, "labels": _LABELS,
                           "annotations": _LABELS},
        },
        "spec": {
            "type": "object",
            "additionalProperties": False,
            "required": ["selector", "endpoints"],
            "properties": {
                "selector": {
                    "type": "object",
                    "additionalProperties": False,
                    "required": ["matchLabels"],
                    "properties": {"matchLabels": _LABELS},
                },
                "namespaceSelector": {
                    "type": "object",
                    "additionalProperties": False,
                    "properties": {"any": {"type": "boolean"},
                                   "matchNames": {"type": "array", "items": _NAME}},
                },
                "jobLabel": {"type": "string"},
                "endpoints": {
                    "type": "array",
                    "minItems": 1,
                    "items": {
                        "type": "object",
                        "additionalProperties": False,
                        "required": ["port"],
                        "properties": {
                            "port": {"type": "string", "minLength": 1},  # a Service port name
                            "path": {"type": "string", "pattern": "^/"},
                            "scheme": {"enum": ["http", "https"]},
                            "interval": _DURATION,
                            "scrapeTimeout": _DURATION,
                            "honorLabels": {"type": "boolean"},
                        },
                    },
                },
            },
        },
    },
}


def validate_object(obj):
    """Raises if the object does not match its schema."""
    if obj["kind"] == "ServiceMonitor":
        import jsonschema  # noqa: PLC0415 (installed with kubernetes-validate)
        jsonschema.Draft202012Validator(SERVICE_MONITOR_SCHEMA).validate(obj)
        return
    kv = kubernetes_validate()
    version = kv.validate(obj, KUBERNETES_VERSION, strict=True)
    assert version == "1.30", f"validated against {version}, not {KUBERNETES_VERSION}"


# ---------------------------------------------------------------------------------------------
# Tests


def test_renders_the_expected_objects(rendered):
    tree, objects = rendered
    names = [(o["kind"], base_name(o)) for o in objects]
    assert len(names) == len(set(names)), f"{tree}: duplicate objects {names}"
    assert set(names) == EXPECTED_OBJECTS, f"{tree}: rendered {sorted(names)}"


@pytest.mark.parametrize("tree", TREES)
def test_renders_without_deprecation_warnings(tree):
    """kustomize warns on every render about deprecated fields (bases, patchesStrategicMerge,
    commonLabels, vars, ...); the kustomizations use none of them."""
    warnings = [line for line in kustomize(tree).stderr.splitlines()
                if "warning" in line.lower() or "deprecated" in line.lower()]
    assert not warnings, f"kubectl kustomize {tree} warns:\n" + "\n".join(warnings)


def test_every_object_validates(rendered):
    tree, objects = rendered
    errors = []
    for obj in objects:
        try:
            validate_object(obj)
        except Exception as e:  # noqa: BLE001 (collect every object's error)
            errors.append(f"{obj['kind']}/{obj['metadata']['name']}: "
                          f"{getattr(e, 'message', None) or e}")
    assert not errors, f"{tree}:\n" + "\n".join(errors)


@pytest.mark.parametrize("kind, mutate", [
    ("Deployment", lambda o: o["spec"]["template"]["spec"]["containers"][0]["readinessProbe"]
     ["grpc"].update(prot=50051)),
    ("Deployment", lambda o: o["spec"]["template"]["spec"]["containers"][0]["readinessProbe"]
     ["grpc"].update(port="grpc")),
    ("HorizontalPodAutoscaler", lambda o: o["spec"].update(minReplica=2)),
    ("ServiceMonitor", lambda o: o["spec"]["endpoints"][0].update(port=9464)),
    ("ServiceMonitor", lambda o: o["spec"].update(endpoint=[])),
])
def test_validation_rejects_mistakes(rendered, kind, mutate):
    """The validation is strict: a misspelt field or a wrong type is an error."""
    _, objects = rendered
    [obj] = [copy.deepcopy(o) for o in objects if o["kind"] == kind]
    mutate(obj)
    with pytest.raises(Exception):  # noqa: B017 (kubernetes_validate's or jsonschema's error)
        validate_object(obj)


def test_server_accepts_the_config_file(rendered, tmp_path):
    tree, objects = rendered
    _, content = config_file(objects)
    path = tmp_path / "server.yaml"
    path.write_text(content)
    code, config, stderr = print_config([f"--config={path}"], clean_env())  # no MODEL_PATH
    assert code == 0, f"{tree}: dinov3-server --config=server.yaml --print_config:\n{stderr}"
    file_keys = yaml.safe_load(content)
    assert file_keys["model"].get("path") or file_keys.get("models"), \
        "model.path or a models list must be set in the file"
    server = file_keys["server"]
    for key in ("drain_seconds", "max_connection_age_seconds",
                "max_connection_age_grace_seconds"):
        assert key in server, f"{tree}: server.{key} must be set explicitly in server.yaml"


def test_effective_config(rendered, effective):
    tree, objects = rendered
    assert effective["server"]["listen"] == "0.0.0.0:50051"
    assert effective["metrics"]["listen"] == "0.0.0.0:9464"
    assert effective["http"]["enabled"] is True
    assert effective["http"]["listen"] == f"0.0.0.0:{HTTP_PORT}"
    assert effective["metrics"]["enabled"] is True
    assert effective["logging"]["format"] == "json"
    assert effective["server"]["drain_seconds"] == 20.0
    container = server_container(objects)
    [models] = [m for m in container["volumeMounts"] if m["name"] == "models"]
    if tree == "overlays/two-models":
        served = effective["models"]
        assert [m["name"] for m in served] == ["small", "large"] and not effective["model"]["path"]
        paths = [m["path"] for m in served]
    else:
        assert effective["model"]["path"] == "/models/dinov3.pt", \
            f"{tree}: the pod would load {effective['model']['path']}"
        paths = [effective["model"]["path"]]
    for path in paths:  # every export on the models volume
        assert path.startswith(models["mountPath"].rstrip("/") + "/"), (tree, path)


def test_grpc_port_and_probes(rendered, effective, server_defaults):
    tree, objects = rendered
    container = server_container(objects)
    grpc_port = container_port(container, "grpc")
    assert grpc_port == port_of(effective["server"]["listen"]), \
        f"{tree}: containerPort grpc {grpc_port} != server.listen {effective['server']['listen']}"
    assert grpc_port == port_of(server_defaults["server"]["listen"]), \
        "containerPort grpc differs from the server's default port"
    expected_service = {"readinessProbe": GRPC_SERVICE, "livenessProbe": "",
                        "startupProbe": None}
    for probe_name, service in expected_service.items():
        probe = container.get(probe_name)
        assert probe and "grpc" in probe, f"{tree}: {probe_name} must be a gRPC probe"
        assert probe["grpc"]["port"] == grpc_port, f"{tree}: {probe_name} port"
        if service is not None:
            assert probe["grpc"].get("service") == service, f"{tree}: {probe_name} service"
    startup = container["startupProbe"]
    assert startup["failureThreshold"] * startup["periodSeconds"] >= 300, \
        "the startupProbe must allow at least 5 min for model load and warm-up"
    # The health service name is the API's: package dinov3.v1, service EmbeddingService.
    proto = (ROOT / "proto" / "dinov3" / "v1" / "embedding.proto").read_text()
    package, _, service = GRPC_SERVICE.rpartition(".")
    assert re.search(rf"^package {re.escape(package)};", proto, re.M)
    assert re.search(rf"^service {service}\b", proto, re.M)
    # Headless Service: DNS gives the pod IPs, so clients use the Service port on the pods.
    headless = find(objects, "Service", "dinov3-headless")
    assert headless["spec"]["clusterIP"] == "None"
    assert headless["spec"].get("publishNotReadyAddresses") is False
    [port] = headless["spec"]["ports"]
    assert port["name"] == "grpc" and port["port"] == grpc_port
    assert port["targetPort"] in ("grpc", grpc_port)


def test_http_port_and_service(rendered, effective):
    """The HTTP front doors listen on the pod's addresses at 8080, which the container names
    http and the dinov3-http Service exposes; gRPC and HTTP share one TLS setting."""
    tree, objects = rendered
    container = server_container(objects)
    http_port = container_port(container, "http")
    assert http_port == HTTP_PORT == port_of(effective["http"]["listen"]), \
        f"{tree}: containerPort http {http_port} != http.listen {effective['http']['listen']}"
    assert effective["http"]["listen"].rpartition(":")[0] == \
        effective["server"]["listen"].rpartition(":")[0] == "0.0.0.0"
    tls = effective["tls"]
    # Both listen on every address: either TLS for both, or plaintext allowed for both.
    assert bool(tls["cert_file"]) or tls["allow_plaintext"] is True, tree
    ports = [(p["name"], p["containerPort"]) for p in container["ports"]]
    assert len({name for name, _ in ports}) == len({port for _, port in ports}) == len(ports), \
        f"{tree}: container ports {ports} repeat a name or a number"
    service = find(objects, "Service", "dinov3-http")
    assert service["spec"].get("type", "ClusterIP") == "ClusterIP"
    [port] = service["spec"]["ports"]
    assert port["name"] == "http" and port["port"] == HTTP_PORT
    assert port["targetPort"] in ("http", http_port)
    assert port.get("appProtocol") == ("https" if tls["cert_file"] else "http")
    # The HTTP port stays off the gRPC and metrics Services.
    for name in ("dinov3-headless", "dinov3-metrics"):
        targets = {p["targetPort"] for p in find(objects, "Service", name)["spec"]["ports"]}
        assert not targets & {"http", http_port}, f"{tree}: {name} exposes the HTTP port"


def test_metrics_port_service_and_monitor(rendered, effective, server_defaults):
    tree, objects = rendered
    container = server_container(objects)
    metrics_port = container_port(container, "metrics")
    assert metrics_port == port_of(effective["metrics"]["listen"])
    assert metrics_port == port_of(server_defaults["metrics"]["listen"]) == 9464
    service = find(objects, "Service", "dinov3-metrics")
    assert service["spec"].get("type", "ClusterIP") == "ClusterIP"
    [port] = service["spec"]["ports"]
    target = port["targetPort"]
    if isinstance(target, str):
        target = container_port(container, target)
    assert target == metrics_port, f"{tree}: dinov3-metrics targets port {target}"
    monitor = find(objects, "ServiceMonitor", "dinov3")
    [endpoint] = monitor["spec"]["endpoints"]
    assert endpoint["port"] == port["name"] == "metrics"
    assert endpoint.get("path", "/metrics") == "/metrics"
    assert endpoint["interval"] == "15s"
    selector = monitor["spec"]["selector"]["matchLabels"]

    def selects(svc):
        return selector.items() <= svc["metadata"].get("labels", {}).items()

    assert selects(service), "the ServiceMonitor must select dinov3-metrics"
    assert not selects(find(objects, "Service", "dinov3-headless")), \
        "the ServiceMonitor must not select the gRPC Service"


def test_selectors_match_the_pods(rendered):
    tree, objects = rendered
    deployment = find(objects, "Deployment", "dinov3")
    assert SERVER_LABELS.items() <= deployment["metadata"]["labels"].items()
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert SERVER_LABELS.items() <= pod_labels.items()
    assert deployment["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()
    assert "replicas" not in deployment["spec"], "the HorizontalPodAutoscaler owns replicas"
    for name in ("dinov3-headless", "dinov3-http", "dinov3-metrics"):
        selector = find(objects, "Service", name)["spec"]["selector"]
        assert selector.items() <= pod_labels.items(), f"{tree}: {name} selects no pod"
    pdb = find(objects, "PodDisruptionBudget", "dinov3")
    assert pdb["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()
    assert "maxUnavailable" in pdb["spec"] or "minAvailable" in pdb["spec"]


def test_termination_outlasts_prestop_and_drain(rendered, effective):
    tree, objects = rendered
    container = server_container(objects)
    command = container["lifecycle"]["preStop"]["exec"]["command"]
    assert command[0] == "sleep" and len(command) == 2, f"preStop: {command}"
    pre_stop = float(command[1])
    assert pre_stop > 0
    grace = pod_spec(objects)["terminationGracePeriodSeconds"]
    drain = effective["server"]["drain_seconds"]
    assert grace > pre_stop + drain, \
        f"{tree}: terminationGracePeriodSeconds {grace} <= preStop {pre_stop} + drain {drain}"


def test_security_context(rendered):
    tree, objects = rendered
    spec = pod_spec(objects)
    assert spec["enableServiceLinks"] is False
    pod = spec["securityContext"]
    assert pod["runAsNonRoot"] is True
    assert pod["runAsUser"] == pod["runAsGroup"] == pod["fsGroup"] == 10001
    assert pod["seccompProfile"] == {"type": "RuntimeDefault"}
    for container in spec["containers"] + spec.get("initContainers", []):
        sc = container["securityContext"]
        assert sc["allowPrivilegeEscalation"] is False, container["name"]
        assert sc["readOnlyRootFilesystem"] is True, container["name"]
        assert sc["capabilities"]["drop"] == ["ALL"], container["name"]
        assert "add" not in sc["capabilities"], container["name"]
    volumes = {v["name"]: v for v in spec["volumes"]}
    [tmp] = [m for m in server_container(objects)["volumeMounts"] if m["mountPath"] == "/tmp"]
    assert "emptyDir" in volumes[tmp["name"]], "/tmp must be an emptyDir (read-only root)"


def test_model_volume(rendered):
    tree, objects = rendered
    pvc = find(objects, "PersistentVolumeClaim", "dinov3-models")
    assert pvc["spec"]["accessModes"] == ["ReadWriteMany"]  # filled once, read by all
    assert pvc["spec"]["resources"]["requests"]["storage"]
    volumes = {v["name"]: v for v in pod_spec(objects)["volumes"]}
    claim = volumes["models"]["persistentVolumeClaim"]
    assert claim["claimName"] == pvc["metadata"]["name"] and claim["readOnly"] is True
    [mount] = [m for m in server_container(objects)["volumeMounts"] if m["name"] == "models"]
    assert mount["mountPath"] == "/models" and mount["readOnly"] is True


def cpu_count(quantity):
    quantity = str(quantity)
    return int(quantity[:-1]) / 1000 if quantity.endswith("m") else float(quantity)


def test_resources_devices_and_threads(rendered, effective):
    tree, objects = rendered
    container = server_container(objects)
    resources = container["resources"]
    for part in ("requests", "limits"):
        assert {"cpu", "memory"} <= resources[part].keys(), f"{tree}: {part}"
    devices = effective["model"]["devices"]
    gpus = resources["limits"].get("nvidia.com/gpu")
    image = container["image"]
    if tree == "overlays/gpu":
        assert gpus is not None and int(gpus) >= 1, "the gpu overlay must request nvidia.com/gpu"
        assert resources["requests"].get("nvidia.com/gpu") == gpus
        assert devices and all(re.fullmatch(r"cuda(:\d+)?", d) for d in devices), devices
        assert len(devices) <= int(gpus)
        assert effective["model"]["instances_per_device"] == 2
        tolerations = pod_spec(objects).get("tolerations", [])
        assert any(t.get("key") == "nvidia.com/gpu" for t in tolerations)
        assert image == "dinov3-server:cuda"
    else:
        assert gpus is None and "nvidia.com/gpu" not in resources["requests"], tree
        assert devices == ["cpu"], devices
        if tree in ("overlays/cpu", "overlays/two-models"):
            assert image == "dinov3-server:cpu"
    # Thread counts of 0 follow the container's CPU limit (server/common/usable_cpus.h: the
    # cgroup CPU quota and the affinity mask); counts set explicitly must fit within it, and
    # when both pools are set, so must their sum.
    cpus = cpu_count(resources["limits"]["cpu"])
    threads = effective["server"]["preprocess_threads"]
    assert threads <= cpus, f"{tree}: {threads} decode threads for a limit of {cpus} CPUs"
    if devices == ["cpu"]:
        intra = effective["model"]["intra_op_threads"] * effective["model"]["instances_per_device"]
        assert intra <= cpus, f"{tree}: {intra} intra-op threads for a limit of {cpus} CPUs"
        if threads > 0 and intra > 0:
            assert threads + intra <= cpus, f"{tree}: {threads} + {intra} threads for {cpus} CPUs"


def exported_metrics():
    source = (ROOT / "server" / "metrics" / "server_metrics.cc").read_text()
    return set(re.findall(r'"(dinov3_[a-z0-9_]+)"', source))


def test_hpa_scales_on_an_exported_metric(rendered):
    tree, objects = rendered
    hpa = find(objects, "HorizontalPodAutoscaler", "dinov3")
    target = hpa["spec"]["scaleTargetRef"]
    assert (target["kind"], target["name"]) == ("Deployment", "dinov3")
    assert hpa["spec"]["minReplicas"] == 2 and hpa["spec"]["maxReplicas"] == 10
    [metric] = hpa["spec"]["metrics"]
    assert metric["type"] == "Pods"
    assert metric["pods"]["metric"]["name"] == HPA_METRIC
    assert metric["pods"]["target"]["type"] == "AverageValue"
    assert HPA_METRIC in exported_metrics(), f"the server exports no {HPA_METRIC}"
    assert hpa["spec"]["behavior"]["scaleDown"]["stabilizationWindowSeconds"] == 300


def test_prometheus_adapter_rule(tmp_path):
    values = yaml.safe_load((K8S / "prometheus-adapter" / "rules.yaml").read_text())
    [rule] = [r for r in values["rules"]["custom"] if HPA_METRIC in r["seriesQuery"]]
    assert rule["name"]["as"] == HPA_METRIC
    assert re.fullmatch(rule["name"]["matches"], HPA_METRIC)
    assert {"namespace", "pod"} <= set(rule["resources"]["overrides"])
    assert 'namespace!=""' in rule["seriesQuery"] and 'pod!=""' in rule["seriesQuery"]
    query = rule["metricsQuery"]
    for placeholder in ("<<.Series>>", "<<.LabelMatchers>>", "<<.GroupBy>>"):
        assert placeholder in query, f"metricsQuery lacks {placeholder}"
    # The query, filled in as the adapter does, must be valid PromQL.
    expr = (query.replace("<<.Series>>", HPA_METRIC)
            .replace("<<.LabelMatchers>>", 'namespace="default",pod=~"dinov3-a|dinov3-b"')
            .replace("<<.GroupBy>>", "pod"))
    rules = tmp_path / "rules.yaml"
    rules.write_text(yaml.safe_dump({"groups": [{"name": "adapter", "rules": [
        {"record": "dinov3:adapter_query", "expr": expr}]}]}))
    proc = run_tool(["promtool", "check", "rules", str(rules)],
                    "install Debian's prometheus (scripts/debian-test-packages.txt)")
    assert proc.returncode == 0, f"{expr}\n{proc.stdout}{proc.stderr}"
