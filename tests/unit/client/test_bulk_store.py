"""dinov3-embed's output folder (dinov3_client.bulk.store) and sources, without a server:
  - a --resume repairs what a kill leaves (a torn manifest or errors line, a shard renamed but
    never listed, a run.json.tmp of a kill during the first write) and knows every done id;
  - images refused for a passing reason (UNAVAILABLE, READ_ERROR) are tried again on --resume,
    lasting refusals (INVALID_ARGUMENT) are not;
  - a second writer of the same folder is refused while the first holds it;
  - a listed shard that is missing is a clear error; so are two .tar shards of one name.
"""
import json
import os
import sys

import numpy as np
import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "..", "client", "python"))
from dinov3_client.bulk import store  # noqa: E402
from dinov3_client.bulk.sources import open_source  # noqa: E402

RUN = {"format": "parquet", "outputs": ["cls"], "dtype": "float32",
       "model_info": {"embed_dim": 4}}


def rows(*ids):
    return store.Rows(list(ids), [2] * len(ids), [3] * len(ids),
                      {"cls": np.arange(4 * len(ids), dtype=np.float32).reshape(-1, 4)}, {})


def first_run(out):
    shards = store.ShardStore(str(out), RUN, resume=False)
    shards.commit(rows("a", "b"))
    shards.record_error("bad", "INVALID_ARGUMENT", "image[0]: unsupported format GIF")
    shards.record_error("busy", "UNAVAILABLE", "gave up after 8 attempts")
    shards.record_error("gone", store.READ_ERROR, "No such file")
    shards.close()


def test_resume_repairs_a_kill_and_retries_passing_failures(tmp_path):
    out = tmp_path / "out"
    first_run(out)
    (out / "part-000007.parquet").write_bytes(b"renamed, never listed")
    with open(out / "manifest.jsonl", "a") as f:
        f.write('{"shard": "part-0000')  # torn
    with open(out / "errors.jsonl", "a") as f:
        f.write('{"id": "c", "co')  # torn
    resumed = store.ShardStore(str(out), RUN, resume=True)
    assert resumed.done_ids == {"a", "b", "bad"}  # busy and gone are tried again
    assert not (out / "part-000007.parquet").exists()
    assert resumed.commit(rows("busy")) == "part-000001.parquet"
    resumed.close()
    result = store.load_collection(str(out), "cls")
    assert result.ids == ["a", "b", "busy"]
    assert [e["id"] for e in result.errors] == ["bad"]
    np.testing.assert_array_equal(result.vectors[2], np.arange(4, dtype=np.float32))


def test_a_second_writer_is_refused_while_the_first_holds_the_folder(tmp_path):
    holder = store.ShardStore(str(tmp_path / "out"), RUN, resume=False)
    with pytest.raises(ValueError, match="another dinov3-embed is writing"):
        store.ShardStore(str(tmp_path / "out"), RUN, resume=True)
    holder.close()
    store.ShardStore(str(tmp_path / "out"), RUN, resume=True).close()


def test_a_kill_during_the_first_run_json_leaves_a_usable_folder(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "run.json.tmp").write_text('{"form')
    store.ShardStore(str(out), RUN, resume=False).close()
    assert json.loads((out / "run.json").read_text()) == RUN


def test_a_missing_listed_shard_is_a_clear_error(tmp_path):
    out = tmp_path / "out"
    first_run(out)
    os.remove(out / "part-000000.parquet")
    with pytest.raises(ValueError, match="lists part-000000.parquet, which is missing"):
        store.ShardStore(str(out), RUN, resume=True)


def test_two_tar_shards_of_one_name_are_refused(tmp_path):
    for folder in ("train", "val"):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "shard-0.tar").write_bytes(b"")
    with pytest.raises(ValueError, match="two .tar shards named shard-0.tar"):
        open_source([str(tmp_path / folder / "shard-0.tar") for folder in ("train", "val")])
