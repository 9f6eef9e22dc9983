"""dinov3-search: the nearest neighbours of query images in a dinov3-index index.

    python -m dinov3_client.bulk.search IMAGE [IMAGE...] --index=DIR --server=ADDR [--k=10]
        [--json=FILE] [--sheet=FILE.png] [--api-key=KEY] [--tls-ca=PEM]

The queries are embedded by the server with the settings of the indexed run (meta.json: model
name, output, preprocess, l2_normalize; dtype float32), L2-normalised and searched by inner
product, so a score is a cosine similarity. The served export must be the indexed one: its
ModelInfo weights_sha256 (and embed_dim) must equal meta.json's model_info, else the search is
refused (vectors of another model are meaningless to compare).

Output: without --json, per query its path, then one line "rank score id" per neighbour (rank
1 = the nearest). --json=FILE writes [{"query": path, "neighbours": [{"id", "score",
"rank"}]}] instead (--json=- to stdout). --sheet=FILE.png also writes a contact sheet (Pillow):
a row per query, its thumbnail then its neighbours' with the rank and score under each; every
cell is THUMB x (THUMB + CAPTION) pixels, so the sheet is (1 + k') * THUMB wide and
queries * (THUMB + CAPTION) high, k' = min(k, indexed count). A neighbour's picture is the file
at meta's source_root joined with its id; an id that is no file there (a tar member
"shard.tar/member", or no source_root) gets a grey placeholder showing the id.
Exit status: 0 when searched; 1 with a one-line message on a refused model, a missing index or
query file, or a failed call.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import textwrap

import numpy as np

from dinov3_client import EmbeddingClient, EmbeddingError, tls_credentials
from dinov3_client.bulk.index import LoadedIndex, load_index, normalise, search_vectors

EMBED_BATCH = 16  # query images per Embed call
THUMB, CAPTION = 128, 28  # contact-sheet cell: a THUMB square picture over a CAPTION strip
MARGIN = 3  # blank pixels around a cell's picture
BACKGROUND, PLACEHOLDER, INK = (255, 255, 255), (160, 160, 160), (0, 0, 0)


def check_model(client: EmbeddingClient, meta: dict) -> None:
    """ValueError unless the served model is the export the index was built from."""
    info = client.model_info(meta["model"])
    want = meta["model_info"]
    if (info.weights_sha256, info.embed_dim) != (want["weights_sha256"], want["embed_dim"]):
        raise ValueError(
            f"the server's model {info.name or '(default)'} ({info.variant}, weights_sha256 "
            f"{info.weights_sha256 or '?'}) is not the one indexed ({want.get('variant')}, "
            f"weights_sha256 {want['weights_sha256'] or '?'}): its vectors cannot be compared")


def read_queries(paths: list) -> list:
    """The bytes of each query file; ValueError naming a file that cannot be read."""
    contents = []
    for path in paths:
        try:
            with open(path, "rb") as f:
                contents.append(f.read())
        except OSError as e:
            raise ValueError(f"query {path}: {e.strerror}") from None
    return contents


def embed_queries(client: EmbeddingClient, images: list, meta: dict) -> np.ndarray:
    """The normalised vectors [n, dim] of encoded `images`, embedded as the run was."""
    output, vectors = meta["output"], []
    for start in range(0, len(images), EMBED_BATCH):
        results = client.embed(images[start:start + EMBED_BATCH], outputs=(output,),
                               l2_normalize=bool(meta.get("l2_normalize")),
                               preprocess=meta.get("preprocess"), model=meta["model"])
        vectors += [getattr(r, output) for r in results]
    return normalise(np.stack(vectors))


def neighbours(loaded: LoadedIndex, queries: np.ndarray, k: int) -> list:
    """Per query, its neighbours as [{"id", "score", "rank"}], nearest first."""
    return [[{"id": loaded.ids[row], "score": score, "rank": rank}
             for rank, (row, score) in enumerate(found, 1)]
            for found in search_vectors(loaded.index, queries, k)]


def print_text(paths: list, found: list) -> None:
    for path, hits in zip(paths, found):
        print(path)
        for hit in hits:
            print(f"{hit['rank']} {hit['score']:.6f} {hit['id']}")


def write_json(target: str, paths: list, found: list) -> None:
    records = [{"query": p, "neighbours": hits} for p, hits in zip(paths, found)]
    text = json.dumps(records, indent=1) + "\n"
    if target == "-":
        sys.stdout.write(text)
        return
    with open(target, "w") as f:
        f.write(text)


def source_path(meta: dict, image_id: str):
    """The file an indexed id names (source_root / id), or None when it is no file."""
    root = meta.get("source_root")
    path = os.path.join(root, image_id) if root else None
    return path if path and os.path.isfile(path) else None


def _cell(caption: str, picture=None, wrap_text: str = ""):
    """One contact-sheet cell: `picture` (a PIL image, fitted into the THUMB x THUMB square
    less MARGIN) or a grey square showing `wrap_text`, over `caption`."""
    from PIL import Image, ImageDraw

    cell = Image.new("RGB", (THUMB, THUMB + CAPTION), BACKGROUND)
    draw = ImageDraw.Draw(cell)
    if picture is None:
        draw.rectangle((MARGIN, MARGIN, THUMB - 1 - MARGIN, THUMB - 1 - MARGIN), fill=PLACEHOLDER)
        text = "\n".join(textwrap.wrap(wrap_text, 19)[:8])
        draw.multiline_text((2 * MARGIN, 2 * MARGIN), text, fill=INK)
    else:
        picture.thumbnail((THUMB - 2 * MARGIN, THUMB - 2 * MARGIN))
        cell.paste(picture, ((THUMB - picture.width) // 2, (THUMB - picture.height) // 2))
    draw.text((MARGIN, THUMB + MARGIN), caption, fill=INK)
    return cell


def _open_picture(path):
    """The RGB picture at `path` as the server sees it (EXIF orientation), or None."""
    from PIL import Image, ImageOps, UnidentifiedImageError

    if path is None:
        return None
    try:
        with Image.open(path) as image:
            return ImageOps.exif_transpose(image).convert("RGB")
    except (OSError, UnidentifiedImageError):
        return None


def sheet_row(meta: dict, query_path: str, hits: list) -> list:
    """The cells of one query: the query, then each neighbour with its rank and score."""
    cells = [_cell(os.path.basename(query_path)[:20], _open_picture(query_path), query_path)]
    for hit in hits:
        caption = f"#{hit['rank']} {hit['score']:.4f}"
        cells.append(_cell(caption, _open_picture(source_path(meta, hit["id"])), hit["id"]))
    return cells


def write_sheet(target: str, meta: dict, paths: list, found: list) -> None:
    """The contact-sheet PNG (see the module docstring)."""
    from PIL import Image

    columns = 1 + max(len(hits) for hits in found)
    sheet = Image.new("RGB", (columns * THUMB, len(paths) * (THUMB + CAPTION)), BACKGROUND)
    for row, (path, hits) in enumerate(zip(paths, found)):
        for column, cell in enumerate(sheet_row(meta, path, hits)):
            sheet.paste(cell, (column * THUMB, row * (THUMB + CAPTION)))
    sheet.save(target, format="PNG")


def parse_args(argv) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="dinov3-search", description="Finds the nearest indexed images of query images "
        "(cosine similarity of the indexed output).")
    parser.add_argument("images", nargs="+", metavar="IMAGE", help="query image files")
    parser.add_argument("--index", required=True, help="a dinov3-index folder")
    parser.add_argument("--server", required=True, help="the dinov3-server gRPC address")
    parser.add_argument("--k", type=int, default=10, help="neighbours per query (default 10)")
    parser.add_argument("--json", help="write the results as JSON to this file (- = stdout)")
    parser.add_argument("--sheet", help="write a contact-sheet PNG to this file")
    parser.add_argument("--api-key", help="sent as 'authorization: Bearer KEY'")
    parser.add_argument("--tls-ca", help="PEM CA file: connect with TLS, verifying the server")
    args = parser.parse_args(argv)
    if args.k < 1:
        parser.error("--k must be at least 1")
    return args


def search(args: argparse.Namespace) -> tuple:
    """Loads the index, checks and embeds through the server; (meta, neighbours per query)."""
    loaded = load_index(args.index)
    images = read_queries(args.images)
    credentials = tls_credentials(args.tls_ca) if args.tls_ca else None
    with EmbeddingClient(args.server, credentials=credentials, api_key=args.api_key) as client:
        check_model(client, loaded.meta)
        queries = embed_queries(client, images, loaded.meta)
    return loaded.meta, neighbours(loaded, queries, args.k)


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        meta, found = search(args)
    except (ValueError, EmbeddingError) as e:
        raise SystemExit(f"dinov3-search: {e}") from None
    if args.json:
        write_json(args.json, args.images, found)
    else:
        print_text(args.images, found)
    if args.sheet:
        write_sheet(args.sheet, meta, args.images, found)
    return 0


if __name__ == "__main__":
    sys.exit(main())
