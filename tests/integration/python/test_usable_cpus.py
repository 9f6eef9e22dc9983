"""Thread defaults follow the CPUs the server may use, not the machine's (usable_cpus.h).

The real dinov3-server, started under `taskset -c CPU` with one CPU of this test's own affinity
mask, must report 1 usable CPU in its start-up log and give its CPU model instance 1 intra-op
thread, however many cores the test machine has.
"""
import os
import re
import shlex
import shutil

import pytest

from tests.integration.python.server_process import (SERVER, export_random_model, start_server,
                                                     stop_server, tail)


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return export_random_model(tmp_path_factory.mktemp("model"), seed=31)


def test_thread_defaults_follow_the_affinity_mask(model, tmp_path):
    taskset = shutil.which("taskset")
    if taskset is None:
        pytest.skip("taskset (util-linux) is not installed")
    if not os.access(SERVER, os.X_OK):
        pytest.fail(f"{SERVER} is missing: build it first (scripts/build.sh)", pytrace=False)
    cpu = min(os.sched_getaffinity(0))
    wrapper = tmp_path / "dinov3-server-on-one-cpu"
    command = f"exec {shlex.quote(taskset)} -c {cpu} {shlex.quote(SERVER)}"
    wrapper.write_text(f'#!/bin/sh\n{command} "$@"\n')
    wrapper.chmod(0o755)
    log = tmp_path / "server.log"
    proc, _, client = start_server(model, str(log), server=str(wrapper))
    try:
        assert client.health() == "SERVING"
    finally:
        assert stop_server(proc, client) == 0, tail(str(log))
    text = tail(str(log), 10**6)
    defaults = re.search(r"thread defaults: (\d+) usable CPUs? \(affinity mask (\d+) of", text)
    assert defaults is not None, f"no usable-CPU line in the server log:\n{tail(str(log))}"
    assert defaults.groups() == ("1", "1"), defaults.group(0)
    intra_op = re.findall(r"intra-op threads (\d+)", text)
    assert intra_op and set(intra_op) == {"1"}, f"intra-op threads {intra_op}:\n{tail(str(log))}"
