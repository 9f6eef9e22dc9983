"""Hostile and broken HTTP clients against the real dinov3-server's HTTP front door
(server/http/http_server.h, server/openai/openai_front_door.h), with raw sockets and
http.client. Each case asserts the documented answer AND that the server still answers a good
POST /v1/embeddings afterwards, with gRPC health SERVING:

  - malformed JSON, wrong field types, bad base64, an http URL input, a too-deep JSON body
    -> 400 in OpenAI's error shape {"error": {"message", "type", "param", "code"}} naming the
    field (or input[i]); a malformed HTTP request -> 400; text/plain -> 415;
  - a body over server.max_receive_message_bytes (1 MiB here), by Content-Length (refused
    before any of it is read) or chunked -> 413; a request head over 16 KiB -> 431;
  - a missing, malformed or wrong API key -> 401 (with WWW-Authenticate: Bearer);
  - slowloris: a client dripping its request head one byte every 200 ms is closed, without an
    answer, once http.request_timeout_seconds (1 s here) has passed since its first byte, and
    a normal request on another connection is answered meanwhile;
  - 500 idle connections open at once: a normal request is still answered, a request on one
    of the idle connections too, and everything is fine after they are all closed;
  - a client that hangs up while its request (16 images) waits behind a held forward is
    recorded CANCELLED in dinov3_requests_total{method="OpenAIEmbeddings"} and its images are
    dropped before they cost model time;
  - while the server drains (SIGTERM with work held by the fault model), a new HTTP request
    gets 503 in OpenAI's error shape, a request on an already open keep-alive connection too,
    and the request that was queued before the signal is still answered 200.

"Held", "queued" and "hung up" are made by construction (the fault model of fault_helpers.py
holds a forward on a black image until the test opens its gate), never by sleeping; the
durations below are hang guards many times what they bound, not timing assertions.
"""
import base64
import http.client
import io
import json
import resource
import select
import signal
import socket
import threading
import time

import numpy as np
import pytest
from PIL import Image

from tests.integration.python.fault_helpers import (FaultServer, black, wait_log,
                                                    write_fault_model)
from tests.integration.python.server_process import (export_random_model, http_port,
                                                     running_server)

API_KEY = "hostile-test-key-0123456789abcdef"
BODY_LIMIT = 1 << 20  # --max_receive_message_bytes of the shared server
HEADER_LIMIT = 16 << 10  # http.max_header_bytes default
MAX_JSON_DEPTH = 32  # http.max_json_depth default
REQUEST_TIMEOUT = 1.0  # http.request_timeout_seconds of the slowloris server
IDLE_CONNECTIONS = 500
HANG = 120  # hang guard of every socket operation and answer (seconds), not a duration
WAIT = 60  # bound of the polls below


def png(seed, height=32, width=32):
    pixels = np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, "PNG")
    return buffer.getvalue()


def data_url(encoded):
    return "data:image/png;base64," + base64.b64encode(encoded).decode()


GOOD_BODY = json.dumps({"input": [data_url(png(1))], "encoding_format": "float"}).encode()


def raise_open_files(needed):
    """Raises this process's soft open-files limit to at least `needed` (as far as the hard
    limit allows); servers started afterwards inherit it."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < needed:
        target = needed if hard == resource.RLIM_INFINITY else min(needed, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    return soft == resource.RLIM_INFINITY or soft >= needed


def request(port, method="POST", path="/v1/embeddings", body=GOOD_BODY, key=API_KEY,
            content_type="application/json", headers=None):
    """One request on its own connection (http.client): (status, headers, body bytes)."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=HANG)
    try:
        all_headers = dict(headers or {})
        if content_type is not None:
            all_headers["Content-Type"] = content_type
        if key is not None:
            all_headers["Authorization"] = f"Bearer {key}"
        connection.request(method, path, body=body, headers=all_headers)
        answer = connection.getresponse()
        return answer.status, answer.headers, answer.read()
    finally:
        connection.close()


def raw_exchange(port, data, shutdown_write=False):
    """Sends `data` on a new connection and reads until the server closes it. Returns what was
    read; a reset after the answer (the server closes a connection with unread bytes) ends the
    read like a close."""
    with socket.create_connection(("127.0.0.1", port), timeout=HANG) as s:
        try:
            s.sendall(data)
            if shutdown_write:
                s.shutdown(socket.SHUT_WR)
        except (BrokenPipeError, ConnectionResetError):
            pass  # refused mid-send: its answer was sent first
        return read_until_closed(s)


def readable_now(sockets):
    """The sockets with something to read (data, EOF or an error) right now (poll: any fd)."""
    poller = select.poll()
    for s in sockets:
        poller.register(s, select.POLLIN | select.POLLERR | select.POLLHUP)
    return poller.poll(0)


def readable_within(s, seconds):
    poller = select.poll()
    poller.register(s, select.POLLIN | select.POLLERR | select.POLLHUP)
    return bool(poller.poll(int(seconds * 1000)))


def read_until_closed(s):
    out = b""
    while True:
        try:
            chunk = s.recv(65536)
        except ConnectionResetError:
            return out
        if not chunk:
            return out
        out += chunk


def status_of(raw):
    assert raw.startswith(b"HTTP/1.1 "), raw[:200]
    return int(raw.split(b" ", 2)[1])


def head_and_body(raw):
    head, _, body = raw.partition(b"\r\n\r\n")
    return head.decode("latin-1").lower(), body


def openai_error(body):
    """The error object of an OpenAI-shaped error body (every key present)."""
    payload = json.loads(body)
    assert set(payload) == {"error"}, payload
    error = payload["error"]
    assert set(error) == {"message", "type", "param", "code"}, error
    assert isinstance(error["message"], str) and error["message"], error
    return error


def assert_still_serving(server):
    """A good /v1/embeddings is answered with one 384-d vector, and gRPC health is SERVING."""
    status, _, body = request(server["port"])
    assert status == 200, body[:500]
    payload = json.loads(body)
    assert len(payload["data"]) == 1 and len(payload["data"][0]["embedding"]) == 384
    assert server["client"].health() == "SERVING"


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return export_random_model(tmp_path_factory.mktemp("hostile_model"), seed=51,
                               name="dino.pt")


@pytest.fixture(scope="module")
def server(model, tmp_path_factory):
    """The shared server: a 1 MiB body limit and API keys; default HTTP timeouts."""
    # For the 500 idle connections: this process and the server (it inherits the limit).
    assert raise_open_files(4 * IDLE_CONNECTIONS), "cannot raise the open-files limit"
    tmp = tmp_path_factory.mktemp("hostile_server")
    keys = tmp / "keys.txt"
    keys.write_text(API_KEY + "\n")
    log = tmp / "server.log"
    with running_server(model, log, f"--max_receive_message_bytes={BODY_LIMIT}",
                        f"--api_keys_file={keys}") as (target, client):
        yield {"port": http_port(log), "client": client, "log": log, "target": target}


# --- bodies the front door refuses -----------------------------------------------------------

# Bodies that are not UTF-8 once made the error answer itself throw (the parser's message
# quotes the odd bytes), so that the connection hung with no answer.
@pytest.mark.parametrize("body", [b"{bad", b'{"input": [', b"", b"\xff\xfe{}", b"[1, 2]",
                                  b'"just a string"', b'{"input": "x"} trailing',
                                  b'{"input": ["\xff\xfe"]}', b'{"\xc3": 1}'])
def test_malformed_json_is_400_in_openai_shape(server, body):
    status, headers, answer = request(server["port"], body=body)
    assert status == 400, answer
    assert headers["Content-Type"].startswith("application/json")
    error = openai_error(answer)
    assert error["type"] == "invalid_request_error"
    assert error["code"] is None
    assert_still_serving(server)


@pytest.mark.parametrize("fields, param", [
    ({"input": 5}, "input"),
    ({"input": {"a": 1}}, "input"),
    ({"input": []}, "input"),
    ({"input": [data_url(png(2)), 7]}, "input[1]"),
    ({"input": [data_url(png(2))], "model": ["a"]}, "model"),
    ({"input": [data_url(png(2))], "normalize": "yes"}, "normalize"),
    ({"input": [data_url(png(2))], "encoding_format": 3}, "encoding_format"),
    ({"input": [data_url(png(2))], "output": "registers"}, "output"),
    ({"input": [data_url(png(2))], "dimensions": 128}, "dimensions"),
    ({"model": "dino"}, "input"),
])
def test_wrong_types_are_400_naming_the_field(server, fields, param):
    status, _, answer = request(server["port"], body=json.dumps(fields).encode())
    assert status == 400, answer
    error = openai_error(answer)
    assert error["param"] == param, error
    assert param.split("[")[0] in error["message"], error
    assert_still_serving(server)


@pytest.mark.parametrize("item", ["data:image/png;base64,!!!not base64!!!", "%%%%",
                                  "data:image/png;base64,", "data:image/png,plain-not-base64",
                                  "data:text/plain;base64,aGVsbG8="])
def test_bad_image_strings_are_400_naming_input_i(server, item):
    body = json.dumps({"input": [data_url(png(3)), data_url(png(4)), item]}).encode()
    status, _, answer = request(server["port"], body=body)
    assert status == 400, answer
    error = openai_error(answer)
    assert error["param"] == "input[2]", error
    assert "input[2]" in error["message"], error
    assert_still_serving(server)


@pytest.mark.parametrize("url", ["http://127.0.0.1:1/cat.png", "HTTPS://example.com/cat.jpg"])
def test_url_input_is_400_and_never_fetched(server, url):
    status, _, answer = request(server["port"], body=json.dumps({"input": [url]}).encode())
    assert status == 400, answer
    error = openai_error(answer)
    assert error["param"] == "input[0]", error
    assert "not fetched" in error["message"], error
    assert_still_serving(server)


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded",
                                          None])
def test_wrong_content_type_is_415(server, content_type):
    status, _, answer = request(server["port"], content_type=content_type)
    assert status == 415, answer
    assert "application/json" in openai_error(answer)["message"]
    assert_still_serving(server)


def test_too_deep_json_is_400_naming_the_depth(server):
    deep = "[" * 40 + "]" * 40  # 41 levels with the object around it
    status, _, answer = request(server["port"], body=('{"input": ' + deep + "}").encode())
    assert status == 400, answer
    error = openai_error(answer)
    assert "deeper" in error["message"] and str(MAX_JSON_DEPTH) in error["message"], error
    # Far deeper still (a parser that recursed per level would overflow its stack).
    very_deep = "[" * 200_000 + "]" * 200_000
    status, _, answer = request(server["port"], body=('{"input": ' + very_deep + "}").encode())
    assert status == 400, answer
    assert "deeper" in openai_error(answer)["message"]
    # Exactly at the limit is not refused for its depth (it is a bad input instead).
    at_limit = "[" * (MAX_JSON_DEPTH - 1) + "]" * (MAX_JSON_DEPTH - 1)
    status, _, answer = request(server["port"], body=('{"input": ' + at_limit + "}").encode())
    assert status == 400 and "deeper" not in openai_error(answer)["message"], answer
    assert_still_serving(server)


def test_malformed_http_is_400_and_closed(server):
    raw = raw_exchange(server["port"], b"THIS IS NOT HTTP\r\n\r\n")
    assert status_of(raw) == 400, raw
    raw = raw_exchange(server["port"], b"POST /v1/embeddings HTTP/1.1\r\nHost: x\r\n"
                                       b"Content-Length: banana\r\n\r\n")
    assert status_of(raw) == 400, raw
    assert_still_serving(server)


# --- sizes ------------------------------------------------------------------------------------

def test_body_over_the_limit_is_413_before_it_is_read(server):
    # Content-Length over the limit and none of the body sent: refused from the head alone.
    head = (f"POST /v1/embeddings HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {API_KEY}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {BODY_LIMIT + 1}\r\n\r\n")
    raw = raw_exchange(server["port"], head.encode())
    assert status_of(raw) == 413, raw
    head_text, _ = head_and_body(raw)
    assert "connection: close" in head_text
    # A whole body over the limit, sent with http.client.
    big = json.dumps({"input": ["A" * (BODY_LIMIT + 10)]}).encode()
    try:
        status, _, _ = request(server["port"], body=big)
        assert status == 413
    except (BrokenPipeError, ConnectionResetError):
        pass  # the server answered 413 and closed while the client was still sending
    assert_still_serving(server)


def test_chunked_body_over_the_limit_is_413(server):
    head = (f"POST /v1/embeddings HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {API_KEY}\r\n"
            f"Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n").encode()
    chunk = b"a" * 65536
    chunks = b"".join(b"%x\r\n" % len(chunk) + chunk + b"\r\n"
                      for _ in range(2 * BODY_LIMIT // len(chunk)))
    raw = raw_exchange(server["port"], head + chunks + b"0\r\n\r\n")
    assert status_of(raw) == 413, raw[:300]
    assert_still_serving(server)


def test_body_just_under_the_limit_is_read(server):
    """Not refused for its size: a body of BODY_LIMIT bytes reaches the JSON parser."""
    body = json.dumps({"input": ["A" * (BODY_LIMIT - 20)]}).encode()
    assert len(body) <= BODY_LIMIT
    status, _, answer = request(server["port"], body=body)
    assert status == 400, answer[:300]  # read: valid base64, but not an image
    error = openai_error(answer)
    assert error["param"].startswith("input") and "[0]" in error["message"], error
    assert_still_serving(server)


def test_oversize_header_is_431(server):
    head = (f"POST /v1/embeddings HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {API_KEY}\r\n"
            f"X-Padding: {'p' * (HEADER_LIMIT + 1024)}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(GOOD_BODY)}\r\n\r\n")
    raw = raw_exchange(server["port"], head.encode() + GOOD_BODY)
    assert status_of(raw) == 431, raw[:300]
    # Many small headers adding up to more than the limit.
    many = "".join(f"X-H{i}: {'v' * 100}\r\n" for i in range(HEADER_LIMIT // 100 + 10))
    raw = raw_exchange(server["port"], (f"GET /v1/models HTTP/1.1\r\nHost: x\r\n{many}\r\n")
                       .encode())
    assert status_of(raw) == 431, raw[:300]
    assert_still_serving(server)


# --- API keys ---------------------------------------------------------------------------------

@pytest.mark.parametrize("authorization", [None, f"Bearer {API_KEY}x", f"Bearer {API_KEY[:-1]}",
                                           "Bearer ", f"Basic {API_KEY}", API_KEY,
                                           f"bearer-{API_KEY}"])
def test_missing_or_wrong_api_key_is_401(server, authorization):
    headers = {} if authorization is None else {"Authorization": authorization}
    for method, path, body in [("POST", "/v1/embeddings", GOOD_BODY), ("GET", "/v1/models", None)]:
        status, answer_headers, answer = request(server["port"], method, path, body=body,
                                                 key=None, headers=headers)
        assert status == 401, answer
        assert answer_headers["WWW-Authenticate"] == "Bearer"
        error = openai_error(answer)
        assert error["type"] == "authentication_error", error
        assert API_KEY not in answer.decode()  # the key is never echoed
    assert API_KEY not in server["log"].read_text(errors="replace")
    assert_still_serving(server)


# --- slow, idle and vanishing clients ---------------------------------------------------------

def test_slowloris_is_closed_after_the_request_timeout(model, tmp_path):
    config = tmp_path / "slow.yaml"
    config.write_text(f"http:\n  request_timeout_seconds: {REQUEST_TIMEOUT}\n")
    log = tmp_path / "server.log"
    with running_server(model, log, f"--config={config}") as (target, client):
        port = http_port(log)
        srv = {"port": port, "client": client}
        # A head that takes 80 s to drip: the server must close the connection long before.
        head = (b"POST /v1/embeddings HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                b"Content-Type: application/json\r\nX-Slow: " + b"s" * 300 + b"\r\n"
                b"Content-Length: 2\r\n\r\n{}")
        outcome = {}
        dripping = threading.Event()

        def drip():
            with socket.create_connection(("127.0.0.1", port), timeout=HANG) as s:
                start = time.monotonic()
                for i, byte in enumerate(head):
                    try:
                        s.sendall(bytes([byte]))
                    except (BrokenPipeError, ConnectionResetError):
                        break  # closed by the server
                    if i == 2:
                        dripping.set()
                    # Waits 200 ms for the server to close (readable: EOF or reset).
                    if readable_within(s, 0.2):
                        break
                outcome["elapsed"] = time.monotonic() - start
                outcome["sent"] = i + 1
                outcome["answer"] = read_until_closed(s)
                dripping.set()

        thread = threading.Thread(target=drip)
        thread.start()
        try:
            assert dripping.wait(HANG)
            # Meanwhile, on another connection: answered (the event loop is not held).
            status, _, body = request(port)
            assert status == 200, body[:300]
        finally:
            thread.join(HANG)
        assert not thread.is_alive()
        assert outcome["sent"] < len(head), outcome  # closed before it had sent its head
        assert outcome["answer"] == b"", outcome  # closed without an answer
        # Not before the timeout (its timer starts at the first byte, after `start`), and not
        # absurdly after it (a hang guard, many times the timeout).
        assert outcome["elapsed"] >= REQUEST_TIMEOUT * 0.99, outcome
        assert outcome["elapsed"] < 30 * REQUEST_TIMEOUT, outcome
        # A client that keeps a whole-but-slow body coming is closed the same way.
        with socket.create_connection(("127.0.0.1", port), timeout=HANG) as s:
            s.sendall(b"POST /v1/embeddings HTTP/1.1\r\nHost: x\r\nContent-Type: "
                      b"application/json\r\nContent-Length: 1000\r\n\r\n{")
            start = time.monotonic()
            closed = False
            while time.monotonic() - start < 30 * REQUEST_TIMEOUT:
                try:
                    s.sendall(b" ")
                except (BrokenPipeError, ConnectionResetError):
                    closed = True
                    break
                if readable_within(s, 0.2):
                    closed = read_until_closed(s) == b""
                    break
            assert closed
        assert_still_serving(srv)  # (no API keys here: the header is ignored)


def test_many_idle_connections_do_not_block_requests(server):
    assert raise_open_files(4 * IDLE_CONNECTIONS)
    port = server["port"]
    idle = []
    try:
        for _ in range(IDLE_CONNECTIONS):
            idle.append(socket.create_connection(("127.0.0.1", port), timeout=HANG))
        # All open; a normal request on a new connection is answered.
        assert_still_serving(server)
        # The idle connections are live: the first one opened (the one waiting longest) and
        # the last one can each carry a request.
        for s in [idle[0], idle[-1]]:
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=HANG)
            connection.sock = s
            connection.request("POST", "/v1/embeddings", body=GOOD_BODY,
                               headers={"Content-Type": "application/json",
                                        "Authorization": f"Bearer {API_KEY}"})
            answer = connection.getresponse()
            assert answer.status == 200
            answer.read()
        # None was closed by the server meanwhile (none is readable: no EOF, no data).
        assert not readable_now(idle[1:-1]), "idle connections closed by the server"
    finally:
        for s in idle:
            s.close()
    assert_still_serving(server)
    # Again, with the connections gone: nothing leaked (a second round of them works too).
    again = [socket.create_connection(("127.0.0.1", port), timeout=HANG)
             for _ in range(IDLE_CONNECTIONS)]
    try:
        assert_still_serving(server)
    finally:
        for s in again:
            s.close()
    assert_still_serving(server)


# --- clients that hang up, and the drain (the fault model holds the worker) --------------------

def big_request_bytes(images, key=None):
    """A raw POST /v1/embeddings of `images` larger PNGs (about 200 KB each)."""
    body = json.dumps({"input": [data_url(png(100 + i, 256, 256)) for i in range(images)]})
    body = body.encode()
    auth = f"Authorization: Bearer {key}\r\n" if key else ""
    return (f"POST /v1/embeddings HTTP/1.1\r\nHost: x\r\n{auth}"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
            ).encode() + body


def wait_images_queued(server, before, images):
    """Waits until `images` more images than the blocker's were decoded since `before`: the
    request was read whole and its images wait in the queue behind the held forward."""
    decoded = "dinov3_preprocess_duration_seconds_count"
    server.wait_for(lambda c: c.of_model(decoded) - before.of_model(decoded) >= 1 + images,
                    f"the {images} images decoded and queued")


def assert_hung_up_request_dropped(server, before, blocker):
    """After the client of the OpenAI request queued behind `blocker` hung up (and a barrier):
    releases the held forward, then checks that the request is recorded CANCELLED and that its
    images were dropped before the model (only the blocker's image ran)."""
    assert not blocker.done()  # still held: the queued images cannot have run
    server.release_slow()
    assert blocker.result().embeddings[0].cls.data
    server.wait_for(lambda c: c.delta(before, "OpenAIEmbeddings").get("CANCELLED", 0) >= 1,
                    "the hung-up request recorded CANCELLED")
    after = server.wait_idle()
    assert after.delta(before, "OpenAIEmbeddings") == {"CANCELLED": 1}, server.access_log()
    assert after.delta(before, "Embed") == {"OK": 1}
    assert after.of_model("dinov3_images_total") - before.of_model("dinov3_images_total") \
        == 1, server.access_log()


@pytest.fixture(scope="module")
def fault_model(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("hostile_fault")
    return write_fault_model(export_random_model(tmp, seed=52), tmp / "fault.pt")


def test_client_that_hangs_up_is_recorded_cancelled(fault_model, tmp_path):
    """16 images queued behind a held forward; the client closes its socket once they are
    decoded and queued. The server sees the hang-up (is_cancelled), drops the images before
    they cost model time, and records the request CANCELLED."""
    with FaultServer(fault_model, tmp_path / "server.log", "--max_batch_size=1",
                     "--intra_op_threads=1") as server:
        port = http_port(server.log_path)
        srv = {"port": port, "client": server.client}
        before = server.counters()
        blocker = server.stub.Embed.future(server.client.build_request([black()]), timeout=HANG)
        server.wait_running(before)  # the only worker is held on the black image
        with socket.create_connection(("127.0.0.1", port), timeout=HANG) as s:
            s.sendall(big_request_bytes(16))
            # Read whole and handed to the pipeline (on a busy machine the 3 MB body can take
            # longer to read than the barrier below to answer).
            wait_images_queued(server, before, 16)
        # Closed. Barrier: a request on another connection, answered by the same event loop
        # thread, which had the hang-up (the FIN is in the server's socket when close()
        # returns on loopback) before it could read this one. Instead of a sleep.
        status, _, _ = request(port, "GET", "/v1/models")
        assert status == 200
        assert_hung_up_request_dropped(server, before, blocker)
        assert_still_serving(srv)


def test_hang_up_while_running_is_recorded_cancelled(fault_model, tmp_path):
    """The request's own (black) image is running when the client hangs up: the forward
    finishes, but the client is gone, so the request is recorded CANCELLED, not OK."""
    with FaultServer(fault_model, tmp_path / "server.log", "--max_batch_size=1",
                     "--intra_op_threads=1") as server:
        port = http_port(server.log_path)
        before = server.counters()
        buffer = io.BytesIO()
        Image.fromarray(black()).save(buffer, "PNG")
        body = json.dumps({"input": [data_url(buffer.getvalue())]}).encode()
        with socket.create_connection(("127.0.0.1", port), timeout=HANG) as s:
            s.sendall((f"POST /v1/embeddings HTTP/1.1\r\nHost: x\r\nContent-Type: "
                       f"application/json\r\nContent-Length: {len(body)}\r\n\r\n").encode()
                      + body)
            server.wait_running(before)  # its forward is held
        status, _, _ = request(port, "GET", "/v1/models")  # barrier, as above
        assert status == 200
        server.release_slow()
        after = server.wait_for(
            lambda c: sum(c.delta(before, "OpenAIEmbeddings").values()) >= 1,
            "the hung-up request recorded")
        assert after.delta(before, "OpenAIEmbeddings") == {"CANCELLED": 1}, server.access_log()
        server.wait_idle()
        assert_still_serving({"port": port, "client": server.client})


def test_draining_server_answers_503(fault_model, tmp_path):
    """SIGTERM while a forward is held: new HTTP requests get 503 (OpenAI's error shape,
    Connection: close), on new and on already open keep-alive connections, and the HTTP request
    queued before the signal is still answered 200; the process then exits 0.

    The HTTP listener stays open while accepted work drains (HttpServer::Stop, which closes it,
    runs once nothing is held), so with the forward held a new connection is accepted and
    answered 503. A refused connection is accepted too: it is what a client sees once the
    listener is closed, and equally tells it to go elsewhere; which one this run saw is
    printed."""
    with FaultServer(fault_model, tmp_path / "server.log", "--max_batch_size=1",
                     "--intra_op_threads=1", "--drain_seconds=300") as server:
        port = http_port(server.log_path)
        before = server.counters()
        blocker = server.stub.Embed.future(server.client.build_request([black()]), timeout=HANG)
        server.wait_running(before)
        queued = {}

        def queued_request():
            queued["answer"] = request(port)

        thread = threading.Thread(target=queued_request)
        thread.start()
        server.wait_queued(1)
        keep_alive = http.client.HTTPConnection("127.0.0.1", port, timeout=HANG)
        status, _, _ = request(port, "GET", "/v1/models")
        assert status == 200
        keep_alive.request("GET", "/v1/models")
        first = keep_alive.getresponse()
        assert first.status == 200 and first.getheader("Connection") != "close"
        first.read()
        server.proc.send_signal(signal.SIGTERM)
        try:
            wait_log(server, "draining: waiting up to")
            try:
                status, headers, body = request(port)
                seen = "503"
                assert status == 503, body
                assert headers["Connection"] == "close"
                error = openai_error(body)
                assert error["type"] == "server_error" and "draining" in error["message"]
            except ConnectionRefusedError:
                seen = "refused"
            print(f"a new connection while draining: {seen}")
            keep_alive.request("POST", "/v1/embeddings", body=GOOD_BODY,
                               headers={"Content-Type": "application/json"})
            late = keep_alive.getresponse()
            assert late.status == 503
            assert "draining" in openai_error(late.read())["message"]
            assert late.getheader("Connection") == "close"
            assert "answer" not in queued  # still waiting behind the held forward
        finally:
            keep_alive.close()
            server.release_slow()
            thread.join(HANG)
        assert blocker.result().embeddings
        status, _, body = queued["answer"]
        assert status == 200, body[:300]
        assert len(json.loads(body)["data"]) == 1
        assert server.proc.wait(timeout=WAIT) == 0
