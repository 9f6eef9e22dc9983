"""The server's Prometheus metrics and access log, checked against the real binary.

  - The /metrics scrape passes `promtool check metrics` (Debian's prometheus package) and holds
    every family README "Metrics" lists.
  - After a known mix of calls (OK, invalid image, too many images, a stream with one good and
    one bad request, EmbedDense, GetModelInfo), every counter and histogram count moved by
    exactly the expected amount (max_batch_size 1, so batches = images).
  - One access-log line per request (rejections as warnings with their reason), JSON lines
    with --log_format=json, and no image bytes in the log.
  - A real Prometheus server (started here on loopback, 1 s scrape interval) scrapes the server
    under load; its HTTP API answers rate(dinov3_images_total[...]) > 0 and a p99 request
    duration from histogram_quantile.
The binaries missing (server, promtool, prometheus) fail the tests; nothing is skipped.
"""
import json
import subprocess
import time

import pytest

from tests.integration.python.prometheus_process import (embedding_load, prometheus_api,
                                                         prometheus_log, random_image as image,
                                                         running_prometheus, samples, scrape,
                                                         tool)
from tests.integration.python.server_process import (export_random_model, free_port,
                                                      running_server)

MAX_IMAGES = 4
# The served model's name, the `model` label of its series: the stem of export_random_model's
# file (model.pt), as the server names a --model it serves.
MODEL = "model"


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return export_random_model(tmp_path_factory.mktemp("model"), seed=3)








def test_scrape_passes_promtool_and_has_every_family(model, tmp_path):
    port = free_port()
    with running_server(model, str(tmp_path / "server.log"),
                        f"--metrics_listen=127.0.0.1:{port}") as (_, client):
        client.embed([image(0)])
        text = scrape(port)
    check = subprocess.run([tool("promtool"), "check", "metrics"], input=text, text=True,
                           capture_output=True)
    assert check.returncode == 0, check.stdout + check.stderr
    for family in ["dinov3_requests_total", "dinov3_request_duration_seconds",
                   "dinov3_queue_duration_seconds", "dinov3_preprocess_duration_seconds",
                   "dinov3_inference_duration_seconds", "dinov3_batch_size",
                   "dinov3_images_total", "dinov3_queue_images", "dinov3_inflight_requests",
                   "dinov3_queue_capacity_images",
                   "dinov3_rejected_total", "dinov3_model_info", "dinov3_build_info",
                   "process_resident_memory_bytes", "process_cpu_seconds_total",
                   "process_open_fds", "process_start_time_seconds"]:
        assert f"# TYPE {family} " in text, family
    values = samples(text)
    info = f'dinov3_model_info{{device="cpu",dtype="float32",model="{MODEL}",variant="vits16"}}'
    assert values[info] == 1
    assert values["process_resident_memory_bytes"] > 50e6
    # CPU only: the device memory families are absent rather than zero.
    assert "dinov3_device_memory_allocated_bytes" not in text


def test_counters_count_exactly_what_was_sent(model, tmp_path):
    port = free_port()
    log_path = tmp_path / "server.log"
    with running_server(model, str(log_path), f"--metrics_listen=127.0.0.1:{port}",
                        "--max_batch_size=1",
                        f"--max_images_per_request={MAX_IMAGES}") as (_, client):
        before = samples(scrape(port))
        for seed in range(3):
            client.embed([image(seed)])
        client.embed([image(10), image(11)])
        bad_png = b"\x89PNG\r\n\x1a\n" + b"\0" * 40
        for images in ([bad_png], [image(20)] * (MAX_IMAGES + 1)):
            try:
                client.embed(images)
            except Exception:  # noqa: BLE001 - the codes are checked through the metrics
                pass
        requests = [client.build_request([image(30)], request_id="good"),
                    client.build_request([bad_png], request_id="bad")]
        answers = list(client.stream_embed(requests))
        assert sorted(a.error is None for a in answers) == [False, True]
        client.embed_dense(image(40, (64, 64)))
        client.model_info()
        client.model_info()
        after = samples(scrape(port))

    def delta(key):
        return after.get(key, 0) - before.get(key, 0)

    def requests(code, method):
        return (f'dinov3_requests_total{{code="{code}",method="{method}",model="{MODEL}",'
                'protocol="dinov3"}')

    assert delta(requests("OK", "Embed")) == 4
    assert delta(requests("INVALID_ARGUMENT", "Embed")) == 2
    assert delta(requests("OK", "StreamEmbed")) == 1
    assert delta(requests("INVALID_ARGUMENT", "StreamEmbed")) == 1
    assert delta(requests("OK", "EmbedDense")) == 1
    assert delta(requests("OK", "GetModelInfo")) == 2
    assert delta(f'dinov3_request_duration_seconds_count{{method="Embed",model="{MODEL}",'
                 'protocol="dinov3"}') == 6
    assert delta(f'dinov3_rejected_total{{model="{MODEL}",reason="invalid_image"}}') == 2
    assert delta(f'dinov3_rejected_total{{model="{MODEL}",reason="too_large"}}') == 1
    # Every call named no model, so all counted under the served (default) one.
    moved = {key for key in after if key.startswith(("dinov3_requests_total{",
                                                      "dinov3_rejected_total{"))
             and delta(key)}
    assert moved and all(f'model="{MODEL}"' in key for key in moved), moved
    images = 3 + 2 + 1 + 1  # Embed OK, the stream's good request, EmbedDense
    of_model = f'{{model="{MODEL}"}}'
    assert delta(f"dinov3_images_total{of_model}") == images
    assert delta(f"dinov3_batch_size_count{of_model}") == images  # max_batch_size 1
    assert delta(f"dinov3_batch_size_sum{of_model}") == images
    assert delta(f'dinov3_inference_duration_seconds_count{{device="cpu",model="{MODEL}"}}') \
        == images
    assert delta(f"dinov3_queue_duration_seconds_count{of_model}") == images
    # bad ones never decode
    assert delta(f"dinov3_preprocess_duration_seconds_count{of_model}") == images
    assert after["dinov3_inflight_requests"] == 0
    assert after[f"dinov3_queue_images{of_model}"] == 0
    embed = f'method="Embed",model="{MODEL}",protocol="dinov3"'
    assert after[f'dinov3_request_duration_seconds_bucket{{{embed},le="+Inf"}}'] == \
        after[f"dinov3_request_duration_seconds_count{{{embed}}}"]

    log = log_path.read_text()
    access = [line for line in log.splitlines() if "[access]" in line]
    assert len(access) == 4 + 2 + 2 + 1 + 2  # one per request, stream messages each
    assert all(f'model="{MODEL}"' in line for line in access), access
    warnings = [line for line in access if "[warning]" in line]
    assert len(warnings) == 3
    assert any('reason="too_large"' in w and "max_images_per_request" in w for w in warnings)
    assert any('request_id="bad"' in w and 'reason="invalid_image"' in w for w in warnings)
    assert "PNG\\r\\n" not in log and "\\u0000\\u0000" not in log  # no image bytes


def test_json_log_lines(model, tmp_path):
    log_path = tmp_path / "server.log"
    with running_server(model, str(log_path), "--log_format=json") as (_, client):
        client.embed([image(1)])
        request = client.build_request([image(2)], request_id='line"1\nline2')
        list(client.stream_embed([request]))
    lines = [json.loads(line) for line in log_path.read_text().splitlines()]
    assert all({"time", "level", "logger", "msg"} <= set(line) for line in lines)
    rpcs = [line for line in lines if line["logger"] == "access"]
    assert [r["method"] for r in rpcs] == ["Embed", "StreamEmbed"]
    assert rpcs[0]["code"] == "OK" and rpcs[0]["images"] == 1 and rpcs[0]["seconds"] > 0
    assert [r["model"] for r in rpcs] == [MODEL, MODEL]
    assert rpcs[1]["request_id"] == 'line"1\nline2'  # escaped, one line, read back intact
    banner = next(line["msg"] for line in lines if "starting" in line["msg"])
    assert "batching.max_batch_size=" in banner


def prometheus_query(port, query):
    return [float(r["value"][1]) for r in prometheus_api(port, "query", query=query)["result"]]


def test_real_prometheus_scrapes_the_server(model, tmp_path):
    metrics_port = free_port()
    config = tmp_path / "prometheus.yml"
    config.write_text(
        "global: {scrape_interval: 1s, evaluation_interval: 1s}\n"
        "scrape_configs:\n"
        "  - job_name: dinov3\n"
        f"    static_configs: [{{targets: ['127.0.0.1:{metrics_port}']}}]\n")
    with running_prometheus(config, tmp_path) as prometheus_port, \
            running_server(model, str(tmp_path / "server.log"),
                           f"--metrics_listen=127.0.0.1:{metrics_port}") as (_, client), \
            embedding_load(client):
        rate = quantile = None
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not (rate and quantile):
            time.sleep(1)
            try:
                rate = prometheus_query(prometheus_port,
                                        f'rate(dinov3_images_total{{model="{MODEL}"}}[10s])')
                quantile = prometheus_query(
                    prometheus_port, "histogram_quantile(0.99, sum by (le) "
                    f'(rate(dinov3_request_duration_seconds_bucket{{model="{MODEL}"}}[10s])))')
            except OSError:
                continue  # Prometheus not up yet
            rate = [v for v in rate if v > 0]
            quantile = [v for v in quantile if v == v]  # not NaN
    log = prometheus_log(tmp_path)
    assert rate, f"rate(dinov3_images_total) never > 0 in Prometheus:\n{log}"
    assert quantile and 0 < quantile[0] < 60, f"no p99 from Prometheus: {quantile}\n{log}"
