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


def states_after_a_call(client, seconds):
    """Connectivity states of the client's channel during `seconds` after one Embed."""
    states, lock = [], threading.Lock()

    def record(state):
        with lock:
            states.append(state)

    image = np.zeros((32, 32, 3), dtype=np.uint8)
    client.embed([image])
    client.channel.subscribe(record, try_to_connect=False)
    time.sleep(seconds)
    client.channel.unsubscribe(record)
    client.embed([image])  # reconnects if it had to
    with lock:
        return list(states)


def test_aged_connection_gets_goaway_and_client_reconnects(model, tmp_path):
    with running_server(model, str(tmp_path / "server.log"), "--max_connection_age_seconds=1",
                        "--max_connection_age_grace_seconds=1") as (_, client):
        states = states_after_a_call(client, 4)
    assert grpc.ChannelConnectivity.READY in states
    assert grpc.ChannelConnectivity.IDLE in states[states.index(grpc.ChannelConnectivity.READY):]


def test_zero_age_keeps_the_connection(model, tmp_path):
    with running_server(model, str(tmp_path / "server.log"),
                        "--max_connection_age_seconds=0") as (_, client):
        states = states_after_a_call(client, 3)
    assert grpc.ChannelConnectivity.IDLE not in states, states
