"""dinov3-embed against the real dinov3-server: a generated collection of a few hundred images
with corrupt files among them (bulk_helpers.make_collection).

  - a folder run finishes; each valid image is in exactly one shard, each corrupt one in
    errors.jsonl with the server's code and message; the vectors equal single Embed calls of the
    same files; the shards on disk are those the manifest lists; the .npy format, a CSV list and
    WebDataset .tar shards give the same vectors;
  - SIGKILL midway, then --resume (also after a torn manifest line and a shard renamed into
    place but never listed): the union of the shards has each image exactly once;
  - two servers, one drained with SIGTERM during the run: the run completes on the other with
    no image lost or duplicated; one killed while it holds requests: the other answers them.
"Midway" and "during the run" by construction, not by timing: the run reads its paths from
standard input, which the test feeds in two parts; the event happens after the first part is
committed and before the second part is written.
"""
import csv
import json
import os
import signal
import subprocess
import tarfile

import numpy as np
import pytest

from tests.integration.python.bulk_helpers import (bulk_env, embed_command, make_collection,
                                                   run_embed, wait_for_shards)
from tests.integration.python.fault_helpers import FaultServer, SlowGate, black, write_fault_model
from tests.integration.python.server_process import (export_random_model, free_port,
                                                      running_server, start_server, stop_server)
from tests.integration.python.synthetic_images import save
from dinov3_client.bulk.store import load_collection  # noqa: E402  (path set by server_process)

IMAGES = 300
SHARD = 50
# Batching changes the summation order of the forward's matrix products (float32).
ATOL, RTOL = 2e-5, 1e-4


@pytest.fixture(scope="module")
def collection(tmp_path_factory):
    folder = tmp_path_factory.mktemp("collection")
    valid, corrupt = make_collection(str(folder), IMAGES)
    return str(folder), valid, corrupt


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return export_random_model(tmp_path_factory.mktemp("model"), seed=21)


@pytest.fixture(scope="module")
def server(model, tmp_path_factory):
    with running_server(model, tmp_path_factory.mktemp("log") / "server.log") as (target, client):
        yield target, client


def listed_shards(out):
    with open(os.path.join(out, "manifest.jsonl")) as f:
        return [json.loads(line)["shard"] for line in f]


def check_exactly_once(out, valid, corrupt):
    """Every valid id in exactly one listed shard, every corrupt one in errors.jsonl once, and
    no shard file on disk the manifest does not list."""
    result = load_collection(out, "cls")
    assert len(result.ids) == len(set(result.ids)), "an image was written twice"
    assert sorted(result.ids) == valid
    assert sorted(e["id"] for e in result.errors) == corrupt
    on_disk = sorted(n for n in os.listdir(out) if n.startswith("part-"))
    assert on_disk == sorted(listed_shards(out))
    return result


def test_folder_run_writes_each_image_once_with_the_vectors_of_single_calls(
        collection, server, tmp_path):
    folder, valid, corrupt = collection
    target, client = server
    out = tmp_path / "out"
    done = run_embed(folder, f"--server={target}", f"--out={out}", f"--shard-size={SHARD}",
                     "--batch=8", "--progress-seconds=0")
    assert "images/s" in done.stderr and "ETA" in done.stderr  # the plain progress lines
    result = check_exactly_once(str(out), valid, corrupt)
    for error in result.errors:
        assert error["code"] == "INVALID_ARGUMENT", error
        assert error["message"], error
    assert result.run["model_info"]["weights_sha256"] == client.model_info().weights_sha256
    pooled_run = load_collection(str(out), "pooled")
    pooled = dict(zip(pooled_run.ids, pooled_run.vectors))
    by_id = dict(zip(result.ids, range(len(result.ids))))
    for image_id in valid:
        with open(os.path.join(folder, image_id), "rb") as f:
            [single] = client.embed([f.read()])
        row = by_id[image_id]
        np.testing.assert_allclose(result.vectors[row], single.cls, rtol=RTOL, atol=ATOL)
        np.testing.assert_allclose(pooled[image_id], single.pooled, rtol=RTOL, atol=ATOL)
    from PIL import Image

    for image_id in valid[:20]:
        with Image.open(os.path.join(folder, image_id)) as image:
            row = by_id[image_id]
            assert (result.widths[row], result.heights[row]) == image.size


def test_npy_format_csv_list_and_tar_shards_give_the_same_vectors(collection, server, tmp_path):
    folder, valid, _ = collection
    target, _ = server
    chosen = valid[:40]
    parquet_out = tmp_path / "parquet"
    listing = tmp_path / "list.csv"
    with open(listing, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["label", "path"])
        writer.writerows([["x", os.path.join(folder, p)] for p in chosen])
    run_embed(listing, f"--server={target}", f"--out={parquet_out}")
    parquet = load_collection(str(parquet_out), "cls")
    assert sorted(parquet.ids) == sorted(os.path.join(folder, p) for p in chosen)

    shards = []
    for part in range(2):
        shard = tmp_path / f"shard-{part}.tar"
        with tarfile.open(shard, "w") as archive:
            for p in chosen[part::2]:
                key = os.path.splitext(p.replace(os.sep, "_"))[0]
                archive.add(os.path.join(folder, p), arcname=key + os.path.splitext(p)[1])
                info = tarfile.TarInfo(key + ".json")  # WebDataset metadata, not an image
                archive.addfile(info)
        shards.append(shard)
    npy_out = tmp_path / "npy"
    run_embed(*shards, f"--server={target}", f"--out={npy_out}", "--format=npy",
              "--shard-size=7")
    npy = load_collection(str(npy_out), "cls")
    assert len(npy.ids) == len(chosen) and len(set(npy.ids)) == len(chosen)
    assert all(n.endswith(".npy") for n in listed_shards(str(npy_out)))
    by_path = dict(zip(parquet.ids, parquet.vectors))
    for image_id, vector in zip(npy.ids, npy.vectors):
        shard_name, member = image_id.split("/", 1)
        assert shard_name.startswith("shard-")
        original = next(p for p in chosen if p.replace(os.sep, "_") == member)
        np.testing.assert_allclose(vector, by_path[os.path.join(folder, original)],
                                   rtol=RTOL, atol=ATOL)


def start_stdin_run(folder, out, *flags):
    """dinov3-embed reading paths from its standard input (fed by the test)."""
    return subprocess.Popen(embed_command("-", f"--out={out}", f"--shard-size={SHARD}",
                                          "--batch=4", *flags),
                            stdin=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            cwd=folder, env=bulk_env())


def feed(proc, paths):
    proc.stdin.write("".join(p + "\n" for p in paths))
    proc.stdin.flush()


def test_sigkill_midway_then_resume_embeds_each_image_exactly_once(collection, server, tmp_path):
    folder, valid, corrupt = collection
    target, _ = server
    out = tmp_path / "out"
    paths = valid[:163] + corrupt[:2]
    proc = start_stdin_run(folder, out, f"--server={target}")
    feed(proc, paths)
    wait_for_shards(str(out), 3, proc)  # 150 committed; up to 13 more buffered or in flight
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    committed = load_collection(str(out), "cls")
    assert len(committed.ids) == len(set(committed.ids)) >= 3 * SHARD
    # What a kill can also leave: a shard renamed into place but not yet listed, and a torn
    # manifest line. --resume must drop both (their images are embedded again, once).
    orphan = out / "part-000099.parquet"
    orphan.write_bytes((out / listed_shards(str(out))[0]).read_bytes())
    with open(out / "manifest.jsonl", "a") as f:
        f.write('{"shard": "part-000099.par')
    # The same ids as the first run's (paths relative to the folder): a list file there.
    listing = os.path.join(folder, "resume-test-list.txt")
    with open(listing, "w") as f:
        f.write("".join(p + "\n" for p in valid + corrupt))
    try:
        done = run_embed(listing, f"--server={target}", f"--out={out}",
                         f"--shard-size={SHARD}", "--resume")
    finally:
        os.remove(listing)
    assert f"{len(committed.ids) + len(committed.errors)} images done before" in done.stderr
    assert not orphan.exists()
    check_exactly_once(str(out), valid, corrupt)


def test_resume_refuses_other_settings_and_a_new_run_refuses_a_used_folder(
        collection, server, tmp_path):
    folder, valid, _ = collection
    target, _ = server
    out = tmp_path / "out"
    listing = os.path.join(str(tmp_path), "few.txt")
    with open(listing, "w") as f:
        f.write("".join(os.path.join(folder, p) + "\n" for p in valid[:5]))
    run_embed(listing, f"--server={target}", f"--out={out}")
    again = run_embed(listing, f"--server={target}", f"--out={out}", check=False)
    assert again.returncode == 2 and "pass --resume" in again.stderr
    other = run_embed(listing, f"--server={target}", f"--out={out}", "--resume",
                      "--dtype=float16", check=False)
    assert other.returncode == 2 and "dtype: 'float32' then, 'float16' now" in other.stderr
    same = run_embed(listing, f"--server={target}", f"--out={out}", "--resume")
    assert "5 images done before" in same.stderr
    assert len(load_collection(str(out), "cls").ids) == 5


def test_one_of_two_servers_drained_during_the_run_loses_nothing(collection, model, tmp_path):
    folder, valid, corrupt = collection
    proc_a, target_a, client_a = start_server(model, tmp_path / "a.log")
    try:
        proc_b, target_b, client_b = start_server(model, tmp_path / "b.log")
    except BaseException:
        stop_server(proc_a, client_a)
        raise
    out = tmp_path / "out"
    try:
        run = start_stdin_run(folder, out, f"--server={target_a},{target_b}")
        feed(run, valid[:160])
        wait_for_shards(str(out), 3, run)
        proc_a.send_signal(signal.SIGTERM)  # drains: accepted work answered, new work refused
        assert proc_a.wait(timeout=120) == 0
        feed(run, valid[160:] + corrupt)
        run.stdin.close()
        assert run.wait(timeout=600) == 0, run.stderr.read()
        stderr = run.stderr.read()
        assert f"{target_a}: " in stderr and "UNAVAILABLE" in stderr, stderr
        check_exactly_once(str(out), valid, corrupt)
    finally:
        stop_server(proc_b, client_b)
        if proc_a.poll() is None:
            stop_server(proc_a, client_a)


def test_unreachable_servers_and_bad_arguments_are_clear_errors(collection, tmp_path):
    folder, _, _ = collection
    port = free_port()  # nothing listens there
    down = run_embed(folder, f"--server=127.0.0.1:{port}", f"--out={tmp_path / 'a'}",
                     check=False)
    assert down.returncode == 1 and "no server answered" in down.stderr, down.stderr
    assert not (tmp_path / "a").exists()  # nothing written before a server answered
    missing = run_embed(tmp_path / "nothing", f"--server=127.0.0.1:{port}",
                        f"--out={tmp_path / 'b'}", check=False)
    assert missing.returncode == 2 and "no such file or folder" in missing.stderr
    dense = run_embed(folder, f"--server=127.0.0.1:{port}", f"--out={tmp_path / 'c'}",
                      "--outputs=patch_tokens", check=False)
    assert dense.returncode == 2 and "--outputs: ['patch_tokens']" in dense.stderr


def test_in_flight_requests_of_a_killed_server_go_to_the_other(collection, tmp_path):
    """Server A's forward on a black image waits for a gate the test never opens (fault
    model), so A can never answer the request holding it. Server B (the same outputs, its gate
    open) is started on the address the run was given only once that request reached A (A's
    worker is the only one connected, and the black image comes first), then A is killed: the
    black image is in the output, so B answered what A held; nothing is lost or doubled."""
    folder, valid, _ = collection
    exported = export_random_model(tmp_path, seed=4)
    held = write_fault_model(exported, tmp_path / "held.pt")
    spare = write_fault_model(exported, tmp_path / "spare.pt")
    SlowGate.of_model(spare).open()
    black_path = str(tmp_path / "black.png")
    save(black(), black_path, "PNG")
    paths = [black_path] + [os.path.join(folder, p) for p in valid[:40]]
    target_b = f"127.0.0.1:{free_port()}"
    decoded = "dinov3_preprocess_duration_seconds_count"
    with FaultServer(held, tmp_path / "a.log") as server_a:
        before = server_a.counters().of_model(decoded)
        run = start_stdin_run(folder, tmp_path / "out", f"--server={server_a.target},{target_b}")
        feed(run, paths[:12])  # three requests of 4, the black image in the first
        server_a.wait_for(lambda c: c.of_model(decoded) > before, "A decoding the first request")
        proc_b, _, client_b = start_server(spare, tmp_path / "b.log", target=target_b)
        try:
            server_a.proc.kill()
            server_a.proc.wait()
            feed(run, paths[12:])
            run.stdin.close()
            assert run.wait(timeout=600) == 0, run.stderr.read()
        finally:
            stop_server(proc_b, client_b)
    stderr = run.stderr.read()
    assert f"{server_a.target}: UNAVAILABLE" in stderr, stderr  # its stream was lost
    result = load_collection(str(tmp_path / "out"), "cls")
    assert sorted(result.ids) == sorted(paths) and not result.errors
