"""The ``seglab`` command: parse, call the library, print. Training flags are built from the
configuration's own declarations (seglab.config); each command imports what it needs when it
runs, so ``seglab --help`` answers without loading torch."""

from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path

from seglab.config import describe_options, parse_scales, parse_size
from seglab.deployment.backends import BACKENDS  # constants only: no torch
from seglab.deployment.formats import FORMATS  # constants only: no torch
from seglab.errors import SeglabError, SeglabWarning, one_line

EPILOG = "Run 'seglab COMMAND --help' for a command's options."
IMPORT_FORMATS = ("labelme", "coco", "cvat", "yolo")  # seglab.data.importing.FORMATS, unloaded
DATA_HELP = (
    "'synthetic' (built in), a dataset folder (layouts camvid, pairs = images/ + masks/, voc, "
    "cityscapes) or a dataset YAML file"
)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        with warnings.catch_warnings():
            warnings.showwarning = show_warning
            return args.run(args)
    except SeglabError as err:
        # re-raised by a DataLoader worker, its message is the worker's traceback: its last line
        said = one_line(err) if str(err).startswith("Caught ") else err
        print(f"seglab: error: {said}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("seglab: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # output piped into a reader that stopped early (| head)
        sys.stderr.close()
        return 0


def show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """seglab's own warnings as one line; any other as Python shows it."""
    if issubclass(category, SeglabWarning):
        print(f"seglab: warning: {message}", file=sys.stderr)
    else:
        sys.stderr.write(warnings.formatwarning(message, category, filename, lineno, line))


def add_training_options(parser: argparse.ArgumentParser, skip: tuple[str, ...] = ()) -> None:
    """A flag per configuration option, its help written once in seglab.config. Every default is
    None, meaning "not given": the file's value or the configuration's default then applies."""
    for name, help_text, metavar in describe_options():
        if name in skip:
            continue
        flag = f"--{name.replace('_', '-')}"
        if name == "progress":
            parser.add_argument(
                "--no-progress", dest=name, action="store_const", const=False, help=help_text
            )
        elif metavar is None:  # an on/off switch
            parser.add_argument(
                flag, dest=name, action=argparse.BooleanOptionalAction, default=None, help=help_text
            )
        else:
            parser.add_argument(flag, dest=name, default=None, metavar=metavar, help=help_text)


def training_overrides(args: argparse.Namespace, skip: tuple[str, ...] = ()) -> dict:
    return {name: getattr(args, name) for name, _, _ in describe_options() if name not in skip}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="seglab",
        description="Train, evaluate and compare U-Net segmentation models.",
        epilog=EPILOG,
    )
    commands = parser.add_subparsers(title="commands", metavar="COMMAND", required=True)
    _add_models(commands)
    _add_train(commands)
    _add_evaluate(commands)
    _add_predict(commands)
    _add_export(commands)
    _add_benchmark(commands)
    _add_verify(commands)
    _add_compare(commands)
    _add_data(commands)
    _add_serve(commands)
    return parser


def _add_models(commands) -> None:
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


def _add_train(commands) -> None:
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
        "--resume",
        metavar="RUN_DIR",
        help="continue the run in RUN_DIR exactly where it stopped, on the data it recorded; "
        "with --epochs, --iterations or --time-budget, the run's new total length (more than "
        "it has done, else refused), not an amount to add",
    )
    add_training_options(train)
    train.set_defaults(run=run_train)


def _add_evaluate(commands) -> None:
    evaluate = commands.add_parser(
        "evaluate",
        help="evaluate a checkpoint or exported model: per-class IoU table and metrics JSON",
        description="Evaluate a checkpoint, or a model exported by seglab export (.onnx, .pte), "
        "on a split of a dataset at the original resolution; prints the per-class table and "
        "writes the metrics as JSON.",
    )
    evaluate.add_argument(
        "--checkpoint", required=True, help="a checkpoint (best.pt, ...) or exported .onnx/.pte"
    )
    evaluate.add_argument("--data", help="dataset (default: the one the model was trained on)")
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
    evaluate.add_argument(
        "--batch-size",
        type=int,
        default=None,
        help="images per batch (default: the run's batch size, as its validation ran)",
    )
    evaluate.add_argument("--device", default="auto", help="auto (default), cpu, cuda or cuda:N")
    evaluate.add_argument(
        "--workers",
        default="auto",
        metavar="auto|N",
        help="data-loading processes (default auto: chosen with --threads from the free cores)",
    )
    evaluate.add_argument(
        "--threads",
        default="auto",
        metavar="auto|N",
        help="torch's intra-op threads (default auto: one per free core not loading data)",
    )
    evaluate.set_defaults(run=run_evaluate)


def _add_predict(commands) -> None:
    predict = commands.add_parser(
        "predict",
        help="segment images with a checkpoint or an exported model (.onnx, .pte)",
        description="For each input image: NAME.png, the class indices at the input's size with "
        "the class colours as its palette, and NAME_overlay.png, the image with the prediction "
        "overlaid. Inputs are files, folders and glob patterns (videos too, with OpenCV: each "
        "frame as an image, and NAME_overlay.mp4, the overlaid video, with the frames per "
        "second it took). An unreadable input is named and skipped; the exit status is then 1.",
    )
    predict.add_argument("inputs", nargs="+", metavar="INPUT", help="image files, folders, globs")
    predict.add_argument(
        "--checkpoint", required=True, help="a checkpoint (.pt) or exported model (.onnx, .pte)"
    )
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


def _add_export(commands) -> None:
    formats = "; ".join(f"{f.name}: {f.description}" for f in FORMATS.values())
    export = commands.add_parser(
        "export",
        help="export a checkpoint to ONNX, ONNX INT8 or ExecuTorch, with its deployment card",
        description="Write the model in a deployable form, then measure it against the PyTorch "
        "model on real images of its dataset (largest logit difference, pixels whose class "
        "changes, mIoU of both) and time it at batch 1 on this machine. The file carries its "
        "deployment card (classes, colours, normalisation, input size, the checkpoint's sha256, "
        "the measurements, the machine, the tolerances seglab verify holds it to); the card is "
        f"also written beside it as FILE.card.json and FILE.card.md. Formats: {formats}. The "
        "exit status is 1 when the model is outside its tolerances.",
    )
    export.add_argument("--checkpoint", required=True, help="a seglab checkpoint (best.pt, ...)")
    export.add_argument(
        "--format",
        default="onnx",
        choices=list(FORMATS),
        help="onnx (default), onnx-int8, executorch, executorch-int8",
    )
    export.add_argument("--out", required=True, help="the file to write (.onnx or .pte)")
    export.add_argument("--data", help="dataset to measure on (default: the one it was trained on)")
    export.add_argument(
        "--limit", type=int, help="measure on the first N validation images only (faster)"
    )
    export.add_argument(
        "--calibration",
        type=int,
        default=32,
        metavar="N",
        help="onnx-int8 and executorch-int8: training images that calibrate it (default 32)",
    )
    export.add_argument(
        "--size",
        type=parse_size,
        metavar="HxW",
        help="input size (default: its dataset's validation image size); executorch's fixed size",
    )
    export.add_argument(
        "--repeats", type=int, default=10, help="timed runs for the latency (default 10)"
    )
    export.add_argument("--overwrite", action="store_true", help="replace FILE and its cards")
    export.add_argument("--no-progress", dest="progress", action="store_false", help="no bars")
    export.set_defaults(run=run_export)


def _add_benchmark(commands) -> None:
    bench = commands.add_parser(
        "benchmark",
        help="latency, throughput and memory of each backend on this machine",
        description="Latency (median and p90), throughput and peak resident memory of a U-Net "
        "for each backend available here: eager fp32, channels_last, bf16 autocast, "
        "torch.compile, ONNX Runtime, INT8 quantisation (ONNX Runtime, static) and ExecuTorch "
        "(XNNPACK). An exported model (.onnx, .pte) is timed as it is, beside eager PyTorch fp32 "
        "of its checkpoint when that is here. With the model's dataset (its own by default, or "
        "--data), the mIoU each gives on the validation split, so the cost of quantisation "
        "shows.",
    )
    source = bench.add_mutually_exclusive_group(required=True)
    source.add_argument("--encoder", help="an untrained U-Net on this encoder")
    source.add_argument("--checkpoint", help="a trained checkpoint or exported .onnx/.pte")
    source.add_argument("model", nargs="?", metavar="MODEL", help="the same as --checkpoint MODEL")
    bench.add_argument(
        "--size",
        type=parse_size,
        metavar="HxW",
        help="input size (default: the model's own, its dataset's validation image size; "
        "360x480 with --encoder)",
    )
    bench.add_argument("--batch", type=int, default=1, help="images per forward pass (default 1)")
    bench.add_argument("--classes", type=int, default=12, help="with --encoder (default 12)")
    bench.add_argument(
        "--backends",
        help=f"comma-separated subset of {','.join(BACKENDS)} (default: all available here; "
        "for an exported model: eager)",
    )
    bench.add_argument(
        "--repeats", type=int, default=20, help="timed runs per backend (default 20)"
    )
    bench.add_argument(
        "--data", help="dataset for the per-backend mIoU (default: the model's own, if here)"
    )
    bench.add_argument("--limit", type=int, help="evaluate on the first N validation images only")
    bench.add_argument(
        "--calibration",
        type=int,
        default=32,
        metavar="N",
        help="training images that calibrate INT8 (default 32)",
    )
    bench.add_argument("--json", dest="json_out", help="also write the results as JSON here")
    bench.set_defaults(run=run_benchmark)


def _add_verify(commands) -> None:
    verify = commands.add_parser(
        "verify",
        help="re-measure an exported model here and hold it to its deployment card",
        description="Run on the target device: re-measures the exported model's mIoU, its parity "
        "with the PyTorch model (when the source checkpoint is at the path its card records and "
        "unchanged; otherwise the card's figures stand) and its latency, and prints them beside "
        "the card's. Exit status 1 when the model's content is not the one its card describes "
        "(changed after export), or mIoU or parity drift beyond the card's tolerances; latency "
        "is reported, never failed.",
    )
    verify.add_argument("artifact", metavar="ARTIFACT", help="an exported .onnx or .pte file")
    verify.add_argument("--data", help="dataset (default: the one its card was measured on)")
    verify.add_argument(
        "--limit", type=int, help="the first N validation images (default: as many as the card)"
    )
    verify.add_argument("--repeats", type=int, help="timed runs (default: as many as the card)")
    verify.add_argument("--no-progress", dest="progress", action="store_false", help="no bars")
    verify.set_defaults(run=run_verify)


def _add_compare(commands) -> None:
    compare = commands.add_parser(
        "compare",
        help="train several encoders the same way and report which is worth it",
        description="Train one U-Net per encoder (--seeds N times each, or once per fold with "
        "--folds K) with the same data, split, seed, schedule and "
        "augmentations (or take finished runs with --runs), evaluate them on the same images, "
        "measure each in every deployable form here (PyTorch fp32 and every seglab export "
        "format: ONNX Runtime fp32 and INT8, ExecuTorch), "
        "choose the model x form to ship (the verdict: the fastest of those as accurate as the "
        "most accurate one, within --margin mIoU points or not told apart, within --budget and "
        "--memory), and write DIR/report.html, "
        "DIR/report.md and DIR/results.json. "
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
    compare.add_argument(
        "--seeds",
        type=int,
        default=1,
        metavar="N",
        help="train each model N times, seeds SEED..SEED+N-1: the report shows each model's mean "
        "and spread, and the difference's interval covers seed noise (default 1: estimated "
        "from the validation curves)",
    )
    compare.add_argument(
        "--folds",
        type=int,
        default=0,
        metavar="K",
        help="cross-validate: each model trained K times, each on K-1 group-aware folds of "
        "train+val and scored on the fold it did not see (every image once; a test split is "
        "left alone); 0: the dataset's own split (default)",
    )
    compare.add_argument(
        "--forms",
        metavar="F1,F2",
        help="the deployable forms each model is measured in: pytorch and any of "
        f"{', '.join(FORMATS)} (default: all; pytorch is always measured; the ExecuTorch "
        "forms take minutes to lower on a small CPU)",
    )
    compare.add_argument(
        "--margin",
        type=float,
        default=1.0,
        metavar="POINTS",
        help="mIoU points within which models count as equally accurate: the verdict then takes "
        "the cheapest (default 1)",
    )
    from seglab.reporting.budget import parse_latency, parse_memory  # no torch

    compare.add_argument(
        "--budget",
        type=parse_latency,
        metavar="LATENCY",
        help="latency budget for the verdict: batch-1 median on this machine (e.g. 50ms, 0.2s)",
    )
    compare.add_argument(
        "--memory",
        type=parse_memory,
        metavar="SIZE",
        help="memory budget for the verdict: what loading and running the model adds to a "
        "process (e.g. 300MB, 1.5GB)",
    )
    compare.add_argument(
        "--export",
        metavar="DIR",
        help="write the verdict's model x form into this new folder, with its card beside it "
        "(FILE.card.json, FILE.card.md)",
    )
    add_training_options(compare, skip=("encoder",))
    compare.set_defaults(run=run_compare)


def _add_data(commands) -> None:
    data = commands.add_parser(
        "data",
        help="check a dataset, look at it, import a labelling tool's export, or review labels",
        description="Check a dataset, draw some of it for a person to see, import one from a "
        "labelling tool, or review its labels with a trained model.",
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
    imports = data_commands.add_parser(
        "import",
        help="turn a labelling tool's export into a dataset (pairs layout) and check it",
        description="Draw the polygons, boxes and RLE masks of a LabelMe, COCO, CVAT (for images "
        "1.1) or YOLO (segment) export into class-index masks: writes DIR/images, DIR/masks, "
        "DIR/dataset.yaml and DIR/import.json (what could not be mapped), then runs the data "
        "check. Exit status 1 if the check finds problems.",
    )
    imports.add_argument("format", choices=IMPORT_FORMATS, help="the export's format")
    imports.add_argument(
        "src",
        help="labelme: the folder of JSON files; coco: an instances JSON or a folder of them "
        "(one per split); cvat: annotations.xml or its folder; yolo: the folder with data.yaml",
    )
    imports.add_argument(
        "--out", required=True, help="the dataset folder to write (must not exist)"
    )
    imports.add_argument(
        "--labels",
        metavar="MAP.yaml",
        help="label map, {source label: class name}: renames and merges; 'ignore' draws as the "
        "ignore value 255; labels it does not name are unknown (drawn as 255, reported)",
    )
    imports.add_argument(
        "--overlap",
        choices=("later", "smaller"),
        default="later",
        help="where shapes of two classes overlap: the later annotation on top (default), or "
        "the smaller area on top",
    )
    imports.add_argument(
        "--keep-empty",
        action="store_true",
        help="keep images without annotations as all background (default: leave them out)",
    )
    imports.add_argument(
        "--link", action="store_true", help="link the images (symbolic links) instead of copying"
    )
    imports.set_defaults(run=run_data_import)
    review = data_commands.add_parser(
        "review",
        help="rank the masks most likely wrong, and the unlabelled images to label next",
        description="Run a model on every labelled image and rank the images by how likely their "
        "mask holds an error (where the model confidently contradicts it, per connected region "
        "and per class); with --unlabelled, rank those images by what a label would teach "
        "(uncertainty, spread over the data by encoder features). Writes DIR/review.json and "
        "DIR/review.html (pictures in DIR/pictures), which opens in a browser from the disk.",
    )
    review.add_argument(
        "--checkpoint",
        required=True,
        nargs="+",
        help="a checkpoint (best.pt, ...) or a run folder; or several, such as the fold runs of "
        "`compare --folds`: each image is then scored by one not trained on it (out of fold)",
    )
    review.add_argument("--data", required=True, help=f"the labelled data: {DATA_HELP}")
    review.add_argument("--unlabelled", metavar="DIR", help="a folder of images to rank")
    review.add_argument("--out", required=True, help="the folder to write (must not exist)")
    review.add_argument(
        "--split", help="split(s) to review, comma-separated (default: every labelled split)"
    )
    review.add_argument(
        "--top", type=int, default=20, metavar="N", help="images drawn on the page (default 20)"
    )
    review.add_argument("--device", default="auto", help="auto (default), cpu, cuda or cuda:N")
    review.add_argument("--no-progress", dest="progress", action="store_false", help="no bars")
    review.set_defaults(run=run_data_review)


def _add_serve(commands) -> None:
    serve = commands.add_parser(
        "serve",
        help="an HTTP API and a web page for trained models",
        description="Serve models over HTTP: POST /predict (an image upload; the mask as a "
        "palette PNG, or JSON with ?format=json), GET /models, GET /health, and at / a page to "
        "drop an image on and see each model's overlay. Requests wait in a bounded queue (503 "
        "when it is full) and same-size requests are batched. Memory is bounded by pixels, not "
        "by requests: one batch runs at a time and holds at most --batch-megapixels (a larger "
        "image, up to --max-megapixels, runs alone); decoded images waiting hold at most four "
        "times the larger of the two. Each client (IP address) may have --per-client requests "
        "in progress (429 beyond) and must send a body within --body-timeout (408). Listens on "
        "127.0.0.1 only unless --host says otherwise; there is no authentication.",
    )
    serve.add_argument(
        "models",
        nargs="+",
        metavar="MODEL",
        help="checkpoints (.pt), run folders or exported models (.onnx, ...); NAME=PATH names "
        "one (by default: the run folder's or the file's name); the first is the default",
    )
    serve.add_argument("--host", default="127.0.0.1", help="address (default 127.0.0.1)")
    serve.add_argument("--port", type=int, default=8000, help="port (default 8000; 0: any)")
    serve.add_argument(
        "--max-upload", type=float, default=16, metavar="MB", help="upload limit (default 16)"
    )
    serve.add_argument(
        "--max-megapixels",
        type=float,
        default=16,
        metavar="MP",
        help="largest image accepted, in megapixels (default 16); inference memory grows "
        "with the larger of this and --batch-megapixels",
    )
    serve.add_argument(
        "--batch-megapixels",
        type=float,
        default=4,
        metavar="MP",
        help="most pixels one batch holds in all, in megapixels (default 4); a larger image "
        "runs alone",
    )
    serve.add_argument(
        "--queue", type=int, default=32, metavar="N", help="requests that may wait (default 32)"
    )
    serve.add_argument(
        "--batch", type=int, default=4, metavar="N", help="largest batch of requests (default 4)"
    )
    serve.add_argument(
        "--body-timeout",
        type=float,
        default=60,
        metavar="S",
        help="seconds a request's body may take to arrive (default 60; 408 after)",
    )
    serve.add_argument(
        "--per-client",
        type=int,
        default=8,
        metavar="N",
        help="requests one client address may have in progress (default 8; 429 beyond)",
    )
    serve.add_argument(
        "--expose-details",
        action="store_true",
        help="GET /models also gives each model's file path and its card's paths and machine "
        "description (off by default: anyone who reaches the server would see them)",
    )
    serve.add_argument("--device", default="cpu", help="cpu (default), cuda or cuda:N")
    serve.add_argument(
        "--threads",
        default="auto",
        metavar="auto|N",
        help="intra-op threads of torch and ONNX Runtime (default auto: one per free core; "
        "requests are decoded in the server's own threads)",
    )
    serve.add_argument("--open", action="store_true", help="open the page in a web browser")
    serve.set_defaults(run=run_serve)


def run_models(args: argparse.Namespace) -> int:
    from seglab.cache import torch_hub_checkpoints
    from seglab.models.table import encoder_table

    height, width = parse_size(args.size)
    header = (
        "encoder",
        "params (M)",
        f"GFLOPs @{height}x{width}",
        "ImageNet top-1",
        "weights file",
        "cached",
    )
    rows = [
        (
            r["encoder"],
            f"{r['params'] / 1e6:.1f}",
            f"{r['gflops']:.1f}",
            f"{r['top1']:.1f}",
            r["weights_file"],
            "yes" if r["cached"] else "no",
        )
        for r in encoder_table(height, width, args.classes)
    ]
    print(format_table(header, rows))
    print(f"\nU-Net with {args.classes} classes; weights cache: {torch_hub_checkpoints()}")
    return 0


def run_train(args: argparse.Namespace) -> int:
    from seglab.config import load_config
    from seglab.engine.train import resume_config, train

    overrides = training_overrides(args)
    if args.resume:
        if args.config:
            raise SeglabError("--resume continues a run as it was configured; give no --config")
        config = resume_config(args.resume, overrides)
    else:
        config = load_config(args.config, overrides)
    train(config, resume=args.resume)
    return 0


def run_evaluate(args: argparse.Namespace) -> int:
    import json

    from seglab.config import check_values
    from seglab.deployment.artifacts import metrics_record
    from seglab.deployment.measure import evaluate_model
    from seglab.engine.evaluate import EvalOptions
    from seglab.formatting import format_metrics, undertrained_warning
    from seglab.outputs import (
        check_output_file,
        confusion_figure_path,
        default_metrics_path,
        write_text_atomic,
    )
    from seglab.reporting.plots import confusion_matrices

    out = args.out or default_metrics_path(args.checkpoint, args.split)
    check_output_file(out, "evaluate: --out")
    figure = check_output_file(confusion_figure_path(out), "evaluate: the confusion figure")
    machine = check_values(  # auto or a number, checked as training's flags are
        {"threads": args.threads, "workers": args.workers}, "evaluate", flags=True
    )
    options = EvalOptions(
        flip=args.flip,
        scales=tuple(args.scales),
        window=args.window,
        batch_size=args.batch_size,
        **machine,
    )
    metrics = evaluate_model(args.checkpoint, args.data, args.split, options, device=args.device)
    write_text_atomic(out, json.dumps(metrics, indent=2))
    model = Path(args.checkpoint).absolute()
    title = f"{model.parent.name}/{model.name} on {args.split}"  # e.g. "mine/best.pt on val"
    confusion_matrices({title: metrics["confusion"]}, list(metrics["per_class"]), figure)
    print(format_metrics(metrics))
    print(f"threads: {metrics['evaluation']['threads_reason']}")
    undertrained = metrics_record(Path(args.checkpoint)).get("undertrained")
    if undertrained:  # how training ended, from the record the model carries
        print(undertrained_warning(undertrained, metrics))
    print(f"metrics written to {out}, the confusion matrix drawn in {figure}")
    return 0


def run_compare(args: argparse.Namespace) -> int:
    from seglab.config import load_config
    from seglab.reporting.budget import Budget
    from seglab.reporting.compare import compare, with_demo_schedule
    from seglab.reporting.report import difference_lines, summary_table, verdict_lines
    from seglab.reporting.verdict import margin_fraction

    overrides = with_demo_schedule(
        training_overrides(args, skip=("encoder",)), args.config, args.runs
    )
    out = overrides.pop("out") or "runs/compare"
    config = load_config(args.config, overrides)
    encoders = [e.strip() for e in args.encoders.split(",") if e.strip()]
    comparison = compare(
        config,
        None if args.runs else encoders,
        args.runs,
        out,
        args.split,
        args.examples,
        budget=Budget(args.budget, args.memory),
        export=args.export,
        seeds=args.seeds,
        folds=args.folds,
        margin=margin_fraction(args.margin),
        forms=[f.strip() for f in args.forms.split(",") if f.strip()] if args.forms else None,
    )
    print(format_table(*summary_table(comparison)))
    for line in difference_lines(comparison):
        print(line)
    print(f"report: {Path(out) / 'report.html'} (also report.md, results.json)")
    print("Verdict:")
    for line in verdict_lines(comparison):
        print(f"  {line}")
    return 0


def run_predict(args: argparse.Namespace) -> int:
    from seglab.deployment.predict import predict

    def report(line: str) -> None:
        print(f"seglab: error: {line}", file=sys.stderr)

    summary = predict(
        args.checkpoint,
        args.inputs,
        args.out,
        batch_size=args.batch_size,
        probabilities=args.probabilities,
        window=args.window,
        flip=args.flip,
        device=args.device,
        report=report,
    )
    failed = f"; {len(summary.problems)} input(s) failed" if summary.problems else ""
    print(f"wrote {summary.written} predictions to {args.out}/{failed}")
    for video in summary.videos:
        print(
            f"{video.source}: {video.frames} frames at {video.frames_per_second:.1f} frames/s "
            f"-> {video.path}"
        )
    return 1 if summary.problems else 0


def run_export(args: argparse.Namespace) -> int:
    from seglab.deployment.export import export_artifact

    exported = export_artifact(
        args.checkpoint,
        args.out,
        args.format,
        data=args.data,
        limit=args.limit,
        calibration=args.calibration,
        size=args.size,
        repeats=args.repeats,
        overwrite=args.overwrite,
        progress=args.progress,
    )
    for line in exported.card.summary_lines():
        print(line)
    for failure in exported.card.failures:
        print(f"seglab: outside tolerance: {failure}", file=sys.stderr)
    return 1 if exported.card.failures else 0


def run_benchmark(args: argparse.Namespace) -> int:
    import json

    from seglab.deployment.benchmark import benchmark_model
    from seglab.outputs import check_output_file

    if args.json_out:
        check_output_file(args.json_out, "benchmark: --json")
    result = benchmark_model(
        args.checkpoint or args.model,
        encoder=args.encoder,
        classes=args.classes,
        size=args.size,
        batch=args.batch,
        backends=[b.strip() for b in args.backends.split(",") if b] if args.backends else None,
        repeats=args.repeats,
        data=args.data,
        limit=args.limit,
        calibration=args.calibration,
    )
    print(format_table(*result.table()))
    for line in result.notes():  # after the table: a busy machine
        print(line)
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(result.to_dict(), indent=2))
    return 0


def run_verify(args: argparse.Namespace) -> int:
    from seglab.deployment.verify import verify_artifact

    result = verify_artifact(
        args.artifact,
        data=args.data,
        limit=args.limit,
        repeats=args.repeats,
        progress=args.progress,
    )
    print(format_table(*result.table()))
    for line in result.machines() + result.notes:
        print(line)
    for failure in result.failures:
        print(f"seglab: verify failed: {failure}", file=sys.stderr)
    print(f"{args.artifact}: {'FAILED' if result.failures else 'verified'} against its card")
    return 1 if result.failures else 0


def run_data_check(args: argparse.Namespace) -> int:
    from seglab.api import check

    found = check(args.data)
    print(found)
    return 0 if found.ok else 1


def run_data_import(args: argparse.Namespace) -> int:
    from seglab.api import check
    from seglab.data.importing import import_dataset

    report = import_dataset(
        args.format,
        args.src,
        args.out,
        labels=args.labels,
        overlap=args.overlap,
        keep_empty=args.keep_empty,
        link=args.link,
    )
    print("\n".join(report.lines()))
    found = check(Path(args.out) / "dataset.yaml")
    print(found)
    return 0 if found.ok else 1


def run_data_review(args: argparse.Namespace) -> int:
    from seglab.reporting.review import review, summary_lines

    found = review(
        args.checkpoint,
        args.data,
        args.out,
        unlabelled=args.unlabelled,
        splits=[s.strip() for s in args.split.split(",") if s.strip()] if args.split else None,
        top=args.top,
        device=args.device,
        progress=args.progress,
    )
    print("\n".join(summary_lines(found, args.out)))
    return 0


def run_data_show(args: argparse.Namespace) -> int:
    from pathlib import Path

    from seglab.data.dataset import open_data
    from seglab.data.show import save_overlays

    data = open_data(args.data)
    written = save_overlays(data.split(args.split), data.info, Path(args.out), args.count)
    print(f"wrote {len(written)} overlays to {args.out}/")
    return 0


def run_serve(args: argparse.Namespace) -> int:
    from seglab.config import check_values
    from seglab.serving.server import serve

    machine = check_values({"threads": args.threads}, "serve", flags=True)
    serve(
        args.models,
        host=args.host,
        port=args.port,
        max_upload_mb=args.max_upload,
        max_megapixels=args.max_megapixels,
        queue=args.queue,
        batch=args.batch,
        batch_megapixels=args.batch_megapixels,
        body_timeout=args.body_timeout,
        per_client=args.per_client,
        expose_details=args.expose_details,
        device=args.device,
        threads=machine["threads"],
        open_browser=args.open,
    )
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
