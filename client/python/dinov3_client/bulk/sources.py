"""The images dinov3-embed reads: `open_source(specs)` turns its SOURCE arguments into Items.

A SOURCE is one of:
  - a folder: every file below it (recursively, symlinks followed) whose extension is an image
    one (IMAGE_EXTENSIONS, any case), in sorted path order; id = the path relative to the folder;
  - a list of paths: a .txt file (one path per line), a .csv file (the column named
    `path_column`, default "path") or a .parquet file (that column); relative paths are relative
    to the list file's folder; id = the path as written; "-" reads a text list from standard
    input as it arrives (paths relative to the working folder), so `find ... | dinov3-embed -`
    starts before the listing ends;
  - one or more WebDataset-style .tar shards (uncompressed): every member with an image
    extension; id = "<shard file name>/<member name>" (two shards of one name are refused).
Several SOURCE arguments must all be .tar shards. An Item's bytes are read by `read_item` (a
file read, or a seek into the shard), so that skipped items (--resume) cost nothing.
"""
from __future__ import annotations

import csv
import dataclasses
import io
import os
import sys
import tarfile
from typing import Iterator, Optional

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff")
_EXIF_ORIENTATION = 0x0112
_TRANSPOSED = (5, 6, 7, 8)  # EXIF orientations that swap width and height


def image_size(data: bytes) -> tuple[int, int]:
    """(width, height) of encoded image bytes after EXIF orientation, from the header only;
    (0, 0) when Pillow cannot read it (the server decoded it, so the row is still written)."""
    from PIL import Image

    try:
        with Image.open(io.BytesIO(data)) as image:
            width, height = image.size
            if image.getexif().get(_EXIF_ORIENTATION) in _TRANSPOSED:
                width, height = height, width
            return width, height
    except Exception:  # noqa: BLE001 (any decoder error of any format)
        return 0, 0


@dataclasses.dataclass(frozen=True)
class Item:
    """One image: its id in the output, the file that holds it and, inside a .tar shard, where
    its bytes start and how many there are (offset None: the whole file)."""
    id: str
    path: str
    offset: Optional[int] = None
    size: Optional[int] = None


@dataclasses.dataclass
class Source:
    """The items to embed (an iterator), how many there are (None while unknown: standard
    input) and the folder that ids are relative to (recorded in run.json for dinov3-search)."""
    items: Iterator[Item]
    total: Optional[int]
    root: str


def _is_image(name: str) -> bool:
    return name.lower().endswith(IMAGE_EXTENSIONS)


def _folder_items(folder: str) -> list[Item]:
    items = []
    for directory, _, files in os.walk(folder, followlinks=True):
        for name in files:
            if _is_image(name):
                path = os.path.join(directory, name)
                items.append(Item(os.path.relpath(path, folder), path))
    items.sort(key=lambda item: item.id)
    return items


def _list_paths(list_file: str, path_column: str) -> list[str]:
    lower = list_file.lower()
    if lower.endswith(".parquet"):
        import pyarrow.parquet as pq

        table = pq.read_table(list_file)
        if path_column not in table.column_names:
            raise ValueError(f"{list_file}: no column {path_column!r} (columns: "
                             f"{table.column_names}); name it with --path-column")
        return [p for p in table.column(path_column).to_pylist() if p]
    with open(list_file, newline="") as f:
        if lower.endswith(".csv"):
            reader = csv.DictReader(f)
            if path_column not in (reader.fieldnames or []):
                raise ValueError(f"{list_file}: no column {path_column!r} in its header "
                                 f"{reader.fieldnames}; name it with --path-column")
            return [row[path_column] for row in reader if row[path_column]]
        return [line.rstrip("\r\n") for line in f if line.strip()]


def _listed_items(paths, base: str) -> Iterator[Item]:
    for path in paths:
        yield Item(path, path if os.path.isabs(path) else os.path.join(base, path))


def _stdin_paths() -> Iterator[str]:
    for line in sys.stdin:
        if line.strip():
            yield line.rstrip("\r\n")


def _tar_items(shard: str) -> list[Item]:
    name = os.path.basename(shard)
    with tarfile.open(shard, "r:") as archive:  # "r:": uncompressed, so members can be seeked
        return [Item(f"{name}/{m.name}", shard, m.offset_data, m.size)
                for m in archive.getmembers() if m.isfile() and _is_image(m.name)]


def open_source(specs: list[str], path_column: str = "path") -> Source:
    """The Source of dinov3-embed's SOURCE arguments (see the module docstring); ValueError
    names what is wrong with them."""
    if not specs:
        raise ValueError("no SOURCE given")
    if len(specs) > 1 and not all(s.lower().endswith(".tar") for s in specs):
        raise ValueError("several SOURCE arguments must all be .tar shards; got "
                         + ", ".join(specs))
    spec = specs[0]
    if spec == "-":
        cwd = os.path.realpath(os.getcwd())
        return Source(_listed_items(_stdin_paths(), cwd), None, cwd)
    for s in specs:
        if not os.path.exists(s):
            raise ValueError(f"SOURCE {s}: no such file or folder")
    if os.path.isdir(spec):
        items = _folder_items(spec)
        return Source(iter(items), len(items), os.path.realpath(spec))
    if spec.lower().endswith(".tar"):
        names = [os.path.basename(s) for s in specs]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise ValueError(f"two .tar shards named {', '.join(twice)}: ids would collide")
        items = [item for shard in specs for item in _tar_items(shard)]
        return Source(iter(items), len(items), os.path.dirname(os.path.realpath(spec)))
    if spec.lower().endswith((".txt", ".csv", ".parquet", ".lst")):
        base = os.path.dirname(os.path.realpath(spec))
        paths = _list_paths(spec, path_column)
        return Source(_listed_items(paths, base), len(paths), base)
    raise ValueError(f"SOURCE {spec}: expected a folder, a .txt/.csv/.parquet list of paths, "
                     "a .tar shard or - (paths on standard input)")


def read_item(item: Item) -> bytes:
    """The bytes of `item` (OSError when they cannot be read)."""
    with open(item.path, "rb") as f:
        if item.offset is None:
            return f.read()
        f.seek(item.offset)
        data = f.read(item.size)
    if len(data) != item.size:
        raise OSError(f"{item.path}: truncated shard ({len(data)} of {item.size} bytes)")
    return data
