"""Load test of `seglab serve`: the server started in its own process on a model, then N clients
(threads, one keep-alive connection each) post images to POST /predict for D seconds, each
sending its next request as soon as the last is answered.

    .venv/bin/python benchmarks/serve_load.py MODEL [--clients 16] [--duration 60]
        [--images ../shared/datasets/camvid/val] [--queue 32] [--batch 4] [--device cpu]
        [--json benchmarks/results/serve_load.json] [--max-growth 64]

MODEL is anything `seglab serve` takes: a checkpoint, a run folder or an exported artifact. The
images (PNG, JPEG) are read into memory first and sent in turn, each client starting at its own
offset. Reported: requests answered, errors by status (and by exception for failed
connections), client-side latency p50/p90/p99/max, the server's own latency and batch size,
throughput, and the server's resident memory (RSS, from /proc) after a warm-up, a quarter into the
run, at its peak and at the end. The run fails (exit status 1) on any error, or when the RSS grows
by more than --max-growth MB from a quarter into the run to its end (the first quarter is where
the batches' buffers are first allocated; steady growth after it would be a leak).
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import platform
import statistics
import sys
import tempfile
import threading
import time
from collections import Counter
from datetime import date
from pathlib import Path

from seglab.engine.performance import rss_mb
from seglab.serving.process import ServerProcess

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
BOUNDARY = "seglab-load-test-boundary"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model", help="a checkpoint, run folder or exported artifact")
    parser.add_argument("--clients", type=int, default=16, help="concurrent clients (16)")
    parser.add_argument("--duration", type=float, default=60, help="seconds of load (60)")
    parser.add_argument("--images", default="../shared/datasets/camvid/val", help="image folder")
    parser.add_argument("--queue", type=int, default=32, help="the server's --queue (32)")
    parser.add_argument("--batch", type=int, default=4, help="the server's --batch (4)")
    parser.add_argument("--device", default="cpu", help="the server's --device (cpu)")
    parser.add_argument("--json", default="benchmarks/results/serve_load.json", help="output")
    parser.add_argument(
        "--max-growth", type=float, default=64, help="MB of RSS growth allowed after a quarter"
    )
    return parser.parse_args(argv)


def multipart(name: str, data: bytes) -> bytes:
    kind = "image/png" if name.lower().endswith(".png") else "image/jpeg"
    head = (
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="image"; filename="{name}"\r\n'
        f"Content-Type: {kind}\r\n\r\n"
    )
    return head.encode() + data + f"\r\n--{BOUNDARY}--\r\n".encode()


class Client(threading.Thread):
    """Posts images one after another until ``deadline``; records each answer."""

    def __init__(self, port: int, bodies: list[bytes], offset: int, deadline: float):
        super().__init__(daemon=True)
        self.port, self.bodies, self.offset, self.deadline = port, bodies, offset, deadline
        self.records: list[tuple[str, float, float, int]] = []  # status, s, server ms, batch

    def run(self) -> None:
        connection = None
        k = self.offset
        while time.monotonic() < self.deadline:
            body = self.bodies[k % len(self.bodies)]
            k += 1
            start = time.perf_counter()
            try:
                connection = connection or http.client.HTTPConnection(
                    "127.0.0.1", self.port, timeout=120
                )
                connection.request(
                    "POST",
                    "/predict",
                    body=body,
                    headers={"Content-Type": f"multipart/form-data; boundary={BOUNDARY}"},
                )
                response = connection.getresponse()
                response.read()
                status = str(response.status)
                server_ms = float(response.getheader("X-Latency-Ms") or "nan")
                batch = int(response.getheader("X-Batch-Size") or 0)
                if response.getheader("Connection", "").lower() == "close":
                    connection.close()
                    connection = None
            except (OSError, http.client.HTTPException) as err:
                status, server_ms, batch = type(err).__name__, float("nan"), 0
                if connection is not None:
                    connection.close()
                connection = None
            self.records.append((status, time.perf_counter() - start, server_ms, batch))
        if connection is not None:
            connection.close()


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    folder = Path(args.images)
    files = sorted(p for p in folder.glob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        sys.exit(f"no PNG or JPEG images in {folder}")
    bodies = [multipart(p.name, p.read_bytes()) for p in files]
    log = Path(tempfile.mkdtemp(prefix="serve_load_")) / "serve.log"
    options = ["--queue", str(args.queue), "--batch", str(args.batch), "--device", args.device]
    options += ["--per-client", str(4 * args.clients)]  # every client is 127.0.0.1
    with ServerProcess([args.model], log=log, options=options) as server:
        port = int(server.url.rstrip("/").rsplit(":", 1)[1])
        warm = Client(port, bodies, 0, time.monotonic() + 3)  # first batches, allocator warm
        warm.run()
        memory = [(0.0, rss_mb(server.pid))]
        start = time.monotonic()
        deadline = start + args.duration
        clients = [Client(port, bodies, k * 7, deadline) for k in range(args.clients)]
        for client in clients:
            client.start()
        while any(c.is_alive() for c in clients):
            time.sleep(0.5)
            memory.append((time.monotonic() - start, rss_mb(server.pid)))
        elapsed = time.monotonic() - start
        memory.append((elapsed, rss_mb(server.pid)))
    records = [r for c in clients for r in c.records]
    ok = [r for r in records if r[0] == "200"]
    latencies = [r[1] * 1000 for r in ok]
    server_ms = [r[2] for r in ok]
    quarter = next((m for t, m in memory if t >= args.duration / 4), memory[-1][1])
    result = {
        "date": date.today().isoformat(),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, {platform.platform()}",
        "model": args.model,
        "settings": {
            "clients": args.clients,
            "duration_s": args.duration,
            "queue": args.queue,
            "batch": args.batch,
            "device": args.device,
            "images": f"{len(files)} from {folder}",
        },
        "requests": len(records),
        "ok": len(ok),
        "errors": dict(Counter(r[0] for r in records if r[0] != "200")),
        "throughput_per_s": len(ok) / elapsed,
        "latency_ms": {
            "p50": percentile(latencies, 50),
            "p90": percentile(latencies, 90),
            "p99": percentile(latencies, 99),
            "max": max(latencies, default=float("nan")),
            "mean": statistics.fmean(latencies) if latencies else float("nan"),
        },
        "server_latency_ms_p50": percentile(server_ms, 50),
        "mean_batch": statistics.fmean(r[3] for r in ok) if ok else 0,
        "rss_mb": {
            "start": memory[0][1],
            "quarter": quarter,
            "peak": max(m for _, m in memory),
            "end": memory[-1][1],
            "growth_after_quarter": memory[-1][1] - quarter,
        },
    }
    print_table(result)
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.json}; server log {log}")
    grew = result["rss_mb"]["growth_after_quarter"] > args.max_growth
    if grew:
        print(f"FAIL: RSS grew more than {args.max_growth} MB after the first quarter")
    if result["errors"]:
        print(f"FAIL: errors {result['errors']}")
    return 1 if grew or result["errors"] or not ok else 0


PCT = ("p50", "p90", "p99")
RSS = ("start", "quarter", "peak", "end")


def print_table(result: dict) -> None:
    latency, rss = result["latency_ms"], result["rss_mb"]
    settings = result["settings"]
    rows = [
        ("model", result["model"]),
        ("clients x seconds", f"{settings['clients']} x {settings['duration_s']:g}"),
        ("queue / batch", f"{settings['queue']} / {settings['batch']}"),
        ("requests (ok)", f"{result['requests']} ({result['ok']})"),
        ("errors", ", ".join(f"{k}: {v}" for k, v in result["errors"].items()) or "none"),
        ("throughput", f"{result['throughput_per_s']:.2f} images/s"),
        ("latency p50 / p90 / p99", " / ".join(f"{latency[q]:.0f}" for q in PCT) + " ms"),
        ("latency max", f"{latency['max']:.0f} ms"),
        ("server latency p50", f"{result['server_latency_ms_p50']:.0f} ms"),
        ("mean batch", f"{result['mean_batch']:.2f}"),
        ("RSS start / quarter / peak / end", " / ".join(f"{rss[k]:.0f}" for k in RSS) + " MB"),
        ("RSS growth after the first quarter", f"{rss['growth_after_quarter']:+.1f} MB"),
    ]
    width = max(len(k) for k, _ in rows)
    for key, value in rows:
        print(f"{key:<{width}}  {value}")


if __name__ == "__main__":
    sys.exit(main())
