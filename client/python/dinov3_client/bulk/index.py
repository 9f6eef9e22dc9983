"""dinov3-index: a nearest-neighbour index (FAISS CPU) over one output of a dinov3-embed run.

    python -m dinov3_client.bulk.index OUT_DIR [--output=cls|pooled] [--index=DIR]
                                       [--kind=auto|flat|hnsw] [--flat-max=N]

Similarity is cosine: the vectors are L2-normalised (zero rows stay zero) and searched by inner
product, so a score is the cosine of the angle (1.0: the same direction).

Kind. `flat` (IndexFlatIP) is exact: a query is compared with every vector. `auto` takes it up
to --flat-max vectors (default FLAT_MAX = 100,000): 100k x 1024 float32 is ~0.4 GB and an exact
query reads all of it, tens of ms on a few cores (measured: 60 ms on 2 cores), still
interactive. Above that `auto` takes `hnsw` (IndexHNSWFlat, inner product, M=32,
efConstruction=200, efSearch=128, kept in meta.json): approximate, a few ms per query, growing
about logarithmically with the count, but minutes to build per 100k x 1024 vectors (measured:
3 minutes on 2 cores). HNSW rather than IVF because it needs no training (no centroids to fit,
no sample-size rules) and is built from the vectors alone.

The index folder (--index, default OUT_DIR/index) holds
    index.faiss   the FAISS index; row r is ids.json[r]
    ids.json      the run's ids in row order (the manifest's shard order)
    meta.json     source (OUT_DIR, absolute), output, kind, metric ("cosine"), count, dim, the
                  run's model, model_info, preprocess, dtype, outputs, l2_normalize and
                  source_root, the HNSW parameters (hnsw only), faiss_version and
                  build_seconds (normalising and adding the vectors; not reading them)
It is written atomically: into a temporary sibling folder, fsynced, then swapped in by rename
(a kill leaves the old index, the new one, or the old one at .NAME.old beside it).

Library (search.py uses it): normalise, build_index, search_vectors, save_index, load_index.
Exit status: 0 when built; 1 with a one-line message when OUT_DIR holds no run, the run has no
such output, or the collection is empty.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shutil
import sys
import time

import faiss
import numpy as np

from dinov3_client.bulk import store

FLAT_MAX = 100_000
KINDS = ("auto", "flat", "hnsw")
HNSW_M, HNSW_EF_CONSTRUCTION, HNSW_EF_SEARCH = 32, 200, 128
INDEX_FILE, IDS_FILE, META_FILE = "index.faiss", "ids.json", "meta.json"
RUN_KEYS = ("model", "model_info", "preprocess", "dtype", "outputs", "l2_normalize",
            "source_root")


@dataclasses.dataclass
class LoadedIndex:
    """An index folder read back: the FAISS index, its row ids and meta.json."""
    index: faiss.Index
    ids: list
    meta: dict


def normalise(vectors: np.ndarray) -> np.ndarray:
    """Rows scaled to unit L2 norm, as contiguous float32 [n, dim]; zero rows stay zero."""
    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors / np.where(norms > 0, norms, 1).astype(np.float32)


def choose_kind(kind: str, count: int, flat_max: int) -> str:
    """`kind`, with "auto" resolved: flat up to `flat_max` vectors, hnsw above."""
    if kind == "auto":
        return "flat" if count <= flat_max else "hnsw"
    return kind


def build_index(vectors: np.ndarray, kind: str) -> faiss.Index:
    """A "flat" or "hnsw" inner-product index holding `vectors` (already normalised)."""
    dim = vectors.shape[1]
    if kind == "flat":
        index = faiss.IndexFlatIP(dim)
    else:
        index = faiss.IndexHNSWFlat(dim, HNSW_M, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = HNSW_EF_CONSTRUCTION
        index.hnsw.efSearch = HNSW_EF_SEARCH
    index.add(vectors)
    return index


def search_vectors(index: faiss.Index, queries: np.ndarray, k: int) -> list[list[tuple]]:
    """Per query (normalised), its up to `k` nearest rows as (row, score), best first."""
    k = min(k, index.ntotal)
    scores, rows = index.search(np.ascontiguousarray(queries, dtype=np.float32), k)
    return [[(int(r), float(s)) for r, s in zip(row_list, score_list) if r >= 0]
            for row_list, score_list in zip(rows, scores)]


def _write_json(path: str, value) -> None:
    with open(path, "w") as f:
        json.dump(value, f, indent=1)
        f.write("\n")


def _swap_in(temporary: str, final: str) -> None:
    """Renames the finished folder `temporary` to `final`, replacing (then deleting) an old one."""
    parent, name = os.path.split(final)
    old = os.path.join(parent, f".{name}.old")
    shutil.rmtree(old, ignore_errors=True)
    if os.path.exists(final):
        os.replace(final, old)
    os.replace(temporary, final)
    store.fsync_dir(parent)
    shutil.rmtree(old, ignore_errors=True)


def save_index(index_dir: str, index: faiss.Index, ids: list, meta: dict) -> None:
    """Writes the index folder atomically (see the module docstring)."""
    index_dir = os.path.abspath(index_dir)
    parent, name = os.path.split(index_dir)
    os.makedirs(parent, exist_ok=True)
    temporary = os.path.join(parent, f".{name}.tmp")
    shutil.rmtree(temporary, ignore_errors=True)
    os.mkdir(temporary)
    faiss.write_index(index, os.path.join(temporary, INDEX_FILE))
    _write_json(os.path.join(temporary, IDS_FILE), ids)
    _write_json(os.path.join(temporary, META_FILE), meta)
    for file_name in (INDEX_FILE, IDS_FILE, META_FILE):
        with open(os.path.join(temporary, file_name), "rb") as f:
            os.fsync(f.fileno())
    store.fsync_dir(temporary)
    _swap_in(temporary, index_dir)


def load_index(index_dir: str) -> LoadedIndex:
    """Reads an index folder; ValueError when it is missing or its files disagree."""
    meta_path = os.path.join(index_dir, META_FILE)
    if not os.path.exists(meta_path):
        raise ValueError(f"{index_dir} holds no dinov3-index index (no {META_FILE})")
    with open(meta_path) as f:
        meta = json.load(f)
    with open(os.path.join(index_dir, IDS_FILE)) as f:
        ids = json.load(f)
    index = faiss.read_index(os.path.join(index_dir, INDEX_FILE))
    if not index.ntotal == len(ids) == meta["count"]:
        raise ValueError(f"{index_dir}: {index.ntotal} vectors, {len(ids)} ids, meta count "
                         f"{meta['count']}")
    if meta["kind"] == "hnsw":
        index.hnsw.efSearch = meta["hnsw"]["ef_search"]
    return LoadedIndex(index, ids, meta)


def index_meta(out_dir: str, output: str, kind: str, vectors: np.ndarray, run: dict,
               seconds: float) -> dict:
    """meta.json's content (see the module docstring)."""
    meta = {"source": os.path.abspath(out_dir), "output": output, "kind": kind,
            "metric": "cosine", "count": int(vectors.shape[0]), "dim": int(vectors.shape[1]),
            "build_seconds": round(seconds, 6), "faiss_version": faiss.__version__}
    meta.update({key: run.get(key) for key in RUN_KEYS})
    if kind == "hnsw":
        meta["hnsw"] = {"m": HNSW_M, "ef_construction": HNSW_EF_CONSTRUCTION,
                        "ef_search": HNSW_EF_SEARCH}
    return meta


def index_run(out_dir: str, output: str, index_dir: str, kind: str, flat_max: int) -> dict:
    """Builds and saves the index of `output` of the run in `out_dir`; returns its meta.
    ValueError when there is no run, no such output, or no vectors."""
    collection = store.load_collection(out_dir, output)
    if not collection.ids:
        raise ValueError(f"{out_dir}: the run holds no embedded images yet (empty manifest)")
    started = time.perf_counter()
    vectors = normalise(collection.vectors)
    kind = choose_kind(kind, len(vectors), flat_max)
    index = build_index(vectors, kind)
    meta = index_meta(out_dir, output, kind, vectors, collection.run,
                      time.perf_counter() - started)
    save_index(index_dir, index, collection.ids, meta)
    return meta


def parse_args(argv) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="dinov3-index", description="Builds a cosine nearest-neighbour index (FAISS) over "
        "one output of a dinov3-embed output folder.")
    parser.add_argument("out_dir", metavar="OUT_DIR", help="a dinov3-embed output folder")
    parser.add_argument("--output", default="cls", choices=store.VECTOR_OUTPUTS)
    parser.add_argument("--index", help="the index folder (default OUT_DIR/index)")
    parser.add_argument("--kind", default="auto", choices=KINDS,
                        help="auto: flat up to --flat-max vectors, else hnsw")
    parser.add_argument("--flat-max", type=int, default=FLAT_MAX,
                        help=f"largest count indexed flat by --kind=auto (default {FLAT_MAX})")
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    index_dir = args.index or os.path.join(args.out_dir, "index")
    try:
        meta = index_run(args.out_dir, args.output, index_dir, args.kind, args.flat_max)
    except ValueError as e:
        raise SystemExit(f"dinov3-index: {e}") from None
    print(f"dinov3-index: {meta['count']} vectors ({meta['output']}, dim {meta['dim']}) as "
          f"{meta['kind']} in {meta['build_seconds']:.3f} s -> {index_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
