"""HTTPS on the HTTP front doors (server/http/http_server.h) of the real dinov3-server: the same
tls.cert_file / tls.key_file / tls.client_ca_file / tls.reload_seconds and API keys as gRPC.

- TLS: POST /v1/embeddings over HTTPS, verified against the test CA (Python's ssl, host name
  checked), returns exactly (bit for bit) the native Embed answer of the same server over gRPC
  with TLS; the log names the https scheme; a plain-HTTP request to the HTTPS port gets no
  embedding (the connection fails or is answered with an error, never 200), and the server
  still serves HTTPS afterwards.
- Rotation: new certificate and key files moved over the old ones (a new key and serial, same
  CA) are presented to new HTTPS connections (peer certificate's SHA-256 fingerprint and serial)
  with tls.reload_seconds=1, polled with a generous deadline; a verified request on a new
  connection is then served.
- Mutual TLS: without a client certificate, or with one from another CA, no request is served;
  with one signed by tls.client_ca_file, it is.
- API keys over HTTPS: the right Bearer key is served, a missing or wrong one gets 401.
- Hang-up over TLS: a client that sends a request of 16 images queued behind a held forward and
  then closes properly (its TLS close_notify alert first, then the TCP close) has the request
  recorded CANCELLED and none of its images reach the model, as over plain HTTP
  (test_http_hostile.py).
- Start-up: a non-loopback http.listen without TLS is refused (non-zero exit, the error names
  http.listen); with tls.allow_plaintext it starts and serves plain HTTP there.

Every server runs with batching.max_batch_size=1 so that the HTTP and gRPC answers are computed
alike (test_openai.py explains why). Certificates are made with test_security.py's openssl
helpers (EC P-256), once per module.
"""
import base64
import hashlib
import http.client
import io
import json
import os
import shutil
import socket
import ssl
import subprocess
import time

import numpy as np
import pytest
from PIL import Image

from tests.integration.python.fault_helpers import FaultServer, black
from tests.integration.python.server_process import (SERVER, export_random_model, free_port,
                                                     http_port, running_server, tail)
from tests.integration.python.test_http_hostile import (  # noqa: F401 (fault_model: a fixture)
    HANG, assert_hung_up_request_dropped, big_request_bytes, fault_model, wait_images_queued)
# The certificates: CAs ca and other-ca; server-1, server-2, client-1 (ca); stranger (other-ca).
from tests.integration.python.test_security import pki  # noqa: F401 (a fixture)
from dinov3_client import tls_credentials  # noqa: E402 (on the path through server_process)

API_KEY = "https-test-key-0123456789abcdef"
HTTP_SECONDS = 120  # hang guard of one HTTP exchange, not a duration
ROTATION_SECONDS = 60  # hang guard of the rotation poll (tls.reload_seconds is 1)
MODEL_NAME = "dino"


def png(seed, height, width):
    pixels = np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, "PNG")
    return buffer.getvalue()


ENCODED = [png(1, 64, 48), png(2, 100, 140)]
BODY = {"model": MODEL_NAME, "encoding_format": "base64",
        "input": [f"data:image/png;base64,{base64.b64encode(e).decode()}" for e in ENCODED]}


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return export_random_model(tmp_path_factory.mktemp("https_model"), seed=41,
                               name=f"{MODEL_NAME}.pt")


def tls_flags(pki, name="server-1"):
    return [f"--tls_cert_file={pki(name + '.crt')}", f"--tls_key_file={pki(name + '.key')}",
            "--max_batch_size=1"]


def client_context(pki, cert=None):
    """Verifies the server against the test CA (and its host name); `cert`: the client's."""
    context = ssl.create_default_context(cafile=pki("ca.crt"))
    if cert is not None:
        context.load_cert_chain(pki(cert + ".crt"), pki(cert + ".key"))
    return context


def post_embeddings(port, context=None, headers=None, body=BODY):
    """POST /v1/embeddings (HTTPS with `context`, else plain HTTP); returns (status, parsed
    body or the raw bytes, DER certificate of the server or None)."""
    if context is None:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=HTTP_SECONDS)
    else:
        connection = http.client.HTTPSConnection("127.0.0.1", port, timeout=HTTP_SECONDS,
                                                 context=context)
    try:
        connection.request("POST", "/v1/embeddings", body=json.dumps(body).encode(),
                           headers={"Content-Type": "application/json", **(headers or {})})
        response = connection.getresponse()
        payload = response.read()
        der = connection.sock.getpeercert(binary_form=True) if context is not None else None
        try:
            payload = json.loads(payload)
        except ValueError:
            pass
        return response.status, payload, der
    finally:
        connection.close()


def vectors(payload):
    assert [d["index"] for d in payload["data"]] == list(range(len(payload["data"])))
    return [np.frombuffer(base64.b64decode(d["embedding"]), dtype="<f4") for d in payload["data"]]


def pem_fingerprint(path):
    with open(path) as f:
        return hashlib.sha256(ssl.PEM_cert_to_DER_cert(f.read())).hexdigest()


def serial(der):
    out = subprocess.run(["openssl", "x509", "-inform", "DER", "-noout", "-serial"], input=der,
                         capture_output=True, check=True).stdout.decode()
    return out.strip().split("=", 1)[1]


def served_fingerprint(port):
    """SHA-256 of the certificate the HTTPS port presents on a new connection (not verified:
    the poll must see whichever certificate is served)."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    with socket.create_connection(("127.0.0.1", port), timeout=HTTP_SECONDS) as raw:
        with context.wrap_socket(raw, server_hostname="localhost") as tls:
            return hashlib.sha256(tls.getpeercert(binary_form=True)).hexdigest()


def refused(port, context):
    """True when an HTTPS request with `context` is not served: the TLS handshake fails, the
    connection is reset or closed without an answer (with TLS 1.3 the server's verdict on a
    client certificate reaches the client after its side of the handshake, at the first read),
    or an error status comes."""
    try:
        status, _, _ = post_embeddings(port, context)
    except (ssl.SSLError, ConnectionResetError, BrokenPipeError, http.client.RemoteDisconnected):
        return True
    return status != 200


def test_https_embeddings_equal_native_grpc_over_tls(model, pki, tmp_path):
    log = tmp_path / "server.log"
    with running_server(model, log, *tls_flags(pki),
                        credentials=tls_credentials(pki("ca.crt"))) as (_, client):
        port = http_port(log)
        assert f"HTTP front doors on https://127.0.0.1:0 (port {port})" in tail(log, 10**6)
        native = client.embed(ENCODED, outputs=("cls",), dtype="float32", l2_normalize=True)
        status, payload, der = post_embeddings(port, client_context(pki))
        assert status == 200, payload
        assert hashlib.sha256(der).hexdigest() == pem_fingerprint(pki("server-1.crt"))
        assert payload["model"] == MODEL_NAME
        got = vectors(payload)
        assert len(got) == len(native) == len(ENCODED)
        for i, (vector, result) in enumerate(zip(got, native)):
            assert vector.tobytes() == result.cls.astype("<f4").tobytes(), f"image {i}"

        # Plain HTTP to the HTTPS port: no embedding.
        try:
            status, payload, _ = post_embeddings(port)
            assert status != 200, f"plain HTTP was served: {str(payload)[:200]}"
            assert not (isinstance(payload, dict) and "data" in payload)
        except (OSError, http.client.HTTPException):
            pass  # closed, reset or not HTTP at all: refused
        # A client that does not trust the CA is refused by its own verification.
        with pytest.raises(ssl.SSLCertVerificationError):
            post_embeddings(port, ssl.create_default_context(cafile=pki("other-ca.crt")))
        # The refused connections did not hurt the server.
        status, payload, _ = post_embeddings(port, client_context(pki))
        assert status == 200 and len(vectors(payload)) == len(ENCODED)


def test_https_client_that_hangs_up_is_recorded_cancelled(fault_model, pki, tmp_path):
    """16 images queued behind a held forward; the client sends its close_notify (a TLS record:
    bytes on the socket, not an end of stream) and closes. The server still sees the hang-up,
    drops the images before they cost model time and records the request CANCELLED."""
    with FaultServer(fault_model, tmp_path / "server.log", *tls_flags(pki),
                     "--intra_op_threads=1",
                     credentials=tls_credentials(pki("ca.crt"))) as server:
        port = http_port(server.log_path)
        before = server.counters()
        blocker = server.stub.Embed.future(server.client.build_request([black()]), timeout=HANG)
        server.wait_running(before)  # the only worker is held on the black image
        raw = socket.create_connection(("127.0.0.1", port), timeout=HANG)
        with client_context(pki).wrap_socket(raw, server_hostname="localhost") as tls:
            tls.sendall(big_request_bytes(16))
            # Its images are decoded and queued: the server has read the whole request and is
            # watching the connection, so the alert comes after it, as its own record.
            wait_images_queued(server, before, 16)
            tls.setblocking(False)
            with pytest.raises(ssl.SSLWantReadError):
                tls.unwrap()  # sends close_notify; the server's answer to it never comes
        # Closed. Barrier: a request on a new connection, whose handshake and answer take the
        # same event loop thread several turns after it read the alert. Instead of a sleep.
        connection = http.client.HTTPSConnection("127.0.0.1", port, timeout=HANG,
                                                 context=client_context(pki))
        connection.request("GET", "/v1/models")
        assert connection.getresponse().status == 200
        connection.close()
        assert_hung_up_request_dropped(server, before, blocker)


def test_rotated_certificate_reaches_new_https_connections(model, pki, tmp_path):
    cert, key = tmp_path / "tls.crt", tmp_path / "tls.key"
    shutil.copy(pki("server-1.crt"), cert)
    shutil.copy(pki("server-1.key"), key)
    log = tmp_path / "server.log"
    with running_server(model, log, f"--tls_cert_file={cert}", f"--tls_key_file={key}",
                        "--tls_reload_seconds=1", "--max_batch_size=1",
                        credentials=tls_credentials(pki("ca.crt"))):
        port = http_port(log)
        old, new = pem_fingerprint(pki("server-1.crt")), pem_fingerprint(pki("server-2.crt"))
        assert old != new
        assert served_fingerprint(port) == old
        status, _, der_before = post_embeddings(port, client_context(pki))
        assert status == 200
        # A rotation as Kubernetes does it: new files moved into place (key first).
        for src, dst in [(pki("server-2.key"), key), (pki("server-2.crt"), cert)]:
            shutil.copy(src, f"{dst}.new")
            os.replace(f"{dst}.new", dst)
        deadline = time.monotonic() + ROTATION_SECONDS
        while (seen := served_fingerprint(port)) != new:
            assert seen == old, "the HTTPS port serves a certificate that is neither"
            assert time.monotonic() < deadline, \
                f"the rotated certificate was not served within {ROTATION_SECONDS} s"
            time.sleep(0.5)
        status, payload, der_after = post_embeddings(port, client_context(pki))
        assert status == 200 and len(vectors(payload)) == len(ENCODED)
        assert hashlib.sha256(der_after).hexdigest() == new
        assert serial(der_after) != serial(der_before)


def test_mutual_tls_serves_only_clients_with_a_certificate_from_the_ca(model, pki, tmp_path):
    log = tmp_path / "server.log"
    good = tls_credentials(pki("ca.crt"), pki("client-1.crt"), pki("client-1.key"))
    with running_server(model, log, *tls_flags(pki), f"--tls_client_ca_file={pki('ca.crt')}",
                        credentials=good):
        port = http_port(log)
        assert refused(port, client_context(pki)), "served without a client certificate"
        assert refused(port, client_context(pki, cert="stranger")), \
            "served a client certificate from another CA"
        status, payload, _ = post_embeddings(port, client_context(pki, cert="client-1"))
        assert status == 200, payload
        assert len(vectors(payload)) == len(ENCODED)


def test_api_keys_over_https(model, pki, tmp_path):
    keys = tmp_path / "keys.txt"
    keys.write_text(f"# the test's key\n{API_KEY}\n")
    log = tmp_path / "server.log"
    with running_server(model, log, *tls_flags(pki), f"--api_keys_file={keys}",
                        credentials=tls_credentials(pki("ca.crt")), api_key=API_KEY):
        port = http_port(log)
        context = client_context(pki)
        status, payload, _ = post_embeddings(port, context, {"Authorization": f"Bearer {API_KEY}"})
        assert status == 200, payload
        assert len(vectors(payload)) == len(ENCODED)
        for headers in [{}, {"Authorization": "Bearer wrong-key-0123456789abcdef"},
                        {"Authorization": f"Basic {API_KEY}"}]:
            status, payload, _ = post_embeddings(port, context, headers)
            assert status == 401, (headers, payload)
            assert "data" not in payload
    assert API_KEY not in tail(log, 10**6)


def test_fresh_tls_connections_are_answered(model, pki, tmp_path):
    """Each of 20 new mutual-TLS connections gets its answer (GET /v2/health/ready): the first
    request often arrives with the handshake's last flight, already inside the TLS stream's
    buffer (a server that waited for the socket to become readable never answered it)."""
    log = tmp_path / "server.log"
    good = tls_credentials(pki("ca.crt"), pki("client-1.crt"), pki("client-1.key"))
    with running_server(model, log, *tls_flags(pki), f"--tls_client_ca_file={pki('ca.crt')}",
                        credentials=good):
        port = http_port(log)
        context = client_context(pki, cert="client-1")
        for i in range(20):
            connection = http.client.HTTPSConnection("127.0.0.1", port, timeout=HTTP_SECONDS,
                                                     context=context)
            try:
                connection.request("GET", "/v2/health/ready")
                response = connection.getresponse()
            except http.client.RemoteDisconnected:
                pytest.fail(f"connection {i}: closed by the server without an answer")
            finally:
                connection.close()
            assert response.status == 200, i


def test_non_loopback_http_listen_needs_tls_or_allow_plaintext(model, tmp_path):
    grpc_loopback = f"--listen=127.0.0.1:{free_port()}"  # only http.listen is exposed
    proc = subprocess.run([SERVER, f"--model={model}", "--metrics_enabled=false", grpc_loopback,
                           "--http_listen=0.0.0.0:0"],
                          capture_output=True, text=True, timeout=120)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0, out
    assert "http.listen" in out and "0.0.0.0" in out and "TLS" in out, out
    log = tmp_path / "server.log"
    with running_server(model, log, "--http_listen=0.0.0.0:0", "--allow_plaintext=true",
                        "--max_batch_size=1"):
        port = http_port(log)
        assert f"HTTP front doors on http://0.0.0.0:0 (port {port})" in tail(log, 10**6)
        status, payload, _ = post_embeddings(port)  # plain HTTP, here over loopback
        assert status == 200, payload
        assert len(vectors(payload)) == len(ENCODED)
