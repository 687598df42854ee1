"""Generate many images on a Ray cluster: a prompt file → PNG images + a JSON-lines report.

Usage (``python -m argen.ray`` or ``examples/python/ray_generate.py``)::

    python -m argen.ray --model fixtures/models/shapesworld --prompts prompts.txt \\
        --out out/ --method sd --seeds 4 --workers 2 [--address ray://head:10001] \\
        [--option criterion=coupled --option gamma=3]

* **Input**: one prompt per line (blank lines and lines starting with ``#`` are skipped; a
  line ``class:N`` asks for class ``N`` of a class-conditional model). Every prompt gets
  ``--seeds`` images, with seeds ``--seed``, ``--seed + 1``, …
* **Work**: a Ray Data pipeline — ``ray.data.from_items(jobs).map_batches(Generator, …)`` with a
  fixed pool of ``--workers`` actors, each holding one :class:`argen.Model` (loaded once per
  actor, ``--threads`` cores each). Workers return PNG bytes, so the output directory only has to
  exist where this driver runs (no shared file system needed; the model directory must exist at
  the same path on every node).
* **Output**: ``OUT/images/<job>.png`` (written atomically: a temporary file renamed into place)
  and ``OUT/report.jsonl``, one JSON object per image: job id, prompt, seed, method, file, PNG
  SHA-256, tokens per target forward, ShapesWorld alignment, decoding seconds, worker host.
* **Resumable**: jobs whose report line and image both exist are skipped, so an interrupted
  run continues where it stopped (a torn last report line is ignored and redone).
* **Deterministic**: every image depends only on (model, prompt, method, options, seed): the
  bytes are the same whatever the number of workers or nodes, and equal ``argen generate``'s
  pixels.
* **Cluster**: without ``--address`` Ray starts locally (``ray.init()``, bounded by
  ``--num-cpus``); with ``--address auto`` (on a cluster node) or ``ray://HOST:10001`` it joins
  an existing cluster.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import socket
import struct
import sys
import time
import zlib
from typing import Any, Dict, Iterable, List, Optional

__all__ = ["main", "load_jobs", "png_bytes", "Generator"]


def png_bytes(image) -> bytes:
    """An RGB8 ``height × width × 3`` array as PNG bytes (filter 0, zlib level 9: the same
    pixels always give the same bytes)."""
    h, w, _ = image.shape
    raw = b"".join(b"\x00" + image[y].tobytes() for y in range(h))

    def chunk(kind: bytes, body: bytes) -> bytes:
        return (
            struct.pack(">I", len(body))
            + kind
            + body
            + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)
        )

    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
        + chunk(b"IDAT", zlib.compress(raw, 9))
        + chunk(b"IEND", b"")
    )


def load_jobs(path: str, seeds: int, first_seed: int) -> List[Dict[str, Any]]:
    """The jobs of a prompt file: one per (prompt line, seed), with a stable id."""
    jobs = []
    with open(path, encoding="utf-8") as f:
        lines = [line.strip() for line in f]
    index = 0
    for line in lines:
        if not line or line.startswith("#"):
            continue
        for k in range(seeds):
            seed = first_seed + k
            jobs.append({"id": f"p{index:05d}-s{seed}", "index": index, "line": line, "seed": seed})
        index += 1
    return jobs


def done_jobs(out: str) -> set:
    """Ids of the jobs already finished in ``out`` (report line present and image on disk)."""
    report = os.path.join(out, "report.jsonl")
    done = set()
    if not os.path.exists(report):
        return done
    with open(report, encoding="utf-8") as f:
        for line in f:
            try:
                rec = json.loads(line)
            except ValueError:
                continue  # a torn last line of an interrupted run: redo that job
            if os.path.exists(os.path.join(out, rec.get("file", ""))):
                done.add(rec["id"])
    return done


class Generator:
    """A Ray Data actor: one :class:`argen.Model` per worker, one image per job row."""

    def __init__(self, model: str, threads: int, method: str, options: Dict[str, Any]):
        import argen

        self.model = argen.Model(model, threads=threads)
        self.method = method
        self.options = options
        self.host = socket.gethostname()

    def __call__(self, batch: Dict[str, Any]) -> Dict[str, List[Any]]:
        out: Dict[str, List[Any]] = {"id": [], "png": [], "record": []}
        for i in range(len(batch["id"])):
            line, seed = str(batch["line"][i]), int(batch["seed"][i])
            if line.startswith("class:"):
                kwargs = {"class_id": int(line[len("class:"):])}
            else:
                kwargs = {"prompt": line}
            g = self.model.generate(method=self.method, seed=seed, **kwargs, **self.options)
            png = png_bytes(g.image)
            s = g.stats
            record = {
                "id": str(batch["id"][i]),
                "index": int(batch["index"][i]),
                "prompt": line,
                "seed": seed,
                "method": self.method,
                "options": self.options,
                "file": f"images/{batch['id'][i]}.png",
                "png_sha256": hashlib.sha256(png).hexdigest(),
                "tokens_per_target_forward": s["tokens_per_target_forward"],
                "aligned": (s.get("alignment") or {}).get("aligned"),
                "wall_seconds": s["wall_seconds"],
                "host": self.host,
            }
            out["id"].append(record["id"])
            out["png"].append(png)
            out["record"].append(json.dumps(record, sort_keys=True))
        return out


def write_atomic(path: str, data: bytes) -> None:
    """Writes ``data`` to a temporary file beside ``path``, then renames it into place."""
    tmp = f"{path}.tmp-{os.getpid()}"
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def parse_option(text: str) -> tuple:
    """``name=value`` with ``value`` parsed as JSON when it is JSON (numbers, true/false)."""
    if "=" not in text:
        raise argparse.ArgumentTypeError(f"--option wants NAME=VALUE, got {text!r}")
    name, value = text.split("=", 1)
    try:
        return name, json.loads(value)
    except ValueError:
        return name, value


def main(argv: Optional[Iterable[str]] = None) -> int:
    """Command-line entry point; returns the exit status."""
    p = argparse.ArgumentParser(
        prog="python -m argen.ray",
        description="Generate images for a prompt file on a Ray cluster (resumable).",
    )
    p.add_argument("--model", required=True, help="argen model directory (same path on every node)")
    p.add_argument("--prompts", required=True, help="prompt file, one prompt per line")
    p.add_argument("--out", required=True, help="output directory (images/ and report.jsonl)")
    p.add_argument("--method", default="vanilla", help="decoding method (default: vanilla)")
    p.add_argument("--option", action="append", default=[], type=parse_option,
                   metavar="NAME=VALUE", help="a method option, e.g. criterion=coupled (repeatable)")
    p.add_argument("--seeds", type=int, default=1, help="images per prompt (default: 1)")
    p.add_argument("--seed", type=int, default=0, help="first seed (default: 0)")
    p.add_argument("--workers", type=int, default=1, help="actors, one model each (default: 1)")
    p.add_argument("--threads", type=int, default=1, help="cores per actor (default: 1)")
    p.add_argument("--address", default=None,
                   help="Ray cluster address ('auto', 'ray://HOST:10001'); default: start Ray locally")
    p.add_argument("--num-cpus", type=int, default=None, help="local Ray only: CPUs to use")
    p.add_argument("--object-store-mb", type=int, default=256,
                   help="local Ray only: object store size in MiB (default: 256)")
    p.add_argument("--quiet", action="store_true", help="no per-image progress lines")
    a = p.parse_args(argv)
    if a.seeds < 1 or a.workers < 1 or a.threads < 1:
        p.error("--seeds, --workers and --threads must be at least 1")
    options = dict(a.option)

    jobs = load_jobs(a.prompts, a.seeds, a.seed)
    os.makedirs(os.path.join(a.out, "images"), exist_ok=True)
    done = done_jobs(a.out)
    todo = [j for j in jobs if j["id"] not in done]
    print(f"argen.ray: {len(jobs)} images, {len(jobs) - len(todo)} already done, "
          f"{len(todo)} to generate with {a.workers} worker(s)", file=sys.stderr)
    if not todo:
        return 0

    import argen
    import ray

    # Fail fast, before Ray starts, on a bad model directory, method or option.
    argen.Model(a.model, threads=1).generate(
        **({"class_id": int(todo[0]["line"][6:])} if todo[0]["line"].startswith("class:")
           else {"prompt": todo[0]["line"]}),
        method=a.method, seed=todo[0]["seed"], **options)

    if a.address is None:
        ray.init(num_cpus=a.num_cpus, object_store_memory=a.object_store_mb << 20,
                 include_dashboard=False, log_to_driver=False)
    else:
        ray.init(address=a.address, log_to_driver=False)
    ctx = ray.data.DataContext.get_current()
    ctx.enable_progress_bars = False
    ds = ray.data.from_items(todo, override_num_blocks=min(len(todo), 4 * a.workers))
    ds = ds.map_batches(
        Generator,
        fn_constructor_kwargs={"model": os.path.abspath(a.model), "threads": a.threads,
                               "method": a.method, "options": options},
        batch_size=1,
        compute=ray.data.ActorPoolStrategy(size=a.workers),
        num_cpus=a.threads,
        batch_format="numpy",
    )
    start = time.time()
    report = os.path.join(a.out, "report.jsonl")
    n = 0
    with open(report, "a+b") as f:
        f.seek(0, os.SEEK_END)
        if f.tell() > 0:
            f.seek(-1, os.SEEK_END)
            if f.read(1) != b"\n":
                f.write(b"\n")  # end a torn line of an interrupted run before appending
    with open(report, "a", encoding="utf-8") as rep:
        for row in ds.iter_rows():
            rec = json.loads(row["record"])
            write_atomic(os.path.join(a.out, rec["file"]), bytes(row["png"]))
            rep.write(row["record"] + "\n")
            rep.flush()
            n += 1
            if not a.quiet:
                print(f"[{n}/{len(todo)}] {rec['id']} {rec['prompt']!r} seed {rec['seed']}: "
                      f"{rec['tokens_per_target_forward']:.2f} tokens/forward, "
                      f"{rec['wall_seconds']:.2f} s on {rec['host']} "
                      f"({time.time() - start:.0f} s elapsed)", file=sys.stderr)
    ray.shutdown()
    print(f"argen.ray: {n} images written to {a.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
