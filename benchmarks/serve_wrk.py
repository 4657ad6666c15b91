"""Serving throughput against the benchmark: `seglab serve` loaded by `wrk` (a compiled load
generator: one thread, one keep-alive connection per client, requests built once), then the
same artifact timed by `seglab benchmark`'s timing function at the batch size the queue formed,
with the same CPU pinning, and the ratio of the two.

    .venv/bin/python benchmarks/serve_wrk.py MODEL [--clients 16] [--duration 60] [--warmup 10]
        [--images ../shared/datasets/camvid/val] [--queue 32] [--batch 4] [--pin shared|split]
        [--repeats 30] [--json benchmarks/results/serve_wrk.json] [--goal 0.9]

Method. ``--pin shared`` (the default): the server may use every core and wrk runs beside it
(``wrk -t1 -cCLIENTS``); wrk's own CPU time is measured and reported as a share of the run, so
what it took from the server is known. ``--pin split``: the server and the benchmark on every
core but the last, wrk on the last. The images (PNG, JPEG) are posted in turn as multipart forms,
each connection starting at its own image; the server's --per-client is raised to 4 x CLIENTS
(every connection comes from 127.0.0.1, and a connection's next request can arrive before the
last one's slot is freed). Reported: answers by status (any non-200, any socket
error or timeout is a failure), throughput, latency p50/p90/p99/max as wrk measured it, the mean
batch size the server reported, the server's CPU seconds per image, the benchmark's latency and
throughput at that batch size (rounded) and at batch 1, the ratio of served to benchmark
throughput, and the machine's load before the run (``cpu_load``: other processes' share of the
cores, and the load average). The exit status is 1 on any error, or below ``--goal``.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from seglab.engine.machine import busy_note, cpu_load, machine_description
from seglab.engine.performance import rss_mb
from seglab.serving.process import ServerProcess

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
RESULT_MARK = "SEGLAB_WRK "

# The wrk script: requests built once in init (the whole form, headers included), sent in turn;
# answers counted by status and X-Batch-Size summed; one JSON line printed at the end.
LUA = r"""
local boundary = "seglab-wrk-boundary"
local requests, threads, next_request = {}, {}, 0

function setup(thread)
  table.insert(threads, thread)
  thread:set("thread_index", #threads - 1)
end

function init(args)
  local step = tonumber(args[2] or "7")
  for path in io.lines(args[1]) do
    local file = assert(io.open(path, "rb"))
    local data = file:read("*a")
    file:close()
    local name = path:match("([^/]+)$")
    local kind = name:lower():match("%.png$") and "image/png" or "image/jpeg"
    local body = "--" .. boundary .. "\r\n"
      .. 'Content-Disposition: form-data; name="image"; filename="' .. name .. '"\r\n'
      .. "Content-Type: " .. kind .. "\r\n\r\n" .. data .. "\r\n--" .. boundary .. "--\r\n"
    local headers = {["Content-Type"] = "multipart/form-data; boundary=" .. boundary}
    table.insert(requests, wrk.format("POST", "/predict", headers, body))
  end
  next_request = (thread_index or 0) * step
  statuses, batches, batched = {}, 0, 0
end

function request()
  next_request = next_request + 1
  return requests[(next_request % #requests) + 1]
end

function response(status, headers, body)
  statuses[status] = (statuses[status] or 0) + 1
  local batch = tonumber(headers["x-batch-size"] or headers["X-Batch-Size"] or "")
  if batch then
    batches, batched = batches + batch, batched + 1
  end
end

function done(summary, latency, requests_done)
  local counts, batch_sum, batch_n = {}, 0, 0
  for _, thread in ipairs(threads) do
    for status, n in pairs(thread:get("statuses") or {}) do
      counts[status] = (counts[status] or 0) + n
    end
    batch_sum = batch_sum + (thread:get("batches") or 0)
    batch_n = batch_n + (thread:get("batched") or 0)
  end
  local parts = {}
  for status, n in pairs(counts) do
    table.insert(parts, string.format('"%d": %d', status, n))
  end
  local e = summary.errors
  io.write(string.format(
    'SEGLAB_WRK {"statuses": {%s}, "batch_sum": %d, "batch_n": %d, "requests": %d, '
      .. '"duration_us": %d, "socket_errors": {"connect": %d, "read": %d, "write": %d, '
      .. '"timeout": %d}, "latency_us": {"p50": %d, "p90": %d, "p99": %d, "max": %d, '
      .. '"mean": %.1f}}\n',
    table.concat(parts, ", "), batch_sum, batch_n, summary.requests, summary.duration,
    e.connect, e.read, e.write, e.timeout, latency:percentile(50), latency:percentile(90),
    latency:percentile(99), latency.max, latency.mean))
end
"""

# The benchmark, in a process of its own pinned like the server: seglab benchmark's timing of
# an exported file (benchmark() on artifact_segmenter), without the PyTorch backends and the
# mIoU that `seglab benchmark FILE` adds when the checkpoint and data are here.
BENCHMARK = r"""
import json, sys, torch
from seglab.deployment.artifacts import read_card
from seglab.deployment.benchmark import benchmark
from seglab.deployment.artifacts import artifact_segmenter
from seglab.engine.machine import machine_description
path, batch, repeats = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
card = read_card(path)
height, width = card.input.size or (360, 480)
images = torch.rand(batch, card.info.in_channels, height, width)
timings, skipped = benchmark({"file": lambda: artifact_segmenter(path, card)}, images, repeats)
if skipped:
    sys.exit(f"benchmark: {skipped}")
t = timings[0]
print("SEGLAB_BENCH " + json.dumps({"batch": batch, "size": [height, width],
      "median_ms": t.median_ms, "p90_ms": t.p90_ms, "throughput_per_s": t.images_per_s,
      "torch_threads": torch.get_num_threads(), "machine": machine_description()}))
"""


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model", help="an exported artifact (or checkpoint, run folder)")
    parser.add_argument("--clients", type=int, default=16, help="connections (16)")
    parser.add_argument("--duration", type=float, default=60, help="seconds of load (60)")
    parser.add_argument("--warmup", type=float, default=10, help="seconds of load first (10)")
    parser.add_argument("--images", default="../shared/datasets/camvid/val", help="image folder")
    parser.add_argument("--queue", type=int, default=32, help="the server's --queue (32)")
    parser.add_argument("--batch", type=int, default=4, help="the server's --batch (4)")
    parser.add_argument("--serve-option", action="append", default=[], help="more serve flags")
    parser.add_argument("--pin", choices=("shared", "split"), default="shared", help="see above")
    parser.add_argument("--repeats", type=int, default=30, help="benchmark runs (30)")
    parser.add_argument("--json", default="benchmarks/results/serve_wrk.json", help="output")
    parser.add_argument("--goal", type=float, default=0.9, help="served/benchmark at least")
    return parser.parse_args(argv)


def cores(pin: str) -> tuple[set[int], set[int] | None]:
    """(the server's and the benchmark's cores, wrk's cores or None: anywhere)."""
    every = sorted(os.sched_getaffinity(0))
    if pin == "split" and len(every) > 1:
        return set(every[:-1]), {every[-1]}
    return set(every), None


@dataclass
class Load:
    """What a load run needs: the images, wrk's request script and the list it posts in turn
    (in ``work``), the cores of the server and of wrk, and how busy the machine was before."""

    files: list[Path]
    work: Path
    lua: Path
    listing: Path
    server_cores: set[int]
    wrk_cores: set[int] | None
    quiet: dict


def prepare_load(images: str, pin: str, prefix: str) -> Load:
    folder = Path(images)
    files = sorted(p.resolve() for p in folder.glob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        sys.exit(f"no PNG or JPEG images in {folder}")
    server_cores, wrk_cores = cores(pin)
    work = Path(tempfile.mkdtemp(prefix=prefix))
    lua, listing = work / "post.lua", work / "images.txt"
    lua.write_text(LUA)
    listing.write_text("".join(f"{p}\n" for p in files))
    quiet = cpu_load(2.0)  # before anything of ours runs
    return Load(files, work, lua, listing, server_cores, wrk_cores, quiet)


def start_server(model: str, options: list[str], load: Load) -> ServerProcess:
    """``seglab serve MODEL`` on the load's server cores (the process inherits them)."""
    every = os.sched_getaffinity(0)
    os.sched_setaffinity(0, load.server_cores)
    try:
        server = ServerProcess([model], log=load.work / "serve.log", options=options)
        server.__enter__()
    finally:
        os.sched_setaffinity(0, every)
    return server


def failures(result: dict) -> dict:
    """wrk's answers other than 200, and its socket errors, by kind."""
    errors = {k: v for k, v in result["statuses"].items() if k != "200"}
    errors.update({k: v for k, v in result["socket_errors"].items() if v})
    return errors


def cpu_seconds(pid: int) -> float:
    """User and system CPU seconds of a process and all its threads, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def wrk_command(url: str, load: Load, clients: int, seconds: float) -> list[str]:
    """wrk posting the load's images to ``url``/predict over ``clients`` connections, one
    thread, on wrk's cores."""
    command = ["wrk", "-t1", f"-c{clients}", f"-d{max(1, round(seconds))}s", "--timeout", "120s"]
    command += ["--latency", "-s", str(load.lua), url + "predict", "--", str(load.listing), "7"]
    if load.wrk_cores is not None:
        command = ["taskset", "-c", ",".join(map(str, sorted(load.wrk_cores))), *command]
    return command


def run_wrk(url: str, load: Load, clients: int, seconds: float):
    """wrk's result line (a dict) and the CPU seconds wrk used."""
    command = wrk_command(url, load, clients, seconds)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    used = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    line = next((s for s in done.stdout.splitlines() if s.startswith(RESULT_MARK)), None)
    if done.returncode != 0 or line is None:
        sys.exit(f"wrk failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
    return json.loads(line[len(RESULT_MARK) :]), used, done.stdout


def run_benchmark(model: str, batch: int, repeats: int, where: set[int]) -> dict:
    command = ["taskset", "-c", ",".join(map(str, sorted(where))), sys.executable, "-c"]
    done = subprocess.run(
        [*command, BENCHMARK, model, str(batch), str(repeats)],
        capture_output=True,
        text=True,
        check=False,
    )
    line = next((s for s in done.stdout.splitlines() if s.startswith("SEGLAB_BENCH ")), None)
    if done.returncode != 0 or line is None:
        sys.exit(f"benchmark failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
    return json.loads(line.split(" ", 1)[1])


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    load = prepare_load(args.images, args.pin, "serve_wrk_")
    server_cores, wrk_cores = load.server_cores, load.wrk_cores
    # every connection comes from 127.0.0.1: one "client" to the per-client limit
    options = ["--queue", str(args.queue), "--batch", str(args.batch)]
    options += ["--per-client", str(4 * args.clients), *args.serve_option]
    server = start_server(args.model, options, load)
    try:
        run_wrk(server.url, load, args.clients, args.warmup)
        rss_start, cpu_start = rss_mb(server.pid), cpu_seconds(server.pid)
        result, wrk_cpu, wrk_text = run_wrk(server.url, load, args.clients, args.duration)
        server_cpu = cpu_seconds(server.pid) - cpu_start
        rss_end = rss_mb(server.pid)
    finally:
        server.stop()
    seconds = result["duration_us"] / 1e6
    ok = result["statuses"].get("200", 0)
    mean_batch = result["batch_sum"] / max(1, result["batch_n"])
    formed = max(1, round(mean_batch))
    bench = run_benchmark(args.model, formed, args.repeats, server_cores)
    bench_1 = bench if formed == 1 else run_benchmark(args.model, 1, args.repeats, server_cores)
    throughput = ok / seconds
    errors = failures(result)
    report = {
        "date": datetime.now().isoformat(timespec="seconds"),
        "model": args.model,
        "method": (
            f"wrk -t1 -c{args.clients} (compiled, requests built once); pin {args.pin}: server "
            f"and benchmark on cores {sorted(server_cores)}, wrk on "
            f"{sorted(wrk_cores) if wrk_cores else 'any core'}"
        ),
        "threads": (
            "server (--threads auto: one per free core) and benchmark (torch's default: one per "
            "core it may use) alike; ONNX Runtime's intra-op pool of torch's thread count, "
            "spinning allowed"
        ),
        "settings": {
            "clients": args.clients,
            "duration_s": args.duration,
            "warmup_s": args.warmup,
            "queue": args.queue,
            "batch": args.batch,
            "serve_options": args.serve_option,
            "images": f"{len(load.files)} from {args.images}",
        },
        "load_before": load.quiet,
        "busy": busy_note({"load": load.quiet, "cores": os.cpu_count()}),
        "requests": result["requests"],
        "ok": ok,
        "errors": errors,
        "throughput_per_s": throughput,
        "latency_ms": {k: v / 1000 for k, v in result["latency_us"].items()},
        "mean_batch": mean_batch,
        "server_cpu_ms_per_image": 1000 * server_cpu / max(1, ok),
        "wrk_cpu_share": wrk_cpu / (seconds * len(os.sched_getaffinity(0))),
        "server_rss_mb": {"start": rss_start, "end": rss_end},
        "benchmark": {"formed_batch": bench, "batch_1": bench_1},
        "ratio": throughput / bench["throughput_per_s"],
        "ratio_to_batch_1": throughput / bench_1["throughput_per_s"],
        "machine": machine_description(),
        "wrk_output": wrk_text,
    }
    print_table(report)
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.json}; server log {load.work / 'serve.log'}")
    failed = []
    if errors or not ok:
        failed.append(f"errors {errors or 'no answers'}")
    if report["ratio"] < args.goal:
        failed.append(f"served {report['ratio']:.0%} of the benchmark, below {args.goal:.0%}")
    for line in failed:
        print(f"FAIL: {line}")
    return 1 if failed else 0


def print_table(report: dict) -> None:
    latency, bench = report["latency_ms"], report["benchmark"]
    formed, one = bench["formed_batch"], bench["batch_1"]
    load, settings = report["load_before"], report["settings"]
    rows = [
        ("model", report["model"]),
        ("method", report["method"]),
        ("clients x seconds", f"{settings['clients']} x {settings['duration_s']:g}"),
        ("requests (200)", f"{report['requests']} ({report['ok']})"),
        ("errors", ", ".join(f"{k}: {v}" for k, v in report["errors"].items()) or "none"),
        ("throughput", f"{report['throughput_per_s']:.2f} images/s"),
        ("latency p50 / p90 / p99 / max", " / ".join(
            f"{latency[q]:.0f}" for q in ("p50", "p90", "p99", "max")) + " ms"),
        ("mean batch", f"{report['mean_batch']:.2f}"),
        ("server CPU per image", f"{report['server_cpu_ms_per_image']:.1f} ms"),
        ("wrk's CPU share", f"{100 * report['wrk_cpu_share']:.1f}% of the cores"),
        ("server RSS start / end", f"{report['server_rss_mb']['start']:.0f} / "
            f"{report['server_rss_mb']['end']:.0f} MB"),
        (f"benchmark, batch {formed['batch']}", f"{formed['median_ms']:.1f} ms median, "
            f"{formed['throughput_per_s']:.2f} images/s"),
        ("benchmark, batch 1", f"{one['median_ms']:.1f} ms median, "
            f"{one['throughput_per_s']:.2f} images/s"),
        ("served / benchmark", f"{100 * report['ratio']:.0f}% (of batch 1: "
            f"{100 * report['ratio_to_batch_1']:.0f}%)"),
        ("load before the run", f"others {100 * (load['others_busy'] or 0):.0f}% of the cores, "
            f"load average {load['load_average']}"),
    ]  # fmt: skip
    if report["busy"]:
        rows.append(("note", report["busy"]))
    width = max(len(k) for k, _ in rows)
    for key, value in rows:
        print(f"{key:<{width}}  {value}")


if __name__ == "__main__":
    sys.exit(main())
