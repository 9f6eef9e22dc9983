"""server.max_connection_age_seconds: the server sends GOAWAY to a connection once it is older
than the age, so a client's channel drops to IDLE and reconnects (to whichever replica its load
balancer picks) on the next call; calls on both sides of the GOAWAY succeed. With the age set
to 0 the connection stays up.
"""
import threading
import time

import grpc
import numpy as np
import pytest

from tests.integration.python.server_process import export_random_model, running_server


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return export_random_model(tmp_path_factory.mktemp("model"), seed=4)


WAIT_SECONDS = 30  # bound of the wait for a GOAWAY (the age is 1 s): a hang guard


def went_idle_after_ready(states):
    ready = grpc.ChannelConnectivity.READY
    return ready in states and grpc.ChannelConnectivity.IDLE in states[states.index(ready):]


def states_around_calls(client, seconds=None, until=None):
    """Connectivity states of the client's channel from just before one Embed until after a
    second Embed, sent `seconds` later or once until(states) holds (at most WAIT_SECONDS).
    Recording starts before the first call, so a connection that aged out while the server
    started (a loaded machine) still shows its reconnect."""
    states, lock = [], threading.Lock()

    def record(state):
        with lock:
            states.append(state)

    def snapshot():
        with lock:
            return list(states)

    image = np.zeros((32, 32, 3), dtype=np.uint8)
    client.channel.subscribe(record, try_to_connect=False)
    client.embed([image])
    if until is None:
        time.sleep(seconds)
    else:
        deadline = time.monotonic() + WAIT_SECONDS
        while not until(snapshot()) and time.monotonic() < deadline:
            time.sleep(0.05)
    client.embed([image])  # reconnects if it had to
    client.channel.unsubscribe(record)
    return snapshot()


def test_aged_connection_gets_goaway_and_client_reconnects(model, tmp_path):
    with running_server(model, str(tmp_path / "server.log"), "--max_connection_age_seconds=1",
                        "--max_connection_age_grace_seconds=1") as (_, client):
        # Waits for the GOAWAY itself (at about 1 s of age) rather than a fixed time.
        states = states_around_calls(client, until=went_idle_after_ready)
    ready = grpc.ChannelConnectivity.READY
    assert ready in states, states
    after_ready = states[states.index(ready):]
    assert grpc.ChannelConnectivity.IDLE in after_ready, states  # GOAWAY once aged
    after_idle = after_ready[after_ready.index(grpc.ChannelConnectivity.IDLE):]
    assert ready in after_idle, states  # and the next call connected again


def test_zero_age_keeps_the_connection(model, tmp_path):
    with running_server(model, str(tmp_path / "server.log"),
                        "--max_connection_age_seconds=0") as (_, client):
        # Nothing to wait for: that nothing happens takes a while to see (3 s, three times the
        # age of the other case); on any machine the connection must stay up throughout.
        states = states_around_calls(client, seconds=3)
    assert grpc.ChannelConnectivity.IDLE not in states, states
