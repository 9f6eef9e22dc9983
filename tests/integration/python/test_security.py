"""Transport security and authentication of the real dinov3-server (SECURITY.md):

- TLS: a client that trusts the CA is served; plaintext clients and clients trusting another CA
  are not; the start-up log names the mode and the certificate.
- Certificate rotation: new files written over the old ones are served to new connections
  without a restart (tls.reload_seconds).
- Mutual TLS: no client certificate, or one from another CA, is refused; a signed one is served.
- API keys: missing, malformed or wrong keys get UNAUTHENTICATED on every service but an exempt
  health service, are counted in dinov3_rejected_total{model="",reason="unauthenticated"} (no
  model's), never reach the embedding service's counters (of any model), and the key is never
  logged; health can be made to need a key.
- /metrics behind basic auth.
- Start-up refusals: plaintext or API keys on a non-loopback address, bad TLS files, short keys.
- Keepalive: an idle connection whose client pings at the permitted rate stays up and usable.

Certificates are made with the openssl command line for each test session (EC P-256).
"""
import base64
import os
import re
import shutil
import socket
import ssl
import subprocess
import time
import urllib.error
import urllib.request

import grpc
import numpy as np
import pytest

from tests.integration.python.prometheus_process import samples, scrape
from tests.integration.python.server_process import (BIN_DIR, SERVER, export_random_model,
                                                     free_port, metrics_port, running_server,
                                                     start_server, stop_server, tail)
from dinov3_client import EmbeddingClient, EmbeddingError, tls_credentials  # noqa: E402 (path)

IMAGE = np.full((32, 32, 3), 200, np.uint8)
API_KEY = "k3y-0123456789abcdef-for-tests"


def openssl(*args, cwd):
    tool = shutil.which("openssl")
    if tool is None:
        pytest.fail("openssl is missing (scripts/debian-test-packages.txt lists it)", pytrace=False)
    subprocess.run([tool, *args], cwd=cwd, check=True, capture_output=True)


def make_ca(directory, name):
    openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
            "-keyout", f"{name}.key", "-out", f"{name}.crt", "-days", "2", "-subj", f"/CN={name}",
            cwd=directory)


def make_cert(directory, name, ca, san="DNS:localhost,IP:127.0.0.1"):
    """A certificate `name`.crt/.key signed by `ca`, with the subject CN=name."""
    with open(os.path.join(directory, f"{name}.ext"), "w") as f:
        f.write(f"subjectAltName={san}\n")
    openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
            "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", f"/CN={name}", cwd=directory)
    openssl("x509", "-req", "-in", f"{name}.csr", "-CA", f"{ca}.crt", "-CAkey", f"{ca}.key",
            "-CAcreateserial", "-out", f"{name}.crt", "-days", "2", "-extfile", f"{name}.ext",
            cwd=directory)


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    """CAs ca and other-ca; server-1 and server-2 (ca), client-1 (ca), stranger (other-ca)."""
    directory = tmp_path_factory.mktemp("pki")
    make_ca(directory, "ca")
    make_ca(directory, "other-ca")
    for name, ca in [("server-1", "ca"), ("server-2", "ca"), ("client-1", "ca"),
                     ("stranger", "other-ca")]:
        make_cert(directory, name, ca)
    return lambda name: str(directory / name)


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return export_random_model(tmp_path_factory.mktemp("model"), seed=11)


def tls_flags(pki, name="server-1"):
    return [f"--tls_cert_file={pki(name + '.crt')}", f"--tls_key_file={pki(name + '.key')}"]


def served_certificate_subject(target):
    """The CN of the certificate the server presents on a new connection."""
    host, port = target.rsplit(":", 1)
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    context.set_alpn_protocols(["h2"])
    with socket.create_connection((host, int(port)), timeout=10) as raw:
        with context.wrap_socket(raw, server_hostname="localhost") as tls:
            der = tls.getpeercert(binary_form=True)
    pem = ssl.DER_cert_to_PEM_cert(der)
    out = subprocess.run(["openssl", "x509", "-noout", "-subject"], input=pem.encode(),
                         capture_output=True, check=True).stdout.decode()
    return out.strip().split("CN = ")[-1].split("CN=")[-1]


def cli(target, command, *flags, env=None):
    """Runs dinov3-client; returns (exit code, output)."""
    proc = subprocess.run([os.path.join(BIN_DIR, "dinov3-client"), command, f"--server={target}",
                           "--timeout=10", *flags], capture_output=True, text=True, timeout=60,
                          env={**os.environ, **(env or {})})
    return proc.returncode, proc.stdout + proc.stderr


def call_code(client, call=lambda c: c.embed([IMAGE])):
    """'OK' or the name of the gRPC code the call ended with."""
    try:
        call(client)
        return "OK"
    except EmbeddingError as e:
        return e.code.name


def test_tls_serves_trusting_clients_only(model, pki, tmp_path):
    log = tmp_path / "server.log"
    with running_server(model, log, *tls_flags(pki),
                        credentials=tls_credentials(pki("ca.crt"))) as (target, client):
        [result] = client.embed([IMAGE])
        assert result.cls.shape == (384,)
        text = tail(log, 10**6)
        assert re.search(r"gRPC transport: TLS \(certificate .*CN ?= ?server-1, valid until", text)
        with EmbeddingClient(target, timeout=5) as plaintext:
            assert call_code(plaintext) == "UNAVAILABLE"
        with EmbeddingClient(target, timeout=5,
                             credentials=tls_credentials(pki("other-ca.crt"))) as distrustful:
            assert call_code(distrustful) == "UNAVAILABLE"
        assert client.health() == "SERVING"  # the refused handshakes did not hurt the server
        assert cli(target, "health", f"--tls_ca_file={pki('ca.crt')}") == (0, "SERVING\n")
        code, out = cli(target, "health")
        assert code == 1 and "UNAVAILABLE" in out, out


def test_rotated_certificate_is_served_without_restart(model, pki, tmp_path):
    cert, key = tmp_path / "tls.crt", tmp_path / "tls.key"
    shutil.copy(pki("server-1.crt"), cert)
    shutil.copy(pki("server-1.key"), key)
    with running_server(model, tmp_path / "server.log", f"--tls_cert_file={cert}",
                        f"--tls_key_file={key}", "--tls_reload_seconds=1",
                        credentials=tls_credentials(pki("ca.crt"))) as (target, client):
        assert served_certificate_subject(target) == "server-1"
        # A rotation as Kubernetes does it: new files moved into place.
        for src, dst in [(pki("server-2.key"), key), (pki("server-2.crt"), cert)]:
            shutil.copy(src, f"{dst}.new")
            os.replace(f"{dst}.new", dst)
        deadline = time.monotonic() + 30
        while served_certificate_subject(target) != "server-2":
            assert time.monotonic() < deadline, "the rotated certificate was never served"
            time.sleep(0.5)
        with EmbeddingClient(target, timeout=10,
                             credentials=tls_credentials(pki("ca.crt"))) as fresh:
            assert len(fresh.embed([IMAGE])) == 1
        assert len(client.embed([IMAGE])) == 1  # the old connection, or a new one, still works


def test_mutual_tls_requires_a_client_certificate_from_the_ca(model, pki, tmp_path):
    log = tmp_path / "server.log"
    good = tls_credentials(pki("ca.crt"), pki("client-1.crt"), pki("client-1.key"))
    with running_server(model, log, *tls_flags(pki), f"--tls_client_ca_file={pki('ca.crt')}",
                        credentials=good) as (target, client):
        assert len(client.embed([IMAGE])) == 1
        assert "gRPC transport: mutual TLS" in tail(log, 10**6)
        for credentials in [tls_credentials(pki("ca.crt")),  # no client certificate
                            tls_credentials(pki("ca.crt"), pki("stranger.crt"),
                                            pki("stranger.key"))]:
            with EmbeddingClient(target, timeout=5, credentials=credentials) as refused:
                assert call_code(refused, lambda c: c.health()) == "UNAVAILABLE"
        assert client.health() == "SERVING"
        code, out = cli(target, "health", f"--tls_ca_file={pki('ca.crt')}",
                        f"--tls_cert_file={pki('client-1.crt')}",
                        f"--tls_key_file={pki('client-1.key')}")
        assert (code, out) == (0, "SERVING\n")


def rejected_unauthenticated(port):
    """{model label: count} of dinov3_rejected_total{reason="unauthenticated"}. A refused key
    reaches no model: the server counts it under model="" (the served models' own
    unauthenticated series stay 0)."""
    pattern = re.compile(r'dinov3_rejected_total\{model="([^"]*)",reason="unauthenticated"\}')
    out = {}
    for key, value in samples(scrape(port)).items():
        match = pattern.fullmatch(key)
        if match:
            out[match.group(1)] = value
    assert "" in out, out
    return out


def embed_requests(port):
    """Embed calls finished, of every model and code."""
    return sum(value for key, value in samples(scrape(port)).items()
               if key.startswith("dinov3_requests_total{") and 'method="Embed"' in key)


def test_api_keys_guard_every_service_but_exempt_health(model, tmp_path):
    keys = tmp_path / "keys.txt"
    keys.write_text(f"# the test's key\n{API_KEY}\nsecond-key-0123456789abcdef\n")
    log = tmp_path / "server.log"
    with running_server(model, log, f"--api_keys_file={keys}") as (target, client):
        port = metrics_port(log)
        assert "API keys required (2 from" in tail(log, 10**6)
        refused_before, embeds_before = rejected_unauthenticated(port), embed_requests(port)
        bad_keys = [None, "wrong-key-0123456789abcdef", API_KEY + "x", API_KEY[:-1]]
        for key in bad_keys:
            with EmbeddingClient(target, timeout=10, api_key=key) as bad:
                try:
                    bad.embed([IMAGE])
                    pytest.fail(f"key {key!r} was accepted")
                except EmbeddingError as e:
                    assert e.code == grpc.StatusCode.UNAUTHENTICATED, e
                    assert ("invalid API key" in e.details or "missing" in e.details), e.details
                assert call_code(bad, lambda c: c.model_info()) == "UNAUTHENTICATED"
                assert bad.health() == "SERVING"  # exempt
        not_bearer = grpc.insecure_channel(target)
        with pytest.raises(grpc.RpcError) as error:
            not_bearer.unary_unary("/dinov3.v1.EmbeddingService/GetModelInfo")(
                b"", metadata=[("authorization", f"Basic {API_KEY}")], timeout=10)
        assert error.value.code() == grpc.StatusCode.UNAUTHENTICATED
        assert "Bearer" in error.value.details()
        reflection = not_bearer.stream_stream(
            "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo")
        with pytest.raises(grpc.RpcError) as error:
            list(reflection(iter([b""]), timeout=10))
        assert error.value.code() == grpc.StatusCode.UNAUTHENTICATED
        not_bearer.close()

        with EmbeddingClient(target, timeout=30, api_key=API_KEY) as good:
            assert len(good.embed([IMAGE])) == 1
        with EmbeddingClient(target, timeout=30, api_key="second-key-0123456789abcdef") as good:
            assert good.model_info().embed_dim == 384
        key_file = tmp_path / "client-key.txt"
        key_file.write_text(API_KEY + "\n")
        code, out = cli(target, "info", f"--api_key_file={key_file}")
        assert code == 0 and "embed_dim: 384" in out, out
        code, out = cli(target, "info", env={"DINOV3_API_KEY": API_KEY})
        assert code == 0 and "embed_dim: 384" in out, out
        code, out = cli(target, "info", env={"DINOV3_API_KEY": "not-the-key-0123456789"})
        assert code == 1 and "UNAUTHENTICATED" in out, out
        # 2 calls per bad key, the Basic one, the reflection one and the CLI's wrong key
        refused_after = rejected_unauthenticated(port)
        assert refused_after[""] - refused_before[""] == 2 * len(bad_keys) + 3
        # Refused before any model: no served model's (nor "(unknown)"'s) series moved.
        assert {model: n for model, n in refused_after.items() if model} == \
            {model: n for model, n in refused_before.items() if model}
        assert embed_requests(port) - embeds_before == 1  # refused calls never reached it
    text = tail(log, 10**6)
    assert "UNAUTHENTICATED" in text
    assert API_KEY not in text and "wrong-key" not in text


def test_health_can_require_a_key(model, tmp_path):
    keys = tmp_path / "keys.txt"
    keys.write_text(API_KEY + "\n")
    with running_server(model, tmp_path / "server.log", f"--api_keys_file={keys}",
                        "--exempt_health=false", api_key=API_KEY) as (target, client):
        assert client.health() == "SERVING"
        with EmbeddingClient(target, timeout=10) as keyless:
            assert call_code(keyless, lambda c: c.health()) == "UNAUTHENTICATED"


def test_metrics_behind_basic_auth(model, tmp_path):
    users = tmp_path / "metrics-users.txt"
    users.write_text("prometheus:scrape-secret\n")
    log = tmp_path / "server.log"
    with running_server(model, log, f"--metrics_basic_auth_file={users}"):
        url = f"http://127.0.0.1:{metrics_port(log)}/metrics"
        with pytest.raises(urllib.error.HTTPError) as error:
            urllib.request.urlopen(url, timeout=10)
        assert error.value.code == 401
        request = urllib.request.Request(url, headers={
            "Authorization": "Basic " + base64.b64encode(b"prometheus:scrape-secret").decode()})
        with urllib.request.urlopen(request, timeout=10) as response:
            assert b"dinov3_build_info" in response.read()


def start_failure(model, tmp_path, *flags):
    """Runs the server expecting it to refuse to start; returns (exit code, output)."""
    proc = subprocess.run([SERVER, f"--model={model}", "--metrics_enabled=false", *flags],
                          capture_output=True, text=True, timeout=120)
    return proc.returncode, proc.stdout + proc.stderr


def test_insecure_or_broken_setups_refuse_to_start(model, pki, tmp_path):
    exposed = f"--listen=0.0.0.0:{free_port()}"
    code, out = start_failure(model, tmp_path, exposed)
    assert code == 2 and "is not a loopback address and TLS is off" in out, out
    keys = tmp_path / "keys.txt"
    keys.write_text(API_KEY + "\n")
    code, out = start_failure(model, tmp_path, exposed, "--allow_plaintext=true",
                              f"--api_keys_file={keys}")
    assert code == 2 and "API keys would cross the network in clear text" in out, out

    loopback = f"--listen=127.0.0.1:{free_port()}"
    code, out = start_failure(model, tmp_path, loopback, f"--tls_cert_file={pki('server-1.crt')}",
                              f"--tls_key_file={pki('server-2.key')}")
    assert code == 1 and "is not the key of the certificate" in out, out
    code, out = start_failure(model, tmp_path, loopback, f"--tls_cert_file={pki('server-1.key')}",
                              f"--tls_key_file={pki('server-1.key')}")
    assert code == 1 and "no PEM certificate" in out, out
    code, out = start_failure(model, tmp_path, loopback, f"--tls_cert_file={tmp_path}/missing",
                              f"--tls_key_file={pki('server-1.key')}")
    assert code == 1 and "cannot read" in out, out
    short = tmp_path / "short.txt"
    short.write_text("short-key\n")
    code, out = start_failure(model, tmp_path, loopback, f"--api_keys_file={short}")
    assert code == 1 and "keys need at least 16" in out and "short-key" not in out, out


def test_idle_connection_with_client_keepalive_survives(model, tmp_path):
    options = [("grpc.keepalive_time_ms", 1000), ("grpc.keepalive_permit_without_calls", 1),
               ("grpc.http2.max_pings_without_data", 0)]
    # With the default (10 s) this client would get GOAWAY too_many_pings within seconds.
    with running_server(model, tmp_path / "server.log", "--min_client_ping_interval_seconds=1",
                        options=options) as (target, client):
        assert len(client.embed([IMAGE])) == 1
        state = []
        client.channel.subscribe(state.append, try_to_connect=False)
        time.sleep(6)  # idle: about five client pings, no calls
        assert len(client.embed([IMAGE])) == 1
        # No GOAWAY for too many pings: the connection stayed READY throughout.
        assert set(state) == {grpc.ChannelConnectivity.READY}, state


def test_opencv_decode_limit_follows_the_configuration(model, tmp_path):
    """OpenCV reads OPENCV_IO_MAX_IMAGE_PIXELS before main(): the server re-executes itself
    once (same process) so that its own limit is the configured one."""
    log = tmp_path / "server.log"
    with running_server(model, log, "--max_pixels=1000000") as (_, client):
        assert len(client.embed([IMAGE])) == 1
    text = tail(log, 10**6)
    assert "OpenCV's own decode limit in force: 1000000 pixels" in text, text[:2000]
    assert len(re.findall(r"dinov3-server \S+ starting", text)) == 1  # after the re-execution


def test_reexecuted_server_keeps_its_process_name(model, tmp_path):
    """The re-execution runs /proc/self/exe, which the kernel would name the process after
    ("exe"): ps, pgrep and top must still find dinov3-server."""
    proc, _, client = start_server(model, tmp_path / "server.log")
    try:
        with open(f"/proc/{proc.pid}/comm") as f:
            assert f.read().strip() == "dinov3-server"
    finally:
        stop_server(proc, client)
