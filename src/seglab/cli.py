"""The ``seglab`` command: parse, call the library, print. No logic of its own."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from seglab.deployment.benchmark import BACKENDS
from seglab.errors import SeglabError

EPILOG = "Run 'seglab COMMAND --help' for a command's options."


def parse_size(text: str) -> tuple[int, int]:
    try:
        height, width = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise SeglabError(f"size {text!r} is not HEIGHTxWIDTH, e.g. 360x480") from None
    if height < 1 or width < 1:
        raise SeglabError(f"size {text!r} must be positive")
    return height, width


def parse_range(text: str) -> tuple[float, float]:
    try:
        low, high = (float(v) for v in text.split(","))
    except ValueError:
        raise SeglabError(f"range {text!r} is not MIN,MAX, e.g. 0.75,1.25") from None
    if not 0 < low <= high:
        raise SeglabError(f"range {text!r} needs 0 < MIN <= MAX")
    return low, high


def parse_scales(text: str) -> tuple[float, ...]:
    try:
        scales = tuple(float(v) for v in text.split(","))
    except ValueError:
        raise SeglabError(f"scales {text!r} are not numbers, e.g. 0.75,1,1.25") from None
    if not scales or min(scales) <= 0:
        raise SeglabError(f"scales {text!r} must be positive")
    return scales


def parse_duration(text: str) -> float:
    """Seconds from '3600', '90s', '60m' or '1.5h'."""
    units = {"s": 1, "m": 60, "h": 3600}
    try:
        if text[-1:].lower() in units:
            return float(text[:-1]) * units[text[-1].lower()]
        return float(text)
    except ValueError:
        raise SeglabError(f"duration {text!r} is not e.g. 3600, 90s, 60m or 1.5h") from None


# (flag, type, help) of every training option; each maps to the TrainConfig field of its name.
TRAIN_OPTIONS = [
    ("--data", str, "'synthetic' (built in, the default), a dataset folder or a dataset YAML file"),
    ("--encoder", str, "encoder name (see 'seglab models'; default mobilenet_v2)"),
    (
        "--weights",
        str,
        "encoder weights: imagenet, none, a state-dict path, or auto (the default: "
        "imagenet when available, otherwise random init with a notice)",
    ),
    ("--epochs", int, "training epochs (default 10)"),
    ("--iterations", int, "optimizer steps instead of epochs"),
    ("--time-budget", parse_duration, "training time, e.g. 60m; the schedule is fitted to it"),
    ("--batch-size", int, "images per step per process (default 8)"),
    ("--accumulate", int, "micro-batches per optimizer step (default 1)"),
    ("--crop-size", parse_size, "training crop HxW (default: each image's own size)"),
    ("--scale", parse_range, "random scale range MIN,MAX (default 0.75,1.25; 1,1 turns it off)"),
    ("--hflip", bool, "random horizontal flips (default on)"),
    ("--color-jitter", float, "brightness/contrast/saturation jitter (default 0.2; 0 is off)"),
    (
        "--class-weights",
        str,
        "loss class weighting: none (default), median_frequency, "
        "sqrt_median_frequency or inverse_frequency",
    ),
    ("--loss", str, "ce (default), ohem, dice, focal, or a weighted sum: ce+dice, ce:1,dice:0.5"),
    ("--focal-gamma", float, "focal loss gamma (default 2)"),
    ("--optimizer", str, "adamw (default) or sgd"),
    ("--lr", float, "learning rate (default 1e-3)"),
    ("--encoder-lr", float, "learning rate of the pretrained encoder (default: --lr)"),
    ("--momentum", float, "SGD momentum (default 0.9)"),
    ("--weight-decay", float, "weight decay (default 1e-4)"),
    ("--schedule", str, "learning-rate decay after warm-up: poly (default), cosine or constant"),
    ("--warmup-iters", int, "linear warm-up steps (default 0)"),
    ("--clip-grad", float, "clip the gradient norm to this value"),
    ("--freeze-encoder-epochs", int, "train only the decoder for this many epochs first"),
    ("--sync-bn", bool, "SyncBatchNorm across GPUs under torchrun (default off)"),
    ("--val-interval", int, "epochs between validations (default 1)"),
    ("--precision", str, "auto (default: the fastest exact choice here), fp32, bf16 or fp16"),
    ("--channels-last", bool, "channels-last memory format (default on)"),
    ("--compile", bool, "torch.compile the model (default off)"),
    ("--device", str, "auto (default), cpu, cuda or cuda:N"),
    ("--workers", int, "data-loading processes (default 2)"),
    ("--seed", int, "random seed (default 0)"),
    ("--out", str, "run folder (default runs/latest)"),
]
DATA_HELP = (
    "'synthetic' (built in), a dataset folder (layouts camvid, pairs = images/ + masks/, voc, "
    "cityscapes) or a dataset YAML file"
)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        return args.run(args)
    except SeglabError as err:
        print(f"seglab: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("seglab: interrupted", file=sys.stderr)
        return 130


def add_option(parser: argparse.ArgumentParser, flag: str, kind, help_text: str) -> None:
    """A training option as a flag whose default None means "not given" (so a file's value or
    the configuration default applies)."""
    name = flag.lstrip("-").replace("-", "_")
    if kind is bool:
        parser.add_argument(
            flag, dest=name, action=argparse.BooleanOptionalAction, default=None, help=help_text
        )
    else:
        parser.add_argument(flag, dest=name, type=kind, default=None, help=help_text)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="seglab",
        description="Train, evaluate and compare U-Net segmentation models.",
        epilog=EPILOG,
    )
    commands = parser.add_subparsers(title="commands", metavar="COMMAND", required=True)

    models = commands.add_parser(
        "models",
        help="list the registered encoders and what their U-Nets cost",
        description="List the registered encoders: U-Net parameters and GFLOPs, ImageNet top-1 of "
        "the weights, and whether the weights are in this machine's torch.hub cache.",
    )
    models.add_argument(
        "--size",
        default="360x480",
        metavar="HxW",
        help="input size for the GFLOPs column (default: 360x480, a CamVid frame)",
    )
    models.add_argument("--classes", type=int, default=12, help="number of classes (default: 12)")
    models.set_defaults(run=run_models)

    train = commands.add_parser(
        "train",
        help="train a U-Net and evaluate it on the validation split",
        description="Train a U-Net, validate mIoU as it goes, and keep checkpoints (best.pt by "
        "validation mIoU, last.pt) in the run folder. Options come from defaults, then --config "
        "FILE.yaml, then the flags given here.",
    )
    train.add_argument(
        "--config", help="YAML experiment file (e.g. configs/camvid_unet_vgg19.yaml)"
    )
    train.add_argument(
        "--resume", metavar="RUN_DIR", help="continue the run in RUN_DIR exactly where it stopped"
    )
    for flag, kind, help_text in TRAIN_OPTIONS:
        add_option(train, flag, kind, help_text)
    train.add_argument(
        "--no-progress",
        dest="progress",
        action="store_const",
        const=False,
        help="no progress bars (for logs)",
    )
    train.set_defaults(run=run_train)

    evaluate = commands.add_parser(
        "evaluate",
        help="evaluate a checkpoint: per-class IoU table and metrics JSON",
        description="Evaluate a checkpoint on a split of a dataset at the original resolution; "
        "prints the per-class table and writes the metrics as JSON.",
    )
    evaluate.add_argument("--checkpoint", required=True, help="a seglab checkpoint (best.pt, ...)")
    evaluate.add_argument("--data", help="dataset (default: the one the checkpoint was trained on)")
    evaluate.add_argument("--split", default="val", help="split to evaluate (default: val)")
    evaluate.add_argument("--out", help="metrics JSON path (default: beside the checkpoint)")
    evaluate.add_argument("--flip", action="store_true", help="test-time augmentation: mirror")
    evaluate.add_argument(
        "--scales",
        type=parse_scales,
        default=(1.0,),
        metavar="S1,S2,...",
        help="test-time augmentation: scales to average (e.g. 0.75,1,1.25)",
    )
    evaluate.add_argument(
        "--window",
        type=parse_size,
        metavar="HxW",
        help="sliding-window inference with tiles of this size (large images)",
    )
    evaluate.add_argument("--batch-size", type=int, default=4, help="images per batch (default 4)")
    evaluate.add_argument("--device", default="auto", help="auto (default), cpu, cuda or cuda:N")
    evaluate.add_argument(
        "--workers", type=int, default=2, help="data-loading processes (default 2)"
    )
    evaluate.set_defaults(run=run_evaluate)

    predict = commands.add_parser(
        "predict",
        help="segment images with a checkpoint or an exported .onnx model",
        description="For each input image: NAME.png, the class indices at the input's size with "
        "the class colours as its palette, and NAME_overlay.png, the image with the prediction "
        "overlaid. Inputs are files, folders and glob patterns (videos too, with OpenCV). An "
        "unreadable input is named and skipped; the exit status is then 1.",
    )
    predict.add_argument("inputs", nargs="+", metavar="INPUT", help="image files, folders, globs")
    predict.add_argument("--checkpoint", required=True, help="a checkpoint (.pt) or model (.onnx)")
    predict.add_argument("--out", required=True, help="output folder")
    predict.add_argument("--batch-size", type=int, default=4, help="images per batch (default 4)")
    predict.add_argument(
        "--probabilities",
        action="store_true",
        help="also write NAME_probabilities.npy (classes x H x W, float16)",
    )
    predict.add_argument(
        "--window",
        type=parse_size,
        metavar="HxW",
        help="sliding-window inference with tiles of this size (very large images)",
    )
    predict.add_argument("--flip", action="store_true", help="average with the mirror image")
    predict.add_argument("--device", default="cpu", help="cpu (default), cuda or cuda:N")
    predict.set_defaults(run=run_predict)

    export = commands.add_parser(
        "export",
        help="export a checkpoint to ONNX",
        description="Export to ONNX with dynamic batch, height and width, then check the file "
        "with ONNX Runtime against PyTorch on a sample and print the largest difference.",
    )
    export.add_argument("--checkpoint", required=True, help="a seglab checkpoint (best.pt, ...)")
    export.add_argument("--format", default="onnx", choices=["onnx"], help="onnx (the only format)")
    export.add_argument("--out", required=True, help="the .onnx file to write")
    export.set_defaults(run=run_export)

    bench = commands.add_parser(
        "benchmark",
        help="latency, throughput and memory of each backend on this machine",
        description="Latency (median and p90), throughput and peak resident memory of a U-Net "
        "for each backend available here: eager fp32, channels_last, bf16 autocast, "
        "torch.compile, ONNX Runtime, and INT8 quantisation (ONNX Runtime, static). With --data, "
        "the mIoU each backend gives on the validation split, so the cost of quantisation shows.",
    )
    source = bench.add_mutually_exclusive_group(required=True)
    source.add_argument("--encoder", help="an untrained U-Net on this encoder")
    source.add_argument("--checkpoint", help="a trained checkpoint")
    bench.add_argument(
        "--size",
        type=parse_size,
        default=(360, 480),
        metavar="HxW",
        help="input size (default 360x480, a CamVid frame)",
    )
    bench.add_argument("--batch", type=int, default=1, help="images per forward pass (default 1)")
    bench.add_argument("--classes", type=int, default=12, help="with --encoder (default 12)")
    bench.add_argument(
        "--backends",
        default=",".join(BACKENDS),
        help=f"comma-separated subset of {','.join(BACKENDS)}",
    )
    bench.add_argument(
        "--repeats", type=int, default=20, help="timed runs per backend (default 20)"
    )
    bench.add_argument("--data", help="dataset for the per-backend mIoU (with --checkpoint)")
    bench.add_argument("--limit", type=int, help="evaluate on the first N validation images only")
    bench.add_argument("--json", dest="json_out", help="also write the results as JSON here")
    bench.set_defaults(run=run_benchmark)

    compare = commands.add_parser(
        "compare",
        help="train several encoders the same way and report which is worth it",
        description="Train one U-Net per encoder with the same data, split, seed, schedule and "
        "augmentations (or take finished runs with --runs), evaluate them on the same images, "
        "measure their cost here, and write DIR/report.html, DIR/report.md and DIR/results.json. "
        "Without --data: the synthetic dataset with a short schedule (the demo).",
    )
    compare.add_argument(
        "--encoders",
        default="vgg19,mobilenet_v2",
        help="comma-separated encoders to train (default: vgg19,mobilenet_v2)",
    )
    compare.add_argument(
        "--runs", nargs="+", metavar="RUN_DIR", help="compare finished runs instead of training"
    )
    compare.add_argument("--split", default="val", help="split to compare on (default: val)")
    compare.add_argument("--examples", type=int, default=6, help="rows of the example grid")
    compare.add_argument("--config", help="YAML experiment file shared by every model")
    for flag, kind, help_text in TRAIN_OPTIONS:
        if flag == "--encoder":
            continue
        add_option(compare, flag, kind, help_text)
    compare.add_argument(
        "--no-progress",
        dest="progress",
        action="store_const",
        const=False,
        help="no progress bars (for logs)",
    )
    compare.set_defaults(run=run_compare)

    data = commands.add_parser(
        "data",
        help="check a dataset or look at it",
        description="Check a dataset, or draw some of it for a person to see.",
    )
    data_commands = data.add_subparsers(title="commands", metavar="COMMAND", required=True)
    check = data_commands.add_parser(
        "check",
        help="find every problem in a dataset and summarise it",
        description="Per split: the number of pairs, image sizes and class pixel frequencies; then "
        "every problem found, one line each naming the file; exit status 1 if there are any.",
    )
    check.add_argument("data", help=DATA_HELP)
    check.set_defaults(run=run_data_check)
    show = data_commands.add_parser(
        "show",
        help="draw images with their masks as colour overlays",
        description="Write PNGs of a few images beside their masks drawn as colour overlays, with "
        "a legend of the class names.",
    )
    show.add_argument("data", help=DATA_HELP)
    show.add_argument("--out", required=True, help="folder for the PNGs")
    show.add_argument("--split", default="train", help="split to draw from (default: train)")
    show.add_argument("--count", type=int, default=8, help="how many images (default: 8)")
    show.set_defaults(run=run_data_show)
    return parser


def run_models(args: argparse.Namespace) -> int:
    from seglab.models import ENCODERS, build_model
    from seglab.models.complexity import count_parameters, forward_gflops
    from seglab.models.weights import hub_checkpoint_dir, is_cached

    height, width = parse_size(args.size)
    header = (
        "encoder",
        "params (M)",
        f"GFLOPs @{height}x{width}",
        "ImageNet top-1",
        "weights file",
        "cached",
    )
    rows = []
    for name, spec in ENCODERS.items():
        model = build_model(name, args.classes, encoder_weights=None)
        rows.append(
            (
                name,
                f"{count_parameters(model) / 1e6:.1f}",
                f"{forward_gflops(model, height, width):.1f}",
                f"{spec.imagenet_top1:.1f}",
                spec.weights_file,
                "yes" if is_cached(spec) else "no",
            )
        )
    print(format_table(header, rows))
    print(f"\nU-Net with {args.classes} classes; weights cache: {hub_checkpoint_dir()}")
    return 0


def run_train(args: argparse.Namespace) -> int:
    from seglab.config import load_config
    from seglab.engine.train import resume_config, train
    from seglab.models.encoders import get_encoder_spec

    names = [flag.lstrip("-").replace("-", "_") for flag, _, _ in TRAIN_OPTIONS] + ["progress"]
    overrides = {name: getattr(args, name) for name in names}
    if args.resume:
        config = resume_config(args.resume, overrides)
    else:
        config = load_config(args.config, overrides)
    get_encoder_spec(config.encoder)  # fail on a misspelt name before any work starts
    train(config, resume=args.resume)
    return 0


def run_evaluate(args: argparse.Namespace) -> int:
    import json
    from pathlib import Path

    from seglab.engine.evaluate import evaluate_checkpoint, format_metrics

    metrics = evaluate_checkpoint(
        args.checkpoint,
        data=args.data,
        split=args.split,
        flip=args.flip,
        scales=args.scales,
        window=args.window,
        batch_size=args.batch_size,
        device=args.device,
        workers=args.workers,
    )
    out = (
        Path(args.out)
        if args.out
        else Path(args.checkpoint).with_name(
            f"{Path(args.checkpoint).stem}_{args.split}_metrics.json"
        )
    )
    out.write_text(json.dumps(metrics, indent=2))
    print(format_metrics(metrics))
    print(f"metrics written to {out}")
    return 0


DEMO_SCHEDULE = {"time_budget": 120.0, "epochs": 20}  # per model, on the synthetic data


def run_compare(args: argparse.Namespace) -> int:
    from seglab.config import load_config
    from seglab.reporting.compare import compare

    names = [flag.lstrip("-").replace("-", "_") for flag, _, _ in TRAIN_OPTIONS]
    overrides = {n: getattr(args, n) for n in names if n != "encoder"}
    overrides["progress"] = args.progress
    schedule_given = args.config or any(
        overrides.get(k) is not None for k in ("epochs", "iterations", "time_budget")
    )
    if (overrides.get("data") in (None, "synthetic")) and not schedule_given and not args.runs:
        overrides.update(DEMO_SCHEDULE)
    out = overrides.pop("out") or "runs/compare"
    config = load_config(args.config, overrides)
    encoders = [e.strip() for e in args.encoders.split(",") if e.strip()]
    if not args.runs:
        from seglab.models.encoders import get_encoder_spec

        for encoder in encoders:
            get_encoder_spec(encoder)
    results = compare(
        config, None if args.runs else encoders, args.runs, out, args.split, args.examples
    )
    from seglab.reporting.report import SUMMARY_COLUMNS

    rows = [tuple(f(m) for _, f in SUMMARY_COLUMNS) for m in results["models"]]
    print(format_table(tuple(c for c, _ in SUMMARY_COLUMNS), rows))
    for m in results["models"][1:]:
        b = m["versus_first"]
        print(
            f"{m['name']} - {results['models'][0]['name']}: {100 * b['difference']:+.2f} mIoU "
            f"points, 95% interval [{100 * b['ci_low']:+.2f}, {100 * b['ci_high']:+.2f}]"
        )
    print(f"report: {Path(out) / 'report.html'} (also report.md, results.json)")
    return 0


def run_predict(args: argparse.Namespace) -> int:
    from seglab.deployment.predict import expand_inputs, predict_files
    from seglab.deployment.runtime import load_runtime

    runtime = load_runtime(args.checkpoint, args.device)
    problems = []

    def report(line: str) -> None:
        problems.append(line)
        print(f"seglab: error: {line}", file=sys.stderr)

    paths = expand_inputs(args.inputs, report)
    written, failed = predict_files(
        runtime,
        paths,
        args.out,
        batch_size=args.batch_size,
        probabilities=args.probabilities,
        window=args.window,
        flip=args.flip,
        device=args.device,
        report=report,
    )
    print(
        f"wrote {written} predictions to {args.out}/"
        + (f"; {len(problems)} input(s) failed" if problems else "")
    )
    return 1 if problems or failed else 0


def run_export(args: argparse.Namespace) -> int:
    from seglab.deployment.export import export_onnx

    difference = export_onnx(args.checkpoint, args.out)
    print(
        f"wrote {args.out}; ONNX Runtime vs PyTorch on a 2x256x320 sample: largest logit "
        f"difference {difference:.2e}"
    )
    return 0 if difference < 1e-3 else 1


def run_benchmark(args: argparse.Namespace) -> int:
    import json
    from dataclasses import asdict

    import torch

    from seglab.deployment.benchmark import benchmark, validation_evaluator
    from seglab.models import build_model
    from seglab.models.complexity import forward_gflops

    backends = tuple(b.strip() for b in args.backends.split(",") if b.strip())
    evaluate_fn, calibration = None, None
    if args.checkpoint:
        from seglab.engine.checkpoint import load_model

        model, payload = load_model(args.checkpoint)
        in_channels, label = model.spec.in_channels, f"{args.checkpoint} ({model.spec.encoder})"
        if args.data:
            evaluate_fn, calibration = validation_evaluator(
                args.data, payload["dataset"]["classes"], args.checkpoint, args.limit
            )
    else:
        if args.data:
            raise SeglabError(
                "--data needs --checkpoint: an untrained model has no mIoU to compare"
            )
        model = build_model(args.encoder, args.classes, encoder_weights=None).eval()
        in_channels, label = 3, f"untrained U-Net on {args.encoder}"
    height, width = args.size
    gflops = forward_gflops(model, height, width, in_channels)
    print(
        f"benchmark: {label}, batch {args.batch} at {height}x{width}, "
        f"{gflops:.1f} GFLOPs per image, {torch.get_num_threads()} threads"
    )
    results = benchmark(
        model, in_channels, args.size, args.batch, backends, args.repeats, evaluate_fn, calibration
    )
    header = ("backend", "median ms", "p90 ms", "images/s", "GFLOP/s", "peak RSS MB", "mIoU", "how")
    rows = [
        (
            r.backend,
            f"{r.median_ms:.1f}",
            f"{r.p90_ms:.1f}",
            f"{r.images_per_s:.2f}",
            f"{gflops * r.images_per_s:.0f}",
            f"{r.peak_rss_mb:.0f}",
            "-" if r.miou is None else f"{100 * r.miou:.2f}",
            r.note,
        )
        for r in results
    ]
    print(format_table(header, rows))
    if args.json_out:
        Path(args.json_out).write_text(
            json.dumps(
                {
                    "model": label,
                    "size": [height, width],
                    "batch": args.batch,
                    "gflops": gflops,
                    "results": [asdict(r) for r in results],
                },
                indent=2,
            )
        )
    return 0


def run_data_check(args: argparse.Namespace) -> int:
    from seglab.data.check import format_report
    from seglab.data.dataset import open_data

    data = open_data(args.data)
    if data.report is None:
        print(
            f"{args.data}: generated by seglab, {data.info.num_classes} classes; nothing to check"
        )
        return 0
    print(format_report(data.report))
    return 1 if data.problems else 0


def run_data_show(args: argparse.Namespace) -> int:
    from pathlib import Path

    from seglab.data.dataset import open_data
    from seglab.data.show import save_overlays

    data = open_data(args.data)
    written = save_overlays(data.split(args.split), data.info, Path(args.out), args.count)
    print(f"wrote {len(written)} overlays to {args.out}/")
    return 0


def format_table(header: tuple[str, ...], rows: list[tuple[str, ...]]) -> str:
    """Plain-text columns: the first left-aligned, the rest (numbers) right-aligned."""
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]

    def line(row: tuple[str, ...]) -> str:
        cells = [row[0].ljust(widths[0])] + [c.rjust(w) for c, w in zip(row[1:], widths[1:])]
        return "  ".join(cells)

    return "\n".join([line(header), "  ".join("-" * w for w in widths), *map(line, rows)])


if __name__ == "__main__":
    sys.exit(main())
