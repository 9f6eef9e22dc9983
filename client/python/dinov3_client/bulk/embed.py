"""dinov3-embed: embeds an image collection through one or more dinov3-servers into a folder of
Parquet (or .npy) shards, with progress, retries and an exact --resume.

    dinov3-embed SOURCE... --server=ADDR[,ADDR...] --out=DIR [--model=NAME]
                 [--outputs=cls,pooled] [--dtype=float32] [--format=parquet|npy] [--resume]

SOURCE: a folder, a .txt/.csv/.parquet list of paths, .tar shards or - (sources.py). The output
folder's layout and its crash safety: store.py. Threads: this one reads the source into batches
of --batch images (WorkQueue, work.py); one ServerWorker per --server streams them over
StreamEmbed with --window requests in flight and retries (dispatch.py); one ResultWriter writes
the shards (writer.py); the main thread reports progress (progress.py).

Exit status: 0 when every image is embedded or recorded in errors.jsonl, 1 when the run stopped
early (a fatal server answer, no server reachable at the start, no image answered for
--stall-seconds, no server left that serves the run's export, an interrupt, a write error:
what was committed stays, --resume finishes it), 2 for bad arguments.
"""
from __future__ import annotations

import argparse
import os
import sys
import threading
import time

from dinov3_client.bulk.dispatch import RequestSettings, RetryPolicy, ServerWorker
from dinov3_client.bulk.progress import Progress
from dinov3_client.bulk.sources import Source, image_size, open_source, read_item
from dinov3_client.bulk.store import FORMATS, READ_ERROR, VECTOR_OUTPUTS, ShardStore
from dinov3_client.bulk.work import Batch, WorkQueue
from dinov3_client.bulk.writer import ResultWriter
from dinov3_client.client import EmbeddingClient, EmbeddingError, tls_credentials
from dinov3_client.tensors import DTYPE_NAMES

FORMAT_VERSION = 1
REQUEST_OVERHEAD_BYTES = 64 << 10  # room left in a request for its fields besides image bytes
# Keepalive pings on the streams (the server permits one every 10 s): a server that vanished
# without closing the connection is noticed within about a minute.
KEEPALIVE = [("grpc.keepalive_time_ms", 30000), ("grpc.keepalive_timeout_ms", 20000)]


def log(message: str) -> None:
    print(f"dinov3-embed: {message}", file=sys.stderr, flush=True)


def parse_args(argv):
    p = argparse.ArgumentParser(prog="dinov3-embed", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("source", nargs="+", help="folder, list of paths (.txt/.csv/.parquet), "
                   ".tar shards, or - for paths on standard input")
    p.add_argument("--server", required=True, help="ADDR[,ADDR...] of dinov3-servers")
    p.add_argument("--out", required=True, help="output folder (new, or --resume)")
    p.add_argument("--model", default="", help="served model name (default: the server's)")
    p.add_argument("--outputs", default="cls,pooled", help="comma-separated: cls, pooled")
    p.add_argument("--dtype", default="float32", choices=sorted(DTYPE_NAMES))
    p.add_argument("--l2-normalize", action="store_true", help="unit-length vectors")
    p.add_argument("--resize", default=None,
                   choices=["fixed", "shorter_side_center_crop", "keep_aspect"],
                   help="the server's resize mode (default: the server's)")
    p.add_argument("--size", default=None, help="HxW resize target (default: the mode's)")
    p.add_argument("--decode", default=None, choices=["server_default", "exact", "fast"])
    p.add_argument("--format", default="parquet", choices=FORMATS)
    p.add_argument("--resume", action="store_true",
                   help="finish the run in --out: skip what its manifest and errors list")
    p.add_argument("--batch", type=int, default=8, help="images per request (default 8)")
    p.add_argument("--window", type=int, default=4,
                   help="requests in flight per server (default 4)")
    p.add_argument("--shard-size", type=int, default=10000, help="rows per shard")
    p.add_argument("--max-attempts", type=int, default=8,
                   help="sends of a request before its images are recorded as refused")
    p.add_argument("--path-column", default="path", help="column of paths in .csv/.parquet")
    p.add_argument("--api-key", default=os.environ.get("DINOV3_API_KEY"),
                   help="sent as a bearer token (default: $DINOV3_API_KEY)")
    p.add_argument("--tls-ca", default=None, help="CA bundle: connect with TLS")
    p.add_argument("--progress-seconds", type=float, default=10.0,
                   help="seconds between progress lines when not on a terminal")
    p.add_argument("--stall-seconds", type=float, default=600.0,
                   help="stop (exit 1) when no image is answered for this long (default 600)")
    args = p.parse_args(argv)
    args.outputs = [o.strip() for o in args.outputs.split(",") if o.strip()]
    unknown = [o for o in args.outputs if o not in VECTOR_OUTPUTS]
    if unknown or not args.outputs:
        p.error(f"--outputs: {unknown or 'none'}; choose from {', '.join(VECTOR_OUTPUTS)} (dense "
                "patch features: dinov3-client embed-dense)")
    for name in ("batch", "window", "shard_size", "max_attempts"):
        if getattr(args, name) < 1:
            p.error(f"--{name.replace('_', '-')} must be at least 1")
    args.servers = [s.strip() for s in args.server.split(",") if s.strip()]
    return args


def preprocess_of(args) -> dict:
    preprocess = {}
    if args.resize:
        preprocess["mode"] = args.resize
    if args.size:
        height, _, width = args.size.lower().partition("x")
        if not (height.isdigit() and width.isdigit()):
            raise ValueError(f"--size {args.size!r}: expected HxW, e.g. 224x224")
        preprocess.update(height=int(height), width=int(width))
    if args.decode:
        preprocess["decode"] = args.decode
    return preprocess


def connect(args) -> dict:
    """{target: client} of every --server (nothing is connected before the first call)."""
    credentials = tls_credentials(args.tls_ca) if args.tls_ca else None
    return {t: EmbeddingClient(t, timeout=60.0, credentials=credentials, api_key=args.api_key,
                               options=KEEPALIVE) for t in args.servers}


def served_model(clients: dict, model: str):
    """The ModelInfo the reachable servers agree on; ValueError when none answers or two serve
    different exports (their vectors would not be comparable)."""
    infos, failures = {}, []
    for target, client in clients.items():
        try:
            infos[target] = client.model_info(model)
        except EmbeddingError as e:
            failures.append(f"{target}: {e.code.name}: {e.details}")
    if not infos:
        raise ValueError("no server answered: " + "; ".join(failures))
    for failure in failures:
        log(f"{failure} (it is tried again during the run)")
    exports = {(i.variant, i.weights_sha256) for i in infos.values()}
    if len(exports) > 1:
        raise ValueError("the servers serve different exports: " + "; ".join(
            f"{t}: {i.variant} {i.weights_sha256[:12]}" for t, i in infos.items()))
    return next(iter(infos.values()))


def run_record(args, info, source: Source, preprocess: dict) -> dict:
    """run.json: what a --resume must repeat (store.py)."""
    return {"version": FORMAT_VERSION, "format": args.format, "outputs": args.outputs,
            "dtype": args.dtype, "l2_normalize": args.l2_normalize,
            "preprocess": preprocess, "model": args.model, "source_root": source.root,
            "model_info": {"variant": info.variant, "embed_dim": info.embed_dim,
                           "patch_size": info.patch_size, "weights_sha256": info.weights_sha256,
                           "untrained": info.untrained}}


class Counts:
    skipped = 0  # finished by an earlier run (--resume)
    duplicates = 0  # ids the source names more than once (embedded once)


def read_source(source: Source, done_ids: set, work: WorkQueue, writer: ResultWriter,
                limits, batch_images: int, counts: Counts) -> None:
    """Fills `work` with batches of the source's images that are not done yet: at most
    `batch_images` per request and the server's request size; a file over the server's
    max_image_bytes, unreadable, or whose name is not UTF-8 (no protobuf or Parquet string can
    hold it) is recorded as refused without being sent."""
    max_image = limits.max_image_bytes or None
    max_request = (limits.max_receive_message_bytes or 64 << 20) - REQUEST_OVERHEAD_BYTES
    seen, items, data, sizes, size = set(), [], [], [], 0
    for item in source.items:
        if item.id in done_ids:
            counts.skipped += 1
            continue
        if item.id in seen:
            counts.duplicates += 1
            continue
        seen.add(item.id)
        try:
            item.id.encode("utf-8")
        except UnicodeEncodeError:
            writer.refused_image(item.id, "INVALID_ARGUMENT", "the path is not valid UTF-8")
            continue
        try:
            nbytes = item.size if item.size is not None else os.path.getsize(item.path)
            if max_image is not None and nbytes > max_image:
                writer.refused_image(item.id, "INVALID_ARGUMENT", f"the file is {nbytes} bytes; "
                                     f"the server accepts at most {max_image} (max_image_bytes)")
                continue
            image = read_item(item)
        except OSError as e:
            writer.refused_image(item.id, READ_ERROR, str(e))
            continue
        if items and (len(items) == batch_images or size + len(image) > max_request):
            if not work.put(Batch(items, data, sizes)):
                return
            items, data, sizes, size = [], [], [], 0
        items.append(item)
        data.append(image)
        sizes.append(image_size(image))
        size += len(image)
    if items:
        work.put(Batch(items, data, sizes))


def start_reader(source, done_ids, work, writer, limits, batch_images, counts):
    def read():
        try:
            read_source(source, done_ids, work, writer, limits, batch_images, counts)
            work.reading_done()
        except Exception as e:  # noqa: BLE001 (a list file that goes bad midway, say)
            work.fail(f"reading the source failed: {type(e).__name__}: {e}")

    threading.Thread(target=read, name="dinov3-embed-reader", daemon=True).start()


def watch(work, workers, writer, progress, counts, stall_seconds: float) -> None:
    """Reports progress until the run is finished; fails it when no worker is left or nothing
    was answered for `stall_seconds`."""
    answered, since = -1, time.monotonic()
    while not work.wait_finished(0.2):
        progress.update(writer.done, writer.refused, counts.skipped + counts.duplicates)
        if writer.done + writer.refused != answered:
            answered, since = writer.done + writer.refused, time.monotonic()
        elif time.monotonic() - since > stall_seconds:
            work.fail(f"no image answered for {stall_seconds:.0f} s (--stall-seconds)")
        if not any(worker.is_alive() for worker in workers) and not work.finished():
            work.fail("no server left that serves the run's model")


def run(args) -> int:
    try:
        source = open_source(args.source, args.path_column)
        preprocess = preprocess_of(args)
    except ValueError as e:
        log(str(e))
        return 2
    clients = connect(args)
    try:
        info = served_model(clients, args.model)
    except ValueError as e:
        log(str(e))
        return 1
    try:
        store = ShardStore(args.out, run_record(args, info, source, preprocess),
                           args.resume)
    except ValueError as e:
        log(str(e))
        return 2
    work = WorkQueue(capacity=2 * args.window * len(clients))
    writer = ResultWriter(store, args.outputs, args.shard_size, work.fail,
                          lambda: work.failure is not None)
    settings = RequestSettings(tuple(args.outputs), args.dtype, args.l2_normalize,
                               preprocess, args.model)
    policy = RetryPolicy(max_attempts=args.max_attempts)
    workers = [ServerWorker(t, c, work, writer, settings, args.window, policy,
                            info.weights_sha256, log) for t, c in clients.items()]
    writer.start()
    for worker in workers:
        worker.start()
    counts = Counts()
    progress = Progress(source.total, every=args.progress_seconds)
    log(f"embedding into {args.out} with {info.variant} ({'untrained, ' if info.untrained else ''}"
        f"{info.weights_sha256[:12]}) on {len(clients)} server(s); "
        f"{len(store.done_ids)} images done before")
    try:
        start_reader(source, store.done_ids, work, writer, info.limits, args.batch, counts)
        watch(work, workers, writer, progress, counts, args.stall_seconds)
    except KeyboardInterrupt:
        work.fail("interrupted")
    for client in clients.values():
        client.close()  # ends the streams (finished: nothing is in flight; failed: not wanted)
    for worker in workers:
        worker.join()
    writer.close()
    progress.finish(writer.done, writer.refused, counts.skipped + counts.duplicates)
    for worker in workers:
        log(f"{worker.target}: {worker.images} images, {worker.reconnects} reconnects")
    if counts.duplicates:
        log(f"{counts.duplicates} ids the source named again were embedded once")
    if work.failure is not None:
        log(f"stopped: {work.failure}; what was committed is kept: --resume finishes the run")
        return 1
    log(f"done: {store.shards} shards, {store.errors} images refused (errors.jsonl)")
    return 0


def main(argv=None) -> int:
    return run(parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
