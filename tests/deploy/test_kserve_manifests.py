"""KServe example (deploy/kserve): the ServingRuntime and the InferenceService render with
`kubectl kustomize`, match KServe's API, agree with each other and with the server they run.

Schema: no PyPI package ships KServe's CRDs (the kserve wheel, 0.19-0.21, holds neither the CRD
YAML nor an OpenAPI document). What it does ship is the Python API models generated from those
CRDs' OpenAPI (kserve.models: V1beta1InferenceService, V1alpha1ServingRuntime, ...), with every
field's JSON name and type and a check of the required ones. The objects are checked against
them strictly: every key must be a field of its model, every value of the field's type, every
required field present; nested Kubernetes types (V1Container, V1ObjectMeta, V1Probe, ...) are
validated with jsonschema against the strict Kubernetes schemas that kubernetes-validate bundles
(the version test_k8s.py uses). Not checked, because only the CRDs carry them: KServe's enums,
patterns and limits beyond the required fields (e.g. the allowed protocolVersion values,
minReplicas >= 0), and the KServe webhooks' rules (e.g. one port per container in Serverless
mode); those the agreement tests below check for this example.

Agreement: the InferenceService names the runtime and a model format / protocol it supports;
the runtime's container is KServe's kserve-container with HTTP on containerPort 8080 (first) and
a port named h2c; the server, given the image's config file and the container's args and env
(with KServe's {{.Name}} filled in), accepts them (--print_config) and then listens where the
ports say, loads its model from /mnt/models (where KServe's storage-initializer puts storageUri)
and serves it under the InferenceService's name.

Tools: kubectl (kustomize v4+), the Python packages kserve (installed without its dependencies,
see requirements.txt), kubernetes-validate and jsonschema, build/bin/dinov3-server (BUILD_DIR).
A missing tool fails the test; nothing is skipped.
"""
import copy
import functools
import importlib.util
import json
import os
import re
import subprocess
import sys
import types
from importlib import metadata, resources
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
KSERVE_DIR = ROOT / "deploy" / "kserve"
SERVER = ROOT / os.environ.get("BUILD_DIR", "build") / "bin" / "dinov3-server"
KUBECTL = os.environ.get("DINOV3_TEST_KUBECTL", "kubectl")
KSERVE_VERSION = "0.21.0"  # requirements.txt
KUBERNETES_SCHEMAS = "v1.30.0-local-strict"  # test_k8s.py's KUBERNETES_VERSION
HTTP_PORT = 8080  # where KServe (and Knative) send HTTP traffic
API = {  # kind -> (apiVersion, kserve.models class)
    "ServingRuntime": ("serving.kserve.io/v1alpha1", "V1alpha1ServingRuntime"),
    "InferenceService": ("serving.kserve.io/v1beta1", "V1beta1InferenceService"),
}
PRIMITIVES = {"str": (str,), "int": (int,), "bool": (bool,), "float": (int, float),
              "object": (object,), "ResourceQuantity": (str, int, float)}


# ---------------------------------------------------------------------------------------------
# KServe's generated models and the Kubernetes schemas


@functools.lru_cache(maxsize=None)
def kserve_models():
    """The kserve.models module, imported without kserve/__init__.py (which starts importing the
    model server: fastapi, uvicorn, pandas, ... none of which the models need)."""
    try:
        version = metadata.version("kserve")
    except metadata.PackageNotFoundError:
        pytest.fail(f"the Python package kserve is not installed: .venv/bin/pip install "
                    f"--no-deps kserve=={KSERVE_VERSION} (requirements.txt says why --no-deps)",
                    pytrace=False)
    assert version == KSERVE_VERSION, f"kserve {version} installed, {KSERVE_VERSION} expected"
    if "kserve" not in sys.modules:
        spec = importlib.util.find_spec("kserve")
        package = types.ModuleType("kserve")
        package.__path__ = list(spec.submodule_search_locations)
        sys.modules["kserve"] = package
    import kserve.models  # noqa: PLC0415
    return kserve.models


@functools.lru_cache(maxsize=None)
def kubernetes_definitions():
    """(registry of the strict Kubernetes definitions, {Python client type name: definition})."""
    try:
        import jsonschema  # noqa: F401, PLC0415
        import referencing  # noqa: PLC0415
    except ImportError:
        pytest.fail("jsonschema is missing (installed with kubernetes-validate, "
                    "requirements.txt)", pytrace=False)
    try:
        files = resources.files("kubernetes_validate") / "kubernetes-json-schema"
    except ModuleNotFoundError:
        pytest.fail("the Python package kubernetes-validate is not installed (requirements.txt)",
                    pytrace=False)
    definitions = json.loads((files / KUBERNETES_SCHEMAS / "_definitions.json").read_text())
    registry = referencing.Resource.from_contents(definitions) @ referencing.Registry()
    names = {}
    # io.k8s.api.core.v1.Container -> V1Container (the client's name; core and meta win a
    # clash) and K8sIoApiCoreV1Container (the name kserve's models use for the other groups).
    preferred = ("io.k8s.api.core.", "io.k8s.apimachinery.pkg.apis.meta.")
    for key in sorted(definitions["$defs"], key=lambda k: not k.startswith(preferred)):
        parts = key.split(".")
        names.setdefault(parts[-2].capitalize() + parts[-1], key)
        names["".join(p[:1].upper() + p[1:] for p in parts)] = key
    return registry, names


def validate_kubernetes(value, type_name, path):
    import jsonschema  # noqa: PLC0415
    registry, names = kubernetes_definitions()
    if type_name not in names:
        raise AssertionError(f"{path}: type {type_name} is neither KServe's nor Kubernetes'")
    schema = {"$id": "https://kubernetes.io/api/check.json",
              "$ref": f"/api/_definitions.json#/$defs/{names[type_name]}"}
    errors = sorted(jsonschema.Draft202012Validator(schema, registry=registry).iter_errors(value),
                    key=lambda e: list(e.absolute_path))
    if errors:
        error = errors[0]
        where = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in error.absolute_path)
        raise AssertionError(f"{path}{where}: {error.message} ({type_name})")


def check(value, type_name, path):
    """Validates `value` (parsed YAML) as the OpenAPI type `type_name` of kserve.models; returns
    the model object (or the value). Raises AssertionError or ValueError (a required field)."""
    models = kserve_models()
    if match := re.fullmatch(r"list\[(.+)\]", type_name):
        assert isinstance(value, list), f"{path}: expected a list, got {value!r}"
        return [check(v, match.group(1), f"{path}[{i}]") for i, v in enumerate(value)]
    if match := re.fullmatch(r"dict\(str, (.+)\)", type_name):
        assert isinstance(value, dict), f"{path}: expected a map, got {value!r}"
        return {k: check(v, match.group(1), f"{path}.{k}") for k, v in value.items()}
    if type_name in PRIMITIVES:
        ok = isinstance(value, PRIMITIVES[type_name])
        if type_name in ("int", "float"):
            ok = ok and not isinstance(value, bool)
        assert ok, f"{path}: expected {type_name}, got {value!r}"
        return value
    model = getattr(models, type_name, None)
    if model is None:
        validate_kubernetes(value, type_name, path)
        return value
    assert isinstance(value, dict), f"{path}: expected a {type_name} object, got {value!r}"
    fields = {json_name: name for name, json_name in model.attribute_map.items()}
    unknown = sorted(set(value) - set(fields))
    assert not unknown, f"{path}: {type_name} has no field(s) {unknown}"
    kwargs = {fields[k]: check(v, model.openapi_types[fields[k]], f"{path}.{k}")
              for k, v in value.items()}
    try:
        return model(**kwargs)  # the generated setters refuse a missing required field
    except ValueError as e:
        raise AssertionError(f"{path}: {e}") from None


def validate_object(obj):
    kind = obj.get("kind")
    assert kind in API, f"unexpected kind {kind}"
    api_version, model = API[kind]
    assert obj.get("apiVersion") == api_version, f"{kind}: apiVersion {obj.get('apiVersion')}"
    assert "status" not in obj, f"{kind}: status is the controller's"
    return check(obj, model, kind)


# ---------------------------------------------------------------------------------------------
# The manifests


def run_tool(args, hint, **kwargs):
    try:
        return subprocess.run(args, capture_output=True, text=True, timeout=120, **kwargs)
    except FileNotFoundError:
        pytest.fail(f"{args[0]} not found: {hint}", pytrace=False)


@pytest.fixture(scope="module")
def rendered():
    proc = run_tool([KUBECTL, "kustomize", str(KSERVE_DIR)],
                    "install a kubectl with kustomize v4+ (or set DINOV3_TEST_KUBECTL)")
    assert proc.returncode == 0, f"kubectl kustomize deploy/kserve failed:\n{proc.stderr}"
    warnings = [line for line in proc.stderr.splitlines()
                if "warning" in line.lower() or "deprecated" in line.lower()]
    assert not warnings, "\n".join(warnings)
    objects = [o for o in yaml.safe_load_all(proc.stdout) if o]
    kinds = sorted(o["kind"] for o in objects)
    assert kinds == ["InferenceService", "ServingRuntime"], kinds
    return {o["kind"]: o for o in objects}


@pytest.fixture(scope="module")
def runtime(rendered):
    return rendered["ServingRuntime"]


@pytest.fixture(scope="module")
def isvc(rendered):
    return rendered["InferenceService"]


def kserve_container(runtime):
    containers = runtime["spec"]["containers"]
    [container] = [c for c in containers if c["name"] == "kserve-container"]
    return container


def port_of(address):
    host, _, port = address.rpartition(":")
    assert host and port.isdigit(), address
    return int(port)


def image_config():
    """(path in the image, repository file) of the config file the image runs with."""
    dockerfile = (ROOT / "Dockerfile").read_text()
    env = re.search(r"DINOV3_CONFIG=(\S+)", dockerfile)
    assert env, "the Dockerfile sets no DINOV3_CONFIG"
    copied = re.search(rf"^COPY (\S+) {re.escape(env.group(1))}$", dockerfile, re.M)
    assert copied, f"the Dockerfile copies no file to {env.group(1)}"
    return env.group(1), ROOT / copied.group(1)


# ---------------------------------------------------------------------------------------------
# Tests


@pytest.mark.parametrize("kind", sorted(API))
def test_validates_against_kserves_models(rendered, kind):
    validate_object(rendered[kind])


@pytest.mark.parametrize("kind, mutate, message", [
    ("InferenceService", lambda o: o["spec"]["predictor"]["model"].update(storageURI="s3://x"),
     "no field"),
    ("InferenceService", lambda o: o["spec"]["predictor"]["model"].pop("modelFormat"),
     "model_format"),
    ("InferenceService", lambda o: o["spec"]["predictor"].update(minReplicas="1"),
     "expected int"),
    ("InferenceService", lambda o: o["spec"]["predictor"]["model"]["resources"].update(
        limit={}), "Additional properties"),
    ("InferenceService", lambda o: o["metadata"].update(label={}), "Additional properties"),
    ("ServingRuntime", lambda o: o["spec"].pop("containers"), "containers"),
    ("ServingRuntime", lambda o: o["spec"]["supportedModelFormats"][0].update(autoselect=True),
     "no field"),
    ("ServingRuntime", lambda o: o["spec"]["containers"][0]["ports"][0].update(
        containerPort="8080"), "is not of type"),
    ("ServingRuntime", lambda o: o["spec"]["containers"][0]["readinessProbe"].update(
        httpget={}), "Additional properties"),
    ("ServingRuntime", lambda o: o["spec"].update(protocolVersions="v2"), "expected a list"),
    ("ServingRuntime", lambda o: o.update(apiVersion="serving.kserve.io/v1beta1"), "apiVersion"),
])
def test_validation_rejects_mistakes(rendered, kind, mutate, message):
    """The checks are strict: a misspelt field, a missing required one or a wrong type fails,
    in KServe's own types as in the Kubernetes types inside them."""
    obj = copy.deepcopy(rendered[kind])
    mutate(obj)
    with pytest.raises(AssertionError, match=re.escape(message)):
        validate_object(obj)


def test_inference_service_uses_the_runtime(runtime, isvc):
    model = isvc["spec"]["predictor"]["model"]
    assert model["runtime"] == runtime["metadata"]["name"]
    fmt = model["modelFormat"]
    supported = runtime["spec"]["supportedModelFormats"]
    assert any(s["name"] == fmt["name"] and s.get("version") == fmt.get("version")
               for s in supported), f"{fmt} is not among {supported}"
    protocols = runtime["spec"]["protocolVersions"]
    assert {"v2", "grpc-v2"} <= set(protocols), protocols
    assert model.get("protocolVersion", "v1") in protocols
    assert runtime["spec"].get("multiModel", False) is False  # one model per server
    # Two ports need RawDeployment (Standard); Knative allows one port per container.
    mode = isvc["metadata"].get("annotations", {}).get("serving.kserve.io/deploymentMode")
    assert mode in ("RawDeployment", "Standard"), mode


def test_storage_uri_is_a_folder_for_mnt_models(isvc):
    uri = isvc["spec"]["predictor"]["model"]["storageUri"]
    scheme, _, rest = uri.partition("://")
    assert scheme in ("pvc", "s3", "gs", "hdfs", "https"), uri
    assert rest and not rest.endswith(".pt"), \
        f"{uri}: name the folder that holds dinov3.pt (the server loads /mnt/models/dinov3.pt)"


def test_container_ports_and_probes(runtime):
    container = kserve_container(runtime)
    ports = container["ports"]
    assert ports[0]["containerPort"] == HTTP_PORT, "KServe's Service sends port 80 to the first"
    assert ports[0].get("name") in (None, "http1")  # the names Knative accepts for HTTP/1
    [h2c] = [p for p in ports if p.get("name") == "h2c"]
    assert h2c["containerPort"] != HTTP_PORT
    for probe_name, path in [("readinessProbe", "/v2/health/ready"),
                             ("livenessProbe", "/v2/health/live"),
                             ("startupProbe", "/v2/health/ready")]:
        probe = container[probe_name]["httpGet"]
        assert probe["path"] == path and probe["port"] in (HTTP_PORT, ports[0].get("name"))
    startup = container["startupProbe"]
    assert startup["failureThreshold"] * startup["periodSeconds"] >= 300
    sc = container["securityContext"]
    assert sc["runAsNonRoot"] is True and sc["readOnlyRootFilesystem"] is True
    assert sc["allowPrivilegeEscalation"] is False and sc["capabilities"]["drop"] == ["ALL"]


def test_image_is_the_one_deploy_k8s_names(runtime):
    image = kserve_container(runtime)["image"]
    overlays = (ROOT / "deploy" / "k8s" / "overlays")
    names = {(i["newName"], i["newTag"]) for path in overlays.glob("*/kustomization.yaml")
             for i in yaml.safe_load(path.read_text()).get("images", [])}
    name, _, tag = image.rpartition(":")
    assert (name, tag) in names, f"{image} is none of deploy/k8s's images {sorted(names)}"


def test_server_accepts_the_runtime_configuration(runtime, isvc, tmp_path):
    """The server in the container: the image's config file, then the container's env (with
    KServe's {{.Name}} filled in) and args, checked by the server itself."""
    if not (SERVER.is_file() and os.access(SERVER, os.X_OK)):
        pytest.fail(f"{SERVER} is missing: build the server first (scripts/build.sh)",
                    pytrace=False)
    container = kserve_container(runtime)
    name = isvc["metadata"]["name"]
    _, config = image_config()
    env = {k: v for k, v in os.environ.items() if not k.startswith("DINOV3_")}
    env["DINOV3_CONFIG"] = str(config)
    for entry in container.get("env", []):
        env[entry["name"]] = entry["value"].replace("{{.Name}}", name)
    assert "command" not in container, "the image's entrypoint is the server"
    proc = run_tool([str(SERVER), *container["args"], "--print_config"], "build the server",
                    env=env, cwd=tmp_path)
    assert proc.returncode == 0, f"the server refuses the runtime's configuration:\n{proc.stderr}"
    effective = yaml.safe_load(proc.stdout)
    ports = {p.get("name"): p["containerPort"] for p in container["ports"]}
    assert effective["http"]["enabled"] is True
    assert effective["http"]["listen"] == f"0.0.0.0:{HTTP_PORT}"
    assert effective["server"]["listen"] == f"0.0.0.0:{ports['h2c']}"
    # Both listen on the pod's addresses: TLS, or plaintext allowed (the mesh/gateway's TLS).
    assert effective["tls"]["cert_file"] or effective["tls"]["allow_plaintext"] is True
    assert effective["model"]["path"].startswith("/mnt/models/"), effective["model"]["path"]
    assert effective["model"]["name"] == name, "clients call /v2/models/<InferenceService name>"
    annotations = runtime["spec"].get("annotations", {})
    assert effective["metrics"]["enabled"] is True
    assert port_of(effective["metrics"]["listen"]) == \
        int(annotations["prometheus.kserve.io/port"])
    assert annotations["prometheus.kserve.io/path"] == "/metrics"
