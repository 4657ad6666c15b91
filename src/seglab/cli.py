"""The ``seglab`` command: parse, call the library, print. No logic of its own."""

from __future__ import annotations

import argparse
import sys

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
    ("--loss", str, "ce (default), dice, focal, or a weighted sum: ce+dice, ce:1,dice:0.5"),
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
        name = flag.lstrip("-").replace("-", "_")
        if kind is bool:
            train.add_argument(
                flag, dest=name, action=argparse.BooleanOptionalAction, default=None, help=help_text
            )
        else:
            train.add_argument(flag, dest=name, type=kind, default=None, help=help_text)
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
    evaluate.add_argument("--batch-size", type=int, default=4)
    evaluate.add_argument("--device", default="auto")
    evaluate.add_argument("--workers", type=int, default=2)
    evaluate.set_defaults(run=run_evaluate)

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
