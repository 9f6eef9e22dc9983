"""The output folder of dinov3-embed: its layout, its crash-safe writer and its reader.

    OUT/run.json          what the run embedded with: format, outputs, dtype, l2_normalize,
                          preprocess, model name and the served export (ModelInfo fields); a
                          --resume with other settings is refused
    OUT/manifest.jsonl    one line per committed shard: {"shard", "rows", "bytes"}; the only
                          list of finished work (readers read the shards it names, nothing else)
    OUT/errors.jsonl      one line per image the server refused: {"id", "code", "message"};
                          code READ_ERROR: the file could not be read here
    OUT/.lock             held (flock) by the run writing the folder: a second one is refused
    OUT/part-NNNNNN.parquet   format "parquet": columns id (string), width, height (int32: the
                          image's size after EXIF orientation, as the server decodes it) and one
                          fixed-size-list column per output (cls, pooled) of the run's dtype
                          (float32, float16, int8, uint8; binary: uint8 packed sign bits), plus
                          <output>_scale (float32) for int8 / uint8
    OUT/part-NNNNNN.npy/  format "npy": a folder with ids.json ({"id", "width", "height"} lists)
                          and <output>.npy (and <output>_scale.npy) of the same values

Crash safety (a kill -9 at any instruction): a shard is written under a temporary name, fsynced
and renamed into place, and only then listed in the manifest (an appended line, fsynced). On
--resume, `ShardStore` drops a torn last manifest or errors line and deletes shard files the
manifest does not list (renamed before the kill, never listed), so every image is in exactly one
listed shard or in errors.jsonl, or is embedded again. A --resume also tries again the images
recorded with a passing failure (TRANSIENT_CODES: a replica that stayed unavailable, a file
that could not be read): their lines leave errors.jsonl (rewritten atomically) until they fail
again.
"""
from __future__ import annotations

import dataclasses
import fcntl
import json
import os
import re
import shutil
from typing import Iterable, Optional

import numpy as np

from dinov3_client.tensors import dequantize

RUN_FILE, MANIFEST_FILE, ERRORS_FILE = "run.json", "manifest.jsonl", "errors.jsonl"
FORMATS = ("parquet", "npy")
VECTOR_OUTPUTS = ("cls", "pooled")
_SHARD_NAME = re.compile(r"^part-(\d{6,})\.(parquet|npy)(\.tmp)?$")
LOCK_FILE = ".lock"
READ_ERROR = "READ_ERROR"
TRANSIENT_CODES = {"UNAVAILABLE", "RESOURCE_EXHAUSTED", "DEADLINE_EXCEEDED", "ABORTED",
                   "CANCELLED", READ_ERROR}


def shard_name(number: int, fmt: str) -> str:
    return f"part-{number:06d}.{fmt}"


def fsync_dir(path: str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _read_json_lines(path: str, repair: bool) -> list[dict]:
    """The complete lines of a JSON-lines file. A torn last line (a kill while appending) is
    cut off when `repair`, else ignored; a torn line before the last is an error."""
    if not os.path.exists(path):
        return []
    with open(path, "rb") as f:
        data = f.read()
    records, good = [], 0
    for line in data.split(b"\n")[:-1]:  # the part after the last newline is torn or empty
        try:
            records.append(json.loads(line))
        except ValueError:
            raise ValueError(f"{path}: corrupt line {len(records) + 1}") from None
        good += len(line) + 1
    if repair and good != len(data):
        with open(path, "r+b") as f:
            f.truncate(good)
            os.fsync(f.fileno())
    return records


@dataclasses.dataclass
class Rows:
    """Rows of a shard: ids, image sizes and, per output, the values [n, ...] (and scales)."""
    ids: list
    widths: list
    heights: list
    values: dict   # output name -> np.ndarray [n, width]
    scales: dict   # output name -> np.ndarray [n] (int8 / uint8 only)


def _write_parquet(path: str, rows: Rows) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    columns = {"id": pa.array(rows.ids, pa.string()),
               "width": pa.array(rows.widths, pa.int32()),
               "height": pa.array(rows.heights, pa.int32())}
    for name, values in rows.values.items():
        flat = pa.array(np.ascontiguousarray(values).reshape(-1))
        columns[name] = pa.FixedSizeListArray.from_arrays(flat, values.shape[1])
        if name in rows.scales:
            columns[f"{name}_scale"] = pa.array(rows.scales[name].astype(np.float32))
    # Float vectors are near-random numbers: a dictionary only adds a page, and splitting the
    # bytes of each float into streams lets zstd compress the exponents (measured: float32 cls
    # + pooled of ViT-S, 4.5 KB per image with the defaults, 2.5 KB so; raw 3 KB). int8 / uint8
    # values (256 of them) keep the dictionary.
    leaves = {n: f"{n}.list.element" for n in rows.values}  # a list column's values
    floats = [leaves[n] for n, v in rows.values.items() if v.dtype.kind == "f"]
    dictionary = [leaves.get(c, c) for c in columns if leaves.get(c) not in floats]
    pq.write_table(pa.table(columns), path, compression="zstd", use_dictionary=dictionary,
                   use_byte_stream_split=floats or False)


def _write_npy(path: str, rows: Rows) -> None:
    os.mkdir(path)
    with open(os.path.join(path, "ids.json"), "w") as f:
        json.dump({"id": rows.ids, "width": rows.widths, "height": rows.heights}, f)
    for name, values in rows.values.items():
        np.save(os.path.join(path, f"{name}.npy"), values)
        if name in rows.scales:
            np.save(os.path.join(path, f"{name}_scale.npy"), rows.scales[name].astype(np.float32))


def _size_of(path: str) -> int:
    if os.path.isdir(path):
        return sum(os.path.getsize(os.path.join(path, n)) for n in os.listdir(path))
    return os.path.getsize(path)


def _fsync_tree(path: str) -> None:
    files = [os.path.join(path, n) for n in os.listdir(path)] if os.path.isdir(path) else [path]
    for name in files:
        with open(name, "rb") as f:
            os.fsync(f.fileno())
    if os.path.isdir(path):
        fsync_dir(path)


class ShardStore:
    """Writes one output folder (single-threaded). Opening it with resume=False needs an empty
    or missing folder; with resume=True it repairs what a kill left (see the module docstring)
    and `done_ids` holds every id already in a listed shard or in errors.jsonl."""

    def __init__(self, out_dir: str, run: dict, resume: bool):
        self.out_dir, self.run, self.fmt = out_dir, run, run["format"]
        os.makedirs(out_dir, exist_ok=True)
        self._lock = self._take_lock()
        run_path = os.path.join(out_dir, RUN_FILE)
        if os.path.exists(run_path):
            if not resume:
                raise ValueError(f"{out_dir} already holds a run ({RUN_FILE}): pass --resume to "
                                 "finish it, or choose an empty --out")
            with open(run_path) as f:
                before = json.load(f)
            changed = sorted(k for k in set(before) | set(run) if before.get(k) != run.get(k))
            if changed:
                raise ValueError(f"--resume with other settings than {run_path}: "
                                 + "; ".join(f"{k}: {before.get(k)!r} then, {run.get(k)!r} now"
                                             for k in changed))
        elif [n for n in os.listdir(out_dir) if n != LOCK_FILE and not n.endswith(".tmp")]:
            raise ValueError(f"--out {out_dir} is not empty and holds no run ({RUN_FILE})")
        else:
            self._write_atomically(run_path, json.dumps(run, indent=2, sort_keys=True) + "\n")
        manifest = _read_json_lines(os.path.join(out_dir, MANIFEST_FILE), repair=True)
        errors = self._keep_lasting(_read_json_lines(os.path.join(out_dir, ERRORS_FILE),
                                                     repair=True))
        listed = {m["shard"] for m in manifest}
        self._remove_unlisted(listed)
        self.done_ids = set(e["id"] for e in errors)
        for entry in manifest:
            self.done_ids.update(read_shard(self._listed(entry["shard"]), ids_only=True))
        numbers = [int(_SHARD_NAME.match(s).group(1)) for s in listed]
        self.next_number = max(numbers, default=-1) + 1
        self.shards, self.errors = len(manifest), len(errors)
        self._manifest = open(os.path.join(out_dir, MANIFEST_FILE), "ab")
        self._errors = open(os.path.join(out_dir, ERRORS_FILE), "ab")

    def _take_lock(self):
        lock = open(os.path.join(self.out_dir, LOCK_FILE), "a")
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            lock.close()
            raise ValueError(f"another dinov3-embed is writing to {self.out_dir}") from None
        return lock

    def _listed(self, shard: str) -> str:
        path = os.path.join(self.out_dir, shard)
        if not os.path.exists(path):
            raise ValueError(f"{MANIFEST_FILE} lists {shard}, which is missing from "
                             f"{self.out_dir}: the folder was changed by hand")
        return path

    def _keep_lasting(self, errors: list) -> list:
        """The errors that stand; those of TRANSIENT_CODES are dropped from errors.jsonl."""
        lasting = [e for e in errors if e["code"] not in TRANSIENT_CODES]
        if len(lasting) != len(errors):
            self._write_atomically(os.path.join(self.out_dir, ERRORS_FILE),
                                   "".join(json.dumps(e) + "\n" for e in lasting))
        return lasting

    def _write_atomically(self, path: str, text: str) -> None:
        with open(path + ".tmp", "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(path + ".tmp", path)
        fsync_dir(self.out_dir)

    def _remove_unlisted(self, listed: set) -> None:
        for name in os.listdir(self.out_dir):
            if _SHARD_NAME.match(name) and name not in listed:
                path = os.path.join(self.out_dir, name)
                shutil.rmtree(path) if os.path.isdir(path) else os.remove(path)

    def commit(self, rows: Rows) -> str:
        """Writes `rows` as the next shard, durably, then lists it; returns its name."""
        name = shard_name(self.next_number, self.fmt)
        final = os.path.join(self.out_dir, name)
        temporary = final + ".tmp"
        (_write_parquet if self.fmt == "parquet" else _write_npy)(temporary, rows)
        _fsync_tree(temporary)
        os.replace(temporary, final)
        fsync_dir(self.out_dir)
        os.fsync(self._errors.fileno())  # errors recorded so far are durable from here too
        line = {"shard": name, "rows": len(rows.ids), "bytes": _size_of(final)}
        self._manifest.write(json.dumps(line).encode() + b"\n")
        self._manifest.flush()
        os.fsync(self._manifest.fileno())
        self.next_number += 1
        self.shards += 1
        return name

    def record_error(self, image_id: str, code: str, message: str) -> None:
        """Appends one refused image to errors.jsonl (flushed; fsynced by the next commit)."""
        line = json.dumps({"id": image_id, "code": code, "message": message})
        self._errors.write(line.encode() + b"\n")
        self._errors.flush()
        self.errors += 1

    def close(self) -> None:
        for f in (self._errors, self._manifest):
            f.flush()
            os.fsync(f.fileno())
            f.close()
        self._lock.close()  # releases the flock


def read_shard(path: str, ids_only: bool = False, outputs: Iterable[str] = ()):
    """One shard: its ids (ids_only), else a Rows with the named outputs."""
    outputs = list(outputs)
    if path.endswith(".parquet"):
        import pyarrow.parquet as pq

        wanted = ["id"] if ids_only else None
        table = pq.read_table(path, columns=wanted)
        ids = table.column("id").to_pylist()
        if ids_only:
            return ids
        values, scales = {}, {}
        for name in outputs:
            column = table.column(name).combine_chunks()
            flat = column.values.to_numpy(zero_copy_only=False)
            values[name] = flat.reshape(len(ids), column.type.list_size)
            if f"{name}_scale" in table.column_names:
                scales[name] = table.column(f"{name}_scale").to_numpy()
        return Rows(ids, table.column("width").to_pylist(), table.column("height").to_pylist(),
                    values, scales)
    with open(os.path.join(path, "ids.json")) as f:
        meta = json.load(f)
    if ids_only:
        return meta["id"]
    values = {n: np.load(os.path.join(path, f"{n}.npy")) for n in outputs}
    scales = {n: np.load(os.path.join(path, f"{n}_scale.npy")) for n in outputs
              if os.path.exists(os.path.join(path, f"{n}_scale.npy"))}
    return Rows(meta["id"], meta["width"], meta["height"], values, scales)


@dataclasses.dataclass
class Collection:
    """What a finished (or partly finished) run holds: every listed shard's rows, in manifest
    order, with `vectors` as float32 (int8 / uint8 dequantised; binary as +1 / -1 per bit)."""
    run: dict
    ids: list
    widths: list
    heights: list
    vectors: np.ndarray  # [n, dim] float32
    errors: list         # errors.jsonl's records


def _as_float(values: np.ndarray, dtype: str, scales: Optional[np.ndarray], dim: int):
    floats = dequantize(values, dtype, scales, dim)
    return floats * 2.0 - 1.0 if dtype == "binary" else floats  # bits as +1 / -1


def load_collection(out_dir: str, output: str = "cls") -> Collection:
    """Reads `output` of every shard the manifest of `out_dir` lists (see the module docstring).
    Raises ValueError when the folder holds no run or the run has no such output."""
    run_path = os.path.join(out_dir, RUN_FILE)
    if not os.path.exists(run_path):
        raise ValueError(f"{out_dir} holds no dinov3-embed run (no {RUN_FILE})")
    with open(run_path) as f:
        run = json.load(f)
    if output not in run["outputs"]:
        raise ValueError(f"{out_dir} has no output {output!r}; it has {run['outputs']}")
    manifest = _read_json_lines(os.path.join(out_dir, MANIFEST_FILE), repair=False)
    errors = _read_json_lines(os.path.join(out_dir, ERRORS_FILE), repair=False)
    ids, widths, heights, parts = [], [], [], []
    dim = int(run["model_info"]["embed_dim"])
    for entry in manifest:
        rows = read_shard(os.path.join(out_dir, entry["shard"]), outputs=[output])
        ids += rows.ids
        widths += rows.widths
        heights += rows.heights
        parts.append(_as_float(rows.values[output], run["dtype"], rows.scales.get(output), dim))
    vectors = np.concatenate(parts) if parts else np.zeros((0, dim), np.float32)
    return Collection(run, ids, widths, heights, vectors, errors)
