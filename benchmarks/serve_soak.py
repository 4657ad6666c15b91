"""Soak test of `seglab serve`: wrk keeps CLIENTS connections posting real images for DURATION
seconds (benchmarks/serve_wrk.py's method and request script), while the server's resident
memory is sampled every INTERVAL seconds after a warm-up. It passes when memory levels off:
the highest RSS of the run's last half exceeds that of its first half by at most --max-growth MB
(peaks, as RSS swings by a batch's buffers between samples; the least-squares trend over the last
half is reported beside it), and no request failed.

    .venv/bin/python benchmarks/serve_soak.py MODEL [--duration 600] [--warmup 60]
        [--interval 10] [--clients 16] [--images ../shared/datasets/camvid/val]
        [--max-growth 4] [--json benchmarks/results/serve_soak.json]

The series is printed as it is sampled and written to the JSON with the wrk summary, the
server's settings and the machine's load before the run.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

from serve_wrk import (  # beside this script
    RESULT_MARK,
    failures,
    prepare_load,
    start_server,
    wrk_command,
)

from seglab.engine.machine import busy_note, machine_description
from seglab.engine.performance import rss_mb


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model", help="an exported artifact (or checkpoint, run folder)")
    parser.add_argument("--duration", type=float, default=600, help="seconds sampled (600)")
    parser.add_argument("--warmup", type=float, default=60, help="seconds of load first (60)")
    parser.add_argument("--interval", type=float, default=10, help="seconds between samples")
    parser.add_argument("--clients", type=int, default=16, help="connections (16)")
    parser.add_argument("--images", default="../shared/datasets/camvid/val", help="image folder")
    parser.add_argument("--queue", type=int, default=32, help="the server's --queue (32)")
    parser.add_argument("--batch", type=int, default=4, help="the server's --batch (4)")
    parser.add_argument("--pin", choices=("shared", "split"), default="shared")
    parser.add_argument("--max-growth", type=float, default=4, help="MB over the last half (4)")
    parser.add_argument("--json", default="benchmarks/results/serve_soak.json", help="output")
    return parser.parse_args(argv)


def peak_growth(series: list[tuple[float, float]], duration: float) -> float:
    """MB by which the highest RSS of the run's last half exceeds that of its first half."""
    first = [m for t, m in series if t < duration / 2]
    last = [m for t, m in series if t >= duration / 2]
    return max(last) - max(first) if first and last else float("nan")


def trend(points: list[tuple[float, float]]) -> float:
    """The least-squares slope of (time, value) points, per second."""
    n = len(points)
    if n < 2:
        return 0.0
    mean_t = sum(t for t, _ in points) / n
    mean_v = sum(v for _, v in points) / n
    spread = sum((t - mean_t) ** 2 for t, _ in points)
    return sum((t - mean_t) * (v - mean_v) for t, v in points) / spread if spread else 0.0


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    load = prepare_load(args.images, args.pin, "serve_soak_")
    options = ["--queue", str(args.queue), "--batch", str(args.batch)]
    options += ["--per-client", str(4 * args.clients)]
    server = start_server(args.model, options, load)
    total = args.warmup + args.duration
    command = wrk_command(server.url, load, args.clients, total + 1)
    series: list[tuple[float, float]] = []
    try:
        wrk = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        start = time.monotonic()
        time.sleep(args.warmup)  # the first batches, allocators warm
        print(f"warm-up {args.warmup:g} s done; RSS every {args.interval:g} s:")
        for k in range(int(args.duration // args.interval) + 1):
            time.sleep(max(0.0, start + args.warmup + k * args.interval - time.monotonic()))
            elapsed = time.monotonic() - start - args.warmup
            series.append((round(elapsed, 1), rss_mb(server.pid)))
            print(f"  {elapsed:7.1f} s  {series[-1][1]:8.1f} MB", flush=True)
        out, err = wrk.communicate(timeout=total + 60)
    finally:
        server.stop()
    line = next((s for s in out.splitlines() if s.startswith(RESULT_MARK)), None)
    if line is None:
        sys.exit(f"wrk failed ({wrk.returncode}):\n{out}\n{err}")
    summary = json.loads(line[len(RESULT_MARK) :])
    half = [(t, m) for t, m in series if t >= args.duration / 2]
    middle = half[0][1] if half else float("nan")
    # peaks, not single samples: RSS swings by a batch's buffers from one sample to the next
    growth = peak_growth(series, args.duration)
    trend_growth = trend(half) * (args.duration / 2)
    errors = failures(summary)
    ok = summary["statuses"].get("200", 0)
    report = {
        "date": datetime.now().isoformat(timespec="seconds"),
        "model": args.model,
        "settings": {
            "duration_s": args.duration,
            "warmup_s": args.warmup,
            "interval_s": args.interval,
            "clients": args.clients,
            "queue": args.queue,
            "batch": args.batch,
            "pin": args.pin,
            "images": f"{len(load.files)} from {args.images}",
        },
        "load_before": load.quiet,
        "busy": busy_note({"load": load.quiet, "cores": os.cpu_count()}),
        "rss_mb": series,
        "growth_last_half_mb": growth,
        "trend_last_half_mb": trend_growth,
        "max_growth_mb": args.max_growth,
        "ok": ok,
        "errors": errors,
        "throughput_per_s": ok / (summary["duration_us"] / 1e6),
        "latency_ms": {k: v / 1000 for k, v in summary["latency_us"].items()},
        "mean_batch": summary["batch_sum"] / max(1, summary["batch_n"]),
        "machine": machine_description(),
    }
    print(
        f"RSS {series[0][1]:.1f} MB after warm-up, {middle:.1f} at the middle, "
        f"{series[-1][1]:.1f} at the end; the last half's peak {growth:+.1f} MB on the first's "
        f"(trend {trend_growth:+.1f} MB); {ok} answered, {report['throughput_per_s']:.2f} "
        f"images/s, errors {errors or 'none'}"
    )
    if report["busy"]:
        print(f"note: {report['busy']}")
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.json}; server log {load.work / 'serve.log'}")
    failed = []
    if not growth <= args.max_growth:
        failed.append(f"RSS grew more than {args.max_growth:g} MB over the last half")
    if errors or not ok:
        failed.append(f"errors {errors or 'no answers'}")
    for reason in failed:
        print(f"FAIL: {reason}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
