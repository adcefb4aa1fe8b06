#!/usr/bin/env python
"""Benchmark packed data (``dan data pack``) against the folder layout it was packed from.

On a generated set (``dan synth``, RAF-DB layout) or ``--root`` (any ``--format``), it reports:

- the time to pack the set into LitData chunks, on local disk and into a loopback object store
  (moto's S3 server in this process, plain http: LitData's boto3 path);
- training samples/s through the real training loader (``FERDataModule``: the recipe's augmentations,
  uint8 faces, one epoch, the main process doing nothing else) with 1 and 2 workers, for the folder
  layout, the packed copy on local disk and the packed copy in the object store (its first epoch
  downloads each chunk once into LitData's cache, its second reads the cache: both are shown);
- the resident memory of each loader worker process after the epoch (VmRSS, MiB).

Usage::

    python -m scripts.bench.packed                       # 2,000 generated faces at 224 px
    python -m scripts.bench.packed --images 140 --size 48 --workers 1   # a smoke run

Not a test. The machine's load changes the figures: run it alone; the load is printed before and after.
"""

from __future__ import annotations

import argparse
import logging
import os
import socket
import tempfile
import time
from pathlib import Path

from dan.data.datamodule import FERDataModule
from dan.data.pack import pack_dataset


def _worker_rss_mib() -> list[float]:
    """VmRSS of this process's child processes (the loader workers), MiB."""
    rss = []
    for task in Path(f"/proc/{os.getpid()}/task").iterdir():
        for child in (task / "children").read_text().split():
            try:
                status = Path(f"/proc/{child}/status").read_text()
            except OSError:
                continue
            kib = next((int(line.split()[1]) for line in status.splitlines() if line.startswith("VmRSS:")), 0)
            rss.append(kib / 1024)
    return rss


def _epochs(fmt: str, root: str, size: int, workers: int, batch: int, epochs: int) -> list[tuple[float, list]]:
    """samples/s of each epoch through the training loader, and the workers' memory after it."""
    dm = FERDataModule(format=fmt, root=root, image_size=size, batch_size=batch, num_workers=workers, seed=0)
    dm.setup("fit")
    loader = dm.train_dataloader()
    out = []
    for epoch in range(epochs):
        loader.sampler.set_epoch(epoch)  # type: ignore[union-attr]
        start, n = time.perf_counter(), 0
        for b in loader:
            n += len(b["label"])
        out.append((n / (time.perf_counter() - start), _worker_rss_mib()))
    return out


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _object_store() -> tuple[object, str]:
    """A moto S3 server on loopback with a bucket, and its environment set."""
    import boto3
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # no line per request
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=_free_port(), verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    os.environ.update(AWS_ACCESS_KEY_ID="bench", AWS_SECRET_ACCESS_KEY="bench", AWS_DEFAULT_REGION="us-east-1")
    os.environ["AWS_ENDPOINT_URL"] = f"http://{host}:{port}"
    boto3.client("s3").create_bucket(Bucket="bench")
    return server, "s3://bench/packed"


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    p.add_argument("--root", default=None, help="a data set (default: generate one)")
    p.add_argument("--format", default="rafdb", help="its layout")
    p.add_argument("--images", type=int, default=2000, help="generated faces (without --root)")
    p.add_argument("--size", type=int, default=224, help="model input side")
    p.add_argument("--batch", type=int, default=64, help="batch size")
    p.add_argument("--workers", type=int, nargs="+", default=[1, 2], help="loader worker counts")
    p.add_argument("--no-s3", action="store_true", help="skip the loopback object store")
    args = p.parse_args(argv)
    print(f"load average before: {os.getloadavg()}")
    with tempfile.TemporaryDirectory() as tmp:
        os.environ.setdefault("LITDATA_CACHE_DIR", str(Path(tmp, "cache")))
        root = args.root
        if root is None:
            from dan.cli.main import main as dan

            root = str(Path(tmp, "synth"))
            per_class = max(1, args.images // 7)
            assert dan(["synth", root, "--per-class", str(per_class), "--size", "100", "--seed", "0"]) == 0
        places = {"packed-local": str(Path(tmp, "packed"))}
        server = None
        if not args.no_s3:
            server, places["packed-s3"] = _object_store()
        for name, where in places.items():
            start = time.perf_counter()
            pack_dataset(args.format, root, where, say=lambda _: None)
            print(f"pack {name}: {time.perf_counter() - start:.2f} s")
        runs = {"folder": (args.format, root), **{k: ("packed", v) for k, v in places.items()}}
        print(f"{'data':14s} {'workers':>7s} {'epoch':>5s} {'samples/s':>10s}  worker RSS MiB")
        for workers in args.workers:
            for name, (fmt, where) in runs.items():
                for epoch, (rate, rss) in enumerate(_epochs(fmt, where, args.size, workers, args.batch, 2)):
                    mem = ", ".join(f"{r:.0f}" for r in rss)
                    print(f"{name:14s} {workers:7d} {epoch:5d} {rate:10.1f}  {mem}")
        if server is not None:
            server.stop()  # type: ignore[attr-defined]
    print(f"load average after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
