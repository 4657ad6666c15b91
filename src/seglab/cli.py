"""The ``seglab`` command: parse, call the library, print. No logic of its own."""

from __future__ import annotations

import argparse
import sys

from seglab.data.stats import WEIGHTINGS
from seglab.errors import SeglabError

EPILOG = "Run 'seglab COMMAND --help' for a command's options."
DATA_HELP = (
    "'synthetic' (built in), a dataset folder (layouts camvid, pairs = images/ + masks/, voc, "
    "cityscapes) or a dataset YAML file"
)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
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
        description="Train a U-Net, evaluate mIoU on the validation split after every epoch, and "
        "save checkpoints (best.pt by validation mIoU, last.pt) in the output folder.",
    )
    train.add_argument(
        "--data", default="synthetic", help="dataset: 'synthetic' (built in, the default)"
    )
    train.add_argument(
        "--encoder", default="mobilenet_v2", help="encoder name (see 'seglab models')"
    )
    train.add_argument(
        "--weights",
        default="auto",
        help="encoder weights: 'imagenet' (torchvision's official weights, downloaded once into "
        "the torch.hub cache), 'none' (random init), a path to a state dict, or 'auto' (the "
        "default: imagenet when available, otherwise random init with a notice)",
    )
    train.add_argument("--epochs", type=int, default=10)
    train.add_argument(
        "--crop-size", metavar="HxW", help="training crop (default: the image's size)"
    )
    train.add_argument(
        "--scale",
        default="0.75,1.25",
        metavar="MIN,MAX",
        help="random scale range (default: 0.75,1.25; 1,1 turns it off)",
    )
    train.add_argument("--no-hflip", dest="hflip", action="store_false", help="no horizontal flips")
    train.add_argument(
        "--color-jitter",
        type=float,
        default=0.2,
        help="brightness/contrast/saturation jitter (default: 0.2; 0 turns it off)",
    )
    train.add_argument(
        "--class-weights",
        default="none",
        choices=WEIGHTINGS,
        help="class weighting of the loss (default: none)",
    )
    train.add_argument("--batch-size", type=int, default=8)
    train.add_argument("--lr", type=float, default=1e-3, help="AdamW learning rate (poly decay)")
    train.add_argument("--weight-decay", type=float, default=1e-4)
    train.add_argument("--workers", type=int, default=2, help="data-loading processes")
    train.add_argument("--seed", type=int, default=0)
    train.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    train.add_argument("--out", default="runs/latest", help="run folder (default: runs/latest)")
    train.add_argument(
        "--no-progress", dest="progress", action="store_false", help="no progress bars (for logs)"
    )
    train.set_defaults(run=run_train)

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
    from seglab.config import TrainConfig
    from seglab.engine.train import train
    from seglab.models.encoders import get_encoder_spec

    get_encoder_spec(args.encoder)  # fail on a misspelt name before any work starts
    config = TrainConfig(
        data=args.data,
        encoder=args.encoder,
        weights=args.weights,
        epochs=args.epochs,
        batch_size=args.batch_size,
        lr=args.lr,
        weight_decay=args.weight_decay,
        crop_size=parse_size(args.crop_size) if args.crop_size else None,
        scale=parse_range(args.scale),
        hflip=args.hflip,
        color_jitter=args.color_jitter,
        class_weights=args.class_weights,
        workers=args.workers,
        seed=args.seed,
        device=args.device,
        out=args.out,
        progress=args.progress,
    )
    train(config)
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


def parse_range(text: str) -> tuple[float, float]:
    try:
        low, high = (float(v) for v in text.split(","))
    except ValueError:
        raise SeglabError(f"range {text!r} is not MIN,MAX, e.g. 0.75,1.25") from None
    if not 0 < low <= high:
        raise SeglabError(f"range {text!r} needs 0 < MIN <= MAX")
    return low, high


def parse_size(text: str) -> tuple[int, int]:
    try:
        height, width = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise SeglabError(f"size {text!r} is not HEIGHTxWIDTH, e.g. 360x480") from None
    if height < 1 or width < 1:
        raise SeglabError(f"size {text!r} must be positive")
    return height, width


def format_table(header: tuple[str, ...], rows: list[tuple[str, ...]]) -> str:
    """Plain-text columns: the first left-aligned, the rest (numbers) right-aligned."""
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]

    def line(row: tuple[str, ...]) -> str:
        cells = [row[0].ljust(widths[0])] + [c.rjust(w) for c, w in zip(row[1:], widths[1:])]
        return "  ".join(cells)

    return "\n".join([line(header), "  ".join("-" * w for w in widths), *map(line, rows)])


if __name__ == "__main__":
    sys.exit(main())
