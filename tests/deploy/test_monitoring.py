"""Monitoring as code: deploy/grafana/ and deploy/prometheus/, checked with the real tools.

  - Every rules file (and the PrometheusRule's spec) passes `promtool check rules`; the promtool
    unit tests in deploy/prometheus/tests/ pass and give every alert a firing case; the
    PrometheusRule holds exactly the groups of recording-rules.yaml + alerts.yaml.
  - The dashboard has the required structure: stable uid, the datasource as a variable used by
    every panel, target and variable (no data source uid written in), a unit on every panel,
    namespace/pod variables; every expression is valid PromQL (promtool).
  - Drift: the real server (random model) answers one Embed, and every metric name that the
    dashboard and the rules read (dinov3_*, process_*; _bucket/_sum/_count of a histogram count
    as its family) is in its /metrics scrape, as is every label they name. Other exporters'
    metrics only from OTHER_EXPORTERS; recording-rule names only if recording-rules.yaml
    records them; the CUDA-only families (absent on this CPU server) must be in the server's
    source.
  - A real Prometheus with scrape-config.yaml (its pod discovery replaced by a static target
    carrying the same __meta_kubernetes_* labels) and both rules files scrapes the server under
    load: the relabelling gives job/namespace/pod, a target without the "metrics" port is
    dropped, every rule evaluates without error, the variables' label_values find the pod, and
    every dashboard query runs (and returns data unless it shows errors, rejections or device
    memory, which a healthy CPU server has none of).
promtool, prometheus or the server binary missing fails the tests; nothing is skipped.
"""
import json
import os
import re
import subprocess
import time

import pytest
import yaml

from tests.integration.python.prometheus_process import (embedding_load, prometheus_api,
                                                         prometheus_log, random_image as image,
                                                         running_prometheus, scrape, tool)
from tests.integration.python.server_process import (ROOT, export_random_model, free_port,
                                                      running_server)

DEPLOY = os.path.join(ROOT, "deploy")
DASHBOARD = os.path.join(DEPLOY, "grafana", "dinov3-dashboard.json")
PROMETHEUS = os.path.join(DEPLOY, "prometheus")
ALERTS = os.path.join(PROMETHEUS, "alerts.yaml")
RECORDING = os.path.join(PROMETHEUS, "recording-rules.yaml")
RULE_FILES = [RECORDING, ALERTS]  # the PrometheusRule's groups, in this order
PROMETHEUS_RULE = os.path.join(PROMETHEUS, "prometheus-rule.yaml")
SCRAPE_CONFIG = os.path.join(PROMETHEUS, "scrape-config.yaml")
RULE_TESTS = os.path.join(PROMETHEUS, "tests", "alerts_test.yaml")
SERVER_METRICS_SOURCE = os.path.join(ROOT, "server", "metrics", "server_metrics.cc")

DS = {"type": "prometheus", "uid": "${datasource}"}
# Metrics of other exporters that the rules may read (kube-state-metrics); nothing else.
OTHER_EXPORTERS = {"kube_deployment_status_replicas_available", "kube_deployment_spec_replicas",
                   "kube_pod_container_status_restarts_total"}
# Exported only with a CUDA device: absent from this CPU server's scrape, so checked in source.
CUDA_ONLY = {"dinov3_device_memory_allocated_bytes", "dinov3_device_memory_reserved_bytes"}
# Labels that the scrape (scrape-config.yaml, a PodMonitor) or kube-state-metrics add.
TARGET_LABELS = {"job", "instance", "namespace", "pod", "container", "node", "deployment"}
# What the dashboard must show (issue 6 §3).
REQUIRED_IN_DASHBOARD = {
    "dinov3_requests_total", "dinov3_request_duration_seconds_bucket",
    "dinov3_queue_duration_seconds_bucket", "dinov3_preprocess_duration_seconds_bucket",
    "dinov3_inference_duration_seconds_bucket", "dinov3_batch_size_bucket",
    "dinov3_batch_size_sum", "dinov3_batch_size_count", "dinov3_queue_images",
    "dinov3_inflight_requests", "dinov3_images_total", "dinov3_device_memory_allocated_bytes",
    "dinov3_device_memory_reserved_bytes", "dinov3_rejected_total",
    "process_resident_memory_bytes", "process_cpu_seconds_total", "dinov3_model_info",
    "dinov3_build_info"}
REQUIRED_ALERTS = {"DinoV3HighErrorRatio", "DinoV3HighLatencyP99", "DinoV3QueueNearCapacity",
                   "DinoV3MetricsAbsent", "DinoV3NoAvailableReplicas", "DinoV3PodRestarting"}
# Panels with no data on a healthy CPU server.
EMPTY_WHEN_HEALTHY = {"Server error ratio", "Errors by code (non-OK)", "Rejections by reason",
                      "Device memory"}




def promtool(*args, **kwargs):
    result = subprocess.run([tool("promtool"), *args], capture_output=True, text=True, **kwargs)
    assert result.returncode == 0, f"promtool {' '.join(args)}:\n{result.stdout}{result.stderr}"
    return result.stdout


def load_yaml(path):
    with open(path) as f:
        return yaml.safe_load(f)


def dashboard():
    with open(DASHBOARD) as f:
        return json.load(f)


def panels(dash):
    """Every panel, rows' collapsed panels included, rows themselves not."""
    for panel in dash["panels"]:
        if panel["type"] == "row":
            yield from panel.get("panels", [])
        else:
            yield panel


def rules():
    for path in RULE_FILES:
        for group in load_yaml(path)["groups"]:
            yield from group["rules"]


# --- PromQL scanning (enough for the expressions here; promtool checks their syntax) ---------

STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')
MATCHERS = re.compile(r"\{([^{}]*)\}")
GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\(([^()]*)\)")
IDENT = re.compile(r"(?<![\w.:$])([A-Za-z_:][A-Za-z0-9_:]*)(\s*\()?")
KEYWORDS = {"and", "or", "unless", "by", "without", "on", "ignoring", "group_left",
            "group_right", "bool", "offset", "inf", "nan", "atan2"}
LABEL_VALUES = re.compile(r"^\s*label_values\(\s*(.*),\s*(\w+)\s*\)\s*$", re.S)


def grafana_to_promql(expr, variables=None):
    """Grafana's variables replaced: the range ones by a duration, the others by `variables`."""
    expr = re.sub(r"\$__(rate_)?interval\b|\$\{__(rate_)?interval\}", "1m", expr)
    for name, value in (variables or {}).items():
        expr = re.sub(r"\$\{%s\}|\$%s\b" % (name, name), value, expr)
    return expr


def scan(expr):
    """(metric names, label names) that a PromQL expression (or label_values query) reads."""
    match = LABEL_VALUES.match(expr)
    if match:  # a Grafana variable query: label_values(selector, label)
        names, labels = scan(match.group(1))
        return names, labels | {match.group(2)}
    labels = set()
    text = STRING.sub('""', expr)
    for inner in MATCHERS.findall(text):
        labels |= set(re.findall(r"([A-Za-z_]\w*)\s*(?:=~|!~|!=|=)", inner))
    text = MATCHERS.sub(" ", text)
    for inner in GROUPING.findall(text):
        labels |= {label.strip() for label in inner.split(",") if label.strip()}
    text = GROUPING.sub(" ", text)
    text = re.sub(r"\[[^\]]*\]", " ", text)  # ranges and subqueries
    text = re.sub(r"\$\{?\w+\}?", " ", text)  # Grafana variables
    names = set()
    for name, call in IDENT.findall(text):
        if not call and name not in KEYWORDS:
            names.add(name)
    return names, labels


def test_scan_finds_names_and_labels():
    names, labels = scan('histogram_quantile(0.99, sum by (method, le) (rate('
                         'dinov3_request_duration_seconds_bucket{namespace=~"$namespace", '
                         'code!="OK"}[$__rate_interval]))) / on (pod) group_left '
                         'ns_job:dinov3_images:rate5m > bool 1e-3 and time() - '
                         'process_start_time_seconds offset 5m')
    assert names == {"dinov3_request_duration_seconds_bucket", "ns_job:dinov3_images:rate5m",
                     "process_start_time_seconds"}
    assert labels == {"method", "le", "namespace", "code", "pod"}
    assert scan('label_values(dinov3_build_info{namespace=~"$namespace"}, pod)') == (
        {"dinov3_build_info"}, {"namespace", "pod"})


def dashboard_queries(dash):
    """(panel title, target) for every target, and ("$name", query) for every query variable."""
    out = [(panel["title"], target) for panel in panels(dash) for target in panel["targets"]]
    out += [("$" + v["name"], {"expr": v["query"] if isinstance(v["query"], str)
                               else v["query"]["query"]})
            for v in dash["templating"]["list"] if v["type"] == "query"]
    return out


def used_names_and_labels():
    """{metric name: [where]}, {label: [where]} over the dashboard and the rules."""
    names, labels = {}, {}

    def add(where, expr):
        n, l = scan(expr)
        for name in n:
            names.setdefault(name, []).append(where)
        for label in l:
            labels.setdefault(label, []).append(where)

    for where, target in dashboard_queries(dashboard()):
        add(f"dashboard {where!r}", target["expr"])
        for label in re.findall(r"\{\{\s*(\w+)\s*\}\}", target.get("legendFormat", "")):
            labels.setdefault(label, []).append(f"dashboard {where!r} legend")
    for rule in rules():
        where = rule.get("alert") or rule["record"]
        add(where, rule["expr"])
        for text in rule.get("annotations", {}).values():
            for label in re.findall(r"\$labels\.(\w+)", text):
                labels.setdefault(label, []).append(f"{where} annotations")
    return names, labels


# --- rules ----------------------------------------------------------------------------------

def test_rules_files_pass_promtool_check():
    for path in RULE_FILES:
        out = promtool("check", "rules", path)
        assert "SUCCESS" in out, out


def test_prometheus_rule_holds_the_same_groups(tmp_path):
    rule = load_yaml(PROMETHEUS_RULE)
    assert rule["apiVersion"] == "monitoring.coreos.com/v1"
    assert rule["kind"] == "PrometheusRule"
    assert rule["metadata"]["name"]
    groups = [group for path in RULE_FILES for group in load_yaml(path)["groups"]]
    assert rule["spec"]["groups"] == groups, \
        "prometheus-rule.yaml differs from recording-rules.yaml + alerts.yaml"
    spec = tmp_path / "spec.yaml"
    spec.write_text(yaml.safe_dump(rule["spec"]))
    promtool("check", "rules", str(spec))


def test_alerts_are_complete():
    groups = load_yaml(ALERTS)["groups"]
    assert [g["name"] for g in groups] == ["dinov3"]
    alerts = {r["alert"]: r for r in groups[0]["rules"]}
    assert REQUIRED_ALERTS <= set(alerts)
    for name, rule in alerts.items():
        assert rule["labels"]["severity"] in {"critical", "warning", "info"}, name
        assert {"summary", "description", "runbook"} <= set(rule["annotations"]), name
    kube_state = {name for name, rule in alerts.items() if "kube_" in rule["expr"]}
    assert kube_state == {"DinoV3NoAvailableReplicas", "DinoV3PodRestarting"}
    assert "max_queue_size" in alerts["DinoV3QueueNearCapacity"]["annotations"]["description"]


def test_promtool_unit_tests_pass_and_cover_every_rule():
    out = promtool("test", "rules", RULE_TESTS)
    assert "SUCCESS" in out, out
    tests = load_yaml(RULE_TESTS)
    fired, quiet, recorded = set(), set(), set()
    for case in tests["tests"]:
        for check in case.get("alert_rule_test", []):
            (fired if check.get("exp_alerts") else quiet).add(check["alertname"])
        for check in case.get("promql_expr_test", []):
            recorded |= scan(check["expr"])[0]
    alerts = {r["alert"] for r in rules() if "alert" in r}
    records = {r["record"] for r in rules() if "record" in r}
    assert alerts - fired == set(), "alerts never fired in alerts_test.yaml"
    assert alerts - quiet == set(), "alerts never checked quiet in alerts_test.yaml"
    assert records - recorded == set(), "recording rules not tested in alerts_test.yaml"


# --- scrape config ---------------------------------------------------------------------------

def scrape_job():
    config = load_yaml(SCRAPE_CONFIG)
    (job,) = config["scrape_configs"]
    return job


def relabel_targets(job):
    return {r["target_label"]: r["source_labels"] for r in job["relabel_configs"]
            if r.get("action", "replace") == "replace"}


def static_scrape_config(tmp_path, targets, rule_files=()):
    """scrape-config.yaml with the pod discovery replaced by static targets that carry the
    __meta_kubernetes_* labels the discovery would set (Debian's Prometheus has no kubernetes_sd).
    `targets`: [(address, {meta label: value})]."""
    job = scrape_job()
    del job["kubernetes_sd_configs"]
    job["static_configs"] = [{"targets": [address], "labels": labels}
                             for address, labels in targets]
    job["scrape_interval"], job["scrape_timeout"] = "1s", "1s"
    config = {"global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
              "rule_files": list(rule_files), "scrape_configs": [job]}
    path = tmp_path / "prometheus.yml"
    path.write_text(yaml.safe_dump(config))
    return path


def pod_meta(namespace, pod, port_name="metrics", app="dinov3"):
    return {"__meta_kubernetes_namespace": namespace, "__meta_kubernetes_pod_name": pod,
            "__meta_kubernetes_pod_label_app_kubernetes_io_name": app,
            "__meta_kubernetes_pod_container_port_name": port_name,
            "__meta_kubernetes_pod_phase": "Running",
            "__meta_kubernetes_pod_container_name": "server",
            "__meta_kubernetes_pod_node_name": "node-1"}


def test_scrape_config(tmp_path):
    job = scrape_job()
    assert job["job_name"] == "dinov3"
    assert [sd["role"] for sd in job["kubernetes_sd_configs"]] == ["pod"]
    kept = {tuple(r["source_labels"]): r["regex"] for r in job["relabel_configs"]
            if r.get("action") == "keep"}
    assert kept[("__meta_kubernetes_pod_container_port_name",)] == "metrics"
    targets = relabel_targets(job)
    assert targets["namespace"] == ["__meta_kubernetes_namespace"]
    assert targets["pod"] == ["__meta_kubernetes_pod_name"]
    promtool("check", "config", str(static_scrape_config(
        tmp_path, [("127.0.0.1:9464", pod_meta("ns", "p"))])))


# --- dashboard -------------------------------------------------------------------------------

def walk(node, path="$"):
    if isinstance(node, dict):
        for key, value in node.items():
            yield path, key, value
            yield from walk(value, f"{path}.{key}")
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from walk(value, f"{path}[{i}]")


def test_dashboard_structure():
    dash = dashboard()
    assert dash["uid"] == "dinov3-embeddings"
    assert dash["title"] == "DINOv3 embeddings"
    assert dash["schemaVersion"] >= 36
    variables = {v["name"]: v for v in dash["templating"]["list"]}
    source = variables["datasource"]
    assert source["type"] == "datasource" and source["query"] == "prometheus"
    assert not source.get("current"), "the datasource variable must not preselect a uid"
    for name in ("namespace", "pod"):
        var = variables[name]
        assert var["type"] == "query" and var["datasource"] == DS, name
        query = var["query"] if isinstance(var["query"], str) else var["query"]["query"]
        assert re.match(r"label_values\((dinov3_build_info|dinov3_requests_total)\b.*,\s*%s\)$"
                        % name, query), query
    # No data source but the variable, anywhere (annotations, panels, targets, variables).
    for path, key, value in walk(dash):
        if key == "datasource" and isinstance(value, dict):
            assert value == DS, f"{path}: {value}"
        elif key == "datasource" and value is not None:
            assert value in ("${datasource}", "$datasource", "prometheus"), f"{path}: {value}"
    ids = [p["id"] for p in dash["panels"]] + [
        c["id"] for p in dash["panels"] if p["type"] == "row" for c in p.get("panels", [])]
    assert len(ids) == len(set(ids)), "panel ids repeat"
    titles = [p["title"] for p in panels(dash)]
    assert len(titles) == len(set(titles)), "panel titles repeat"
    for panel in panels(dash):
        title = panel["title"]
        assert panel["datasource"] == DS, title
        assert panel["fieldConfig"]["defaults"].get("unit"), f"{title!r} has no unit"
        assert panel["targets"], title
        refs = [t["refId"] for t in panel["targets"]]
        assert len(refs) == len(set(refs)), title
        for target in panel["targets"]:
            assert target["datasource"] == DS, title
            assert target["expr"].strip(), title
    used = set()
    for _, target in dashboard_queries(dash):
        used |= scan(target["expr"])[0]
    assert REQUIRED_IN_DASHBOARD - used == set(), "missing from the dashboard"
    types = {p["type"] for p in panels(dash)}
    assert {"timeseries", "heatmap", "table"} <= types
    quantiles = {q for _, t in dashboard_queries(dash)
                 for q in re.findall(r"histogram_quantile\((0\.\d+)", t["expr"])}
    assert {"0.5", "0.95", "0.99"} <= quantiles


def test_dashboard_expressions_are_valid_promql(tmp_path):
    dash = dashboard()
    values = {v["name"]: ".*" for v in dash["templating"]["list"]}
    records = [{"record": f"dashboard:query_{i}:check",
                "expr": grafana_to_promql(target["expr"], values)}
               for i, (where, target) in enumerate(dashboard_queries(dash))
               if not LABEL_VALUES.match(target["expr"])]
    path = tmp_path / "dashboard-rules.yaml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": records}]}))
    promtool("check", "rules", str(path))


# --- against the real server -----------------------------------------------------------------

@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return export_random_model(tmp_path_factory.mktemp("model"), seed=3)


@pytest.fixture(scope="module")
def server(model, tmp_path_factory):
    """(client, metrics port) of one real server for this module's tests."""
    port = free_port()
    log = tmp_path_factory.mktemp("server") / "server.log"
    with running_server(model, str(log), f"--metrics_listen=127.0.0.1:{port}") as (_, client):
        yield client, port






def exported(text):
    """{family: type}, {label names} of a text exposition."""
    types = dict(re.findall(r"^# TYPE (\S+) (\S+)$", text, re.M))
    labels = set()
    for line in text.splitlines():
        if line and not line.startswith("#") and "{" in line:
            labels |= set(re.findall(r"([A-Za-z_]\w*)=\"", line.split("}", 1)[0]))
    return types, labels


def test_every_metric_and_label_used_is_exported(server):
    client, port = server
    client.embed([image(0)])
    types, exported_labels = exported(scrape(port))
    assert "dinov3_requests_total" in types and "process_cpu_seconds_total" in types
    names, labels = used_names_and_labels()
    records = {r["record"] for r in rules() if "record" in r}
    with open(SERVER_METRICS_SOURCE) as f:
        source = f.read()
    problems = []
    for name, where in sorted(names.items()):
        if ":" in name:
            if name not in records:
                problems.append(f"{name} (used by {where}) is no recording rule here")
        elif name.startswith(("dinov3_", "process_")):
            family = re.sub(r"_(bucket|sum|count)$", "", name)
            if name in types:
                continue
            if family != name and types.get(family) in ("histogram", "summary"):
                continue
            if name in CUDA_ONLY and f'"{name}"' in source:
                continue  # only with a CUDA device; still named by the server
            problems.append(f"{name} (used by {where}) is not exported by the server")
        elif name not in OTHER_EXPORTERS:
            problems.append(f"{name} (used by {where}) is from another exporter and not in "
                            "OTHER_EXPORTERS")
    assert not problems, "\n".join(problems)
    assert OTHER_EXPORTERS <= set(names), "OTHER_EXPORTERS lists metrics nothing uses"
    assert CUDA_ONLY - set(types) <= set(names)
    unknown = {label: where for label, where in labels.items()
               if label not in exported_labels | TARGET_LABELS}
    # `device` is on dinov3_model_info and dinov3_inference_duration_seconds, so it is exported.
    assert not unknown, f"labels the server does not export: {unknown}"




def test_real_prometheus_with_the_scrape_config_rules_and_dashboard(server, tmp_path):
    client, metrics_port = server
    namespace, pod = "dinov3-test", "dinov3-7d9f8-abc"  # as deploy/k8s names them
    config = static_scrape_config(
        tmp_path,
        [(f"127.0.0.1:{metrics_port}", pod_meta(namespace, pod)),
         # Dropped by the relabelling: the gRPC port, and another app's metrics port.
         (f"127.0.0.1:{metrics_port}", pod_meta(namespace, "grpc-port", port_name="grpc")),
         (f"127.0.0.1:{metrics_port}", pod_meta(namespace, "other", app="other-app"))],
        rule_files=RULE_FILES)
    dash = dashboard()
    variables = {"datasource": "", "namespace": namespace, "job": "dinov3", "pod": pod,
                 "model": ".*"}
    queries = [(where, grafana_to_promql(t["expr"], variables))
               for where, t in dashboard_queries(dash) if not LABEL_VALUES.match(t["expr"])]
    # 1m windows (grafana_to_promql) need two scrapes in them: 1 s apart here.
    results, rule_health, targets, label_values = {}, {}, None, {}
    with running_prometheus(config, tmp_path) as prometheus_port, embedding_load(client):
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            time.sleep(1)
            try:
                targets = prometheus_api(prometheus_port, "targets")
                groups = prometheus_api(prometheus_port, "rules")["groups"]
                results = {(where, q): prometheus_api(prometheus_port, "query", query=q)["result"]
                           for where, q in queries}
                # What the namespace/job/pod variables would offer.
                label_values = {name: prometheus_api(prometheus_port, f"label/{name}/values",
                                                     **{"match[]": "dinov3_build_info"})
                                for name in ("namespace", "job", "pod")}
            except OSError:
                continue  # not up yet
            rule_health = {r["name"]: (r["health"], r.get("lastError", ""))
                           for g in groups for r in g["rules"]}
            missing = [w for (w, _), r in results.items()
                       if not r and w not in EMPTY_WHEN_HEALTHY]
            if (not missing and rule_health
                    and all(h == "ok" for h, _ in rule_health.values())):
                break
    log = prometheus_log(tmp_path)
    assert targets, f"Prometheus never answered:\n{log}"
    active = [t["labels"] for t in targets["activeTargets"]]
    assert len(active) == 1, active
    assert {k: active[0][k] for k in ("job", "namespace", "pod", "instance")} == {
        "job": "dinov3", "namespace": namespace, "pod": pod, "instance": pod}
    assert len(targets["droppedTargets"]) == 2
    want = {r.get("alert") or r["record"] for r in rules()}
    assert set(rule_health) == want, f"rules not loaded:\n{log}"
    bad = {name: h for name, h in rule_health.items() if h[0] != "ok"}
    assert not bad, f"rules that do not evaluate: {bad}"
    assert label_values == {name: [variables[name]] for name in ("namespace", "job", "pod")}
    empty = sorted({w for (w, _), r in results.items() if not r and w not in EMPTY_WHEN_HEALTHY})
    assert not empty, f"dashboard panels without data: {empty}"
    (images,) = results[("Images/s", next(q for w, q in queries if w == "Images/s"))]
    assert float(images["value"][1]) > 0
