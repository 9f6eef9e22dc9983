"""dinov3-index and dinov3-search (dinov3_client.bulk.index / .search) against a real
dinov3-server with a random 1-block ViT-S/16.

The indexed run is N_IMAGES photo-like PNGs (varied seeds and sizes) embedded by dinov3-embed
in two shards. Checks:
  - every indexed image, searched through dinov3-search, is its own nearest neighbour with a
    score within SELF_TOLERANCE of 1, with a flat and with an HNSW index;
  - a JPEG (quality 70) copy and a 0.75x resized copy of indexed images (files that are not in
    the index) find their original first; flat and HNSW agree on every query's top 1; with the
    copies indexed too, an original's two copies rank first among the others (after itself);
  - --json is well-formed; --sheet is a PNG of (1 + k) cells by one row per query; ids that are
    no file (tar members) get grey placeholders;
  - a server whose weights differ from the indexed ones is refused; no run, an empty run and an
    output the run lacks are clear errors;
  - the commands run as `python -m` subprocesses.
The indexed runs are made by dinov3-embed. Build and query times: tests/bench/bulk_embed.py.
"""
import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from tests.integration.python.bulk_helpers import run_embed
from tests.integration.python.server_process import ROOT, export_random_model, running_server
from tests.integration.python.synthetic_images import photo_like, save
from dinov3_client.bulk import index as bulk_index
from dinov3_client.bulk import search as bulk_search
from dinov3_client.bulk import store

N_IMAGES = 60
COPIED = (3, 17, 42)  # the images whose re-encoded and resized copies are queried
SELF_TOLERANCE = 1e-4
K = 4
ENV = {**os.environ, "PYTHONPATH": os.pathsep.join(
    [os.path.join(ROOT, "client", "python"), os.environ.get("PYTHONPATH", "")])}


def image_size(seed):
    """(height, width) between 64 x 64 and 120 x 160, varying with the seed."""
    return 64 + seed * 7 % 57, 64 + seed * 13 % 97


def image_name(seed):
    return f"img_{seed:02d}.png"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("bulk_index_server")
    model = export_random_model(tmp, seed=5)
    with running_server(model, tmp / "server.log") as (target, client):
        yield target, client


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    """The source folder: N_IMAGES PNGs named image_name(seed)."""
    folder = tmp_path_factory.mktemp("bulk_index_images")
    for seed in range(N_IMAGES):
        save(photo_like(*image_size(seed), seed=seed), folder / image_name(seed), "PNG")
    return folder


@pytest.fixture(scope="module")
def run_dir(server, images, tmp_path_factory):
    """dinov3-embed's output folder of `images`, in two shards."""
    out = tmp_path_factory.mktemp("bulk_index_run") / "out"
    run_embed(images, f"--server={server[0]}", f"--out={out}", f"--shard-size={N_IMAGES // 2}")
    return out


@pytest.fixture(scope="module")
def indexes(run_dir):
    """{"flat": folder, "hnsw": folder}: flat by a subprocess (auto), hnsw by main()."""
    flat, hnsw = run_dir / "index", run_dir / "index_hnsw"
    done = subprocess.run([sys.executable, "-m", "dinov3_client.bulk.index", str(run_dir)],
                          env=ENV, capture_output=True, text=True, check=True)
    print(done.stdout.strip())
    assert bulk_index.main([str(run_dir), f"--index={hnsw}", "--kind=hnsw"]) == 0
    assert bulk_index.load_index(str(flat)).meta["kind"] == "flat"
    return {"flat": flat, "hnsw": hnsw}


@pytest.fixture(scope="module")
def copies(images, tmp_path_factory):
    """{query path: original id}: JPEG q70 and 0.75x copies of the COPIED images."""
    folder = tmp_path_factory.mktemp("bulk_index_queries")
    queries = {}
    for seed in COPIED:
        pixels = photo_like(*image_size(seed), seed=seed)
        jpeg = save(pixels, folder / f"copy_{seed:02d}.jpg", "JPEG", quality=70)
        small = Image.fromarray(pixels).resize(
            (round(pixels.shape[1] * 0.75), round(pixels.shape[0] * 0.75)), Image.BICUBIC)
        small.save(folder / f"small_{seed:02d}.png")
        queries[str(jpeg)] = queries[str(folder / f"small_{seed:02d}.png")] = image_name(seed)
    return queries


def search_json(tmp_path, server, index_dir, queries, k=K):
    """dinov3-search's JSON records for `queries` (run through main())."""
    out = tmp_path / f"found_{os.path.basename(index_dir)}.json"
    assert bulk_search.main([*queries, f"--index={index_dir}", f"--server={server[0]}",
                             f"--k={k}", f"--json={out}"]) == 0
    return json.loads(out.read_text())


@pytest.mark.parametrize("kind", ["flat", "hnsw"])
def test_each_image_finds_itself(kind, server, images, indexes, tmp_path):
    paths = [str(images / image_name(seed)) for seed in range(N_IMAGES)]
    records = search_json(tmp_path, server, indexes[kind], paths)
    assert [r["query"] for r in records] == paths
    gaps = []
    for record in records:
        first, second = record["neighbours"][:2]
        assert first["id"] == os.path.basename(record["query"]), record
        assert abs(first["score"] - 1.0) <= SELF_TOLERANCE, record
        gaps.append(first["score"] - second["score"])
    print(f"{kind}: self score - runner-up score: min {min(gaps):.4f}, "
          f"median {np.median(gaps):.4f}")


def test_copies_find_their_original(server, indexes, copies, tmp_path):
    tops = {}
    for kind in ("flat", "hnsw"):
        records = search_json(tmp_path, server, indexes[kind], list(copies))
        tops[kind] = [r["neighbours"][0]["id"] for r in records]
        for record in records:
            first, second = record["neighbours"][:2]
            print(f"{kind}: {os.path.basename(record['query'])}: #1 {first['id']} "
                  f"{first['score']:.4f}, #2 {second['id']} {second['score']:.4f}")
        assert tops[kind] == list(copies.values()), tops[kind]
    assert tops["flat"] == tops["hnsw"]


def test_indexed_copies_rank_first_after_the_image_itself(server, images, copies, tmp_path):
    folder = tmp_path / "with_copies"
    shutil.copytree(images, folder)
    for query in copies:
        shutil.copy(query, folder / os.path.basename(query))
    out = tmp_path / "out"
    run_embed(folder, f"--server={server[0]}", f"--out={out}")
    assert bulk_index.main([str(out)]) == 0
    originals = sorted(set(copies.values()))
    records = search_json(tmp_path, server, out / "index", [str(folder / n) for n in originals])
    for name, record in zip(originals, records):
        ids = [h["id"] for h in record["neighbours"]]
        own_copies = {os.path.basename(q) for q, original in copies.items() if original == name}
        assert ids[0] == name and set(ids[1:3]) == own_copies, record


def test_json_records_are_well_formed(server, indexes, copies, tmp_path):
    records = search_json(tmp_path, server, indexes["flat"], list(copies), k=N_IMAGES + 5)
    assert len(records) == len(copies)
    for record in records:
        assert set(record) == {"query", "neighbours"}
        hits = record["neighbours"]
        assert len(hits) == N_IMAGES  # k is capped by the indexed count
        assert [h["rank"] for h in hits] == list(range(1, N_IMAGES + 1))
        assert all(set(h) == {"id", "score", "rank"} for h in hits)
        scores = [h["score"] for h in hits]
        assert scores == sorted(scores, reverse=True) and -1.0001 <= scores[-1] <= 1.0001
        assert sorted(h["id"] for h in hits) == sorted(map(image_name, range(N_IMAGES)))


def test_text_output_and_sheet_as_subprocess(server, indexes, copies, tmp_path):
    sheet = tmp_path / "sheet.png"
    queries = list(copies)[:2]
    done = subprocess.run([sys.executable, "-m", "dinov3_client.bulk.search", *queries,
                           f"--index={indexes['flat']}", f"--server={server[0]}", f"--k={K}",
                           f"--sheet={sheet}"], env=ENV, capture_output=True, text=True,
                          check=True)
    lines = done.stdout.splitlines()
    assert len(lines) == len(queries) * (1 + K)
    rank, score, first = lines[1].split(" ")
    assert (lines[0], rank, first) == (queries[0], "1", copies[queries[0]])
    assert 0 < float(score) <= 1.0001
    with Image.open(sheet) as picture:
        assert picture.format == "PNG"
        assert picture.size == ((1 + K) * bulk_search.THUMB,
                                len(queries) * (bulk_search.THUMB + bulk_search.CAPTION))


def test_sheet_placeholders_for_ids_that_are_no_file(images, tmp_path):
    sheet = tmp_path / "sheet.png"
    query = str(images / image_name(0))
    hits = [{"id": "shard-0.tar/cat.jpg", "score": 0.5, "rank": 1},
            {"id": image_name(1), "score": 0.25, "rank": 2}]
    bulk_search.write_sheet(str(sheet), {"source_root": str(images)}, [query], [hits])
    thumb, inside = bulk_search.THUMB, bulk_search.THUMB - bulk_search.MARGIN - 2
    with Image.open(sheet) as picture:
        pixels = picture.convert("RGB")
        assert picture.size == (3 * thumb, thumb + bulk_search.CAPTION)
        assert pixels.getpixel((thumb + inside, inside)) == bulk_search.PLACEHOLDER  # tar member
        assert pixels.getpixel((2 * thumb + thumb // 2, thumb // 2)) not in (
            bulk_search.PLACEHOLDER, bulk_search.BACKGROUND)  # the real file's picture


def test_other_weights_are_refused(server, indexes, copies, tmp_path):
    doctored = tmp_path / "index"
    shutil.copytree(indexes["flat"], doctored)
    meta_path = doctored / bulk_index.META_FILE
    meta = json.loads(meta_path.read_text())
    meta["model_info"]["weights_sha256"] = "0" * 64
    meta_path.write_text(json.dumps(meta))
    with pytest.raises(SystemExit, match="is not the one indexed"):
        bulk_search.main([list(copies)[0], f"--index={doctored}", f"--server={server[0]}"])


def test_auto_kind_and_meta(run_dir, images, tmp_path):
    collection = store.load_collection(str(run_dir), "pooled")
    for flat_max, kind in ((N_IMAGES, "flat"), (N_IMAGES - 1, "hnsw")):
        folder = tmp_path / kind
        assert bulk_index.main([str(run_dir), f"--index={folder}", "--output=pooled",
                                f"--flat-max={flat_max}"]) == 0
        loaded = bulk_index.load_index(str(folder))
        assert loaded.ids == collection.ids
        meta = loaded.meta
        assert (meta["kind"], meta["output"], meta["count"], meta["dim"]) == (
            kind, "pooled", N_IMAGES, collection.vectors.shape[1])
        assert meta["source"] == str(run_dir) and meta["source_root"] == str(images)
        assert meta["model_info"] == collection.run["model_info"]
        assert ("hnsw" in meta) == (kind == "hnsw")
    assert sorted(os.listdir(tmp_path)) == ["flat", "hnsw"]  # no temporary folder left


def empty_run(folder, outputs=("cls", "pooled")):
    run = {"format": "parquet", "outputs": list(outputs), "dtype": "float32",
           "l2_normalize": False, "preprocess": {}, "model": "",
           "model_info": {"variant": "vits16", "embed_dim": 384, "weights_sha256": ""}}
    store.ShardStore(str(folder), run, resume=False).close()
    return folder


def test_index_errors(tmp_path):
    with pytest.raises(SystemExit, match="holds no dinov3-embed run"):
        bulk_index.main([str(tmp_path)])
    with pytest.raises(SystemExit, match="holds no embedded images"):
        bulk_index.main([str(empty_run(tmp_path / "empty"))])
    with pytest.raises(SystemExit, match="has no output 'pooled'"):
        bulk_index.main([str(empty_run(tmp_path / "cls_only", ("cls",))), "--output=pooled"])
    with pytest.raises(SystemExit):  # argparse: not a vector output
        bulk_index.main([str(tmp_path / "empty"), "--output=patch_tokens"])
    assert not os.path.exists(tmp_path / "empty" / "index")
