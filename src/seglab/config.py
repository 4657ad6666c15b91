"""The one configuration object that flows from the command line (or a YAML experiment file) to
the training engine. Each option is declared once, here: its type, default, allowed values and
help text. The command line builds its flags from these declarations, and every value (from a
file or a flag) is checked when the configuration is built, before any work starts.

This module imports neither torch nor torchvision, so ``seglab --help`` answers at once.
"""

from __future__ import annotations

import difflib
import math
import re
import typing
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml

from seglab.errors import SeglabError, first_line
from seglab.models import INPUT_NORMS
from seglab.outputs import write_text_atomic

LOSS_NAMES = ("ce", "ohem", "dice", "focal")
# The options a dataset's fingerprint may choose (seglab.engine.recipe), when none is given.
RECIPE_OPTIONS = (
    "crop_size",
    "batch_size",
    "iterations",
    "time_budget",
    "loss",
    "class_weights",
    "full_res_skip",
    "val_interval",
    "lr",
    "warmup_iters",
)
# Epochs when nothing else sets the length of a run (no iterations, no time budget).
DEFAULT_EPOCHS = 10
CLASS_WEIGHTINGS = ("none", "median_frequency", "sqrt_median_frequency", "inverse_frequency")
# The value of an option chosen where it is used (threads, workers: from the cores free then).
AUTO = "auto"
# Keys a run's config.yaml adds beside the options: what was resolved, and how the run grew.
RUN_RECORD_KEYS = ("resolved", "extensions")


def option(
    default: Any,
    help: str,
    *,
    choices: tuple[str, ...] | None = None,
    minimum: float | None = None,
    above: float | None = None,
    below: float | None = None,
    group: str = "",
    duration: bool = False,
    check: Any = None,
    metavar: str | None = None,
    auto: bool = False,
) -> Any:
    """A configuration field with its help text and the values it allows; ``auto``: "auto" is
    one of them too, resolved where the option is used (and recorded there as resolved)."""
    return field(
        default=default,
        metadata={
            "help": help,
            "choices": choices,
            "minimum": minimum,
            "above": above,
            "below": below,
            "group": group,
            "duration": duration,  # seconds, also written as 90s, 60m, 1.5h
            "check": check,  # a function (value, where) raising SeglabError
            "metavar": metavar,  # the flag's placeholder, where its type does not say it
            "auto": auto,  # "auto" allowed beside the values of its type
        },
    )


@dataclass(frozen=True)
class TrainConfig:
    # data
    data: str = option(
        "synthetic",
        "'synthetic' (built in), a dataset folder or a dataset YAML file",
        group="data",
    )
    crop_size: tuple[int, int] | None = option(
        None, "training crop HxW, e.g. 256x256 (none: each image's own size)", group="data"
    )
    scale: tuple[float, float] = option(
        (0.75, 1.25), "random scale range MIN,MAX of the augmentation (1,1 turns it off)"
    )
    hflip: bool = option(True, "random horizontal flips")
    color_jitter: float = option(
        0.2, "brightness/contrast/saturation jitter (0 turns it off)", minimum=0
    )
    class_crop: float = option(
        0.0,
        "class-aware crops: the share of training crops placed to hold a pixel of a class drawn "
        "uniformly from those in the image, so poles, signs and people are in the crop as often "
        "as road; 0 is anywhere",
        minimum=0,
        check=lambda value, where: check_share(value, where),
    )
    class_sampling: float = option(
        0.0,
        "class-balanced sampling: the share of draws that pick a class uniformly, then an image in "
        "proportion to its pixels of that class, so rare classes are seen more often; 0 is plain "
        "shuffling",
        minimum=0,
        check=lambda value, where: check_share(value, where),
    )
    workers: int | str = option(
        "auto",
        "data-loading processes; auto: chosen with --threads from the cores free at the start "
        "(other processes' use measured), printed with the reason and recorded resolved",
        minimum=0,
        auto=True,
    )
    # model
    encoder: str = option(
        "mobilenet_v2",
        "encoder name (see 'seglab models')",
        group="model",
        check=lambda v, w: check_encoder(v, w),
    )
    weights: str = option(
        "auto",
        "starting weights: imagenet (required), none (random init), auto (imagenet when "
        "obtainable, otherwise random init with a notice), an encoder state-dict file, or a "
        "seglab run folder or checkpoint to fine-tune (its encoder and decoder; the classifier "
        "starts afresh when the number of classes differs)",
    )
    in_channels: int | None = option(
        None,
        "input bands the model takes: none is the data's own (recorded in the checkpoint); 3 "
        "on grey images repeats the band, for a colour encoder's weights unchanged; 1 on colour "
        "images averages them",
        minimum=1,
    )
    full_res_skip: int = option(
        0,
        "channels of a full-resolution skip from the image into the decoder's last block, for "
        "encoders whose first tap is at stride 2 (MobileNetV2, ResNet, ...): thin classes such "
        "as poles are a few pixels wide; 0 is off",
        minimum=0,
    )
    input_norm: str = option(
        "dataset",
        "how images are normalised before the encoder: dataset (the encoder weights' fixed mean "
        "and std for 8-bit RGB and grey images; for other images (other numbers of bands, 16-bit, "
        "float) the training split's per-band mean and std) or image (each image by its own "
        "per-channel mean and std, so a brighter "
        "street, another hour or another camera's exposure looks the same to the model; where "
        "inference tiles an image (--window, fixed-size exports), each tile by its own)",
        choices=INPUT_NORMS,
    )
    freeze_encoder_epochs: int = option(
        0, "train only the decoder for this many epochs first", minimum=0
    )
    sync_bn: bool = option(False, "SyncBatchNorm across GPUs under torchrun")
    # loss
    loss: str = option(
        "ce",
        "ce, ohem (hard pixels only), dice, focal, or a weighted sum: ce+dice, ce:1,dice:0.5",
        group="loss",
        check=lambda value, where: parse_loss(value, where),
    )
    class_weights: str = option(
        "none", "loss class weighting", choices=CLASS_WEIGHTINGS, group="loss"
    )
    focal_gamma: float = option(2.0, "focal loss gamma", minimum=0)
    label_smoothing: float = option(
        0.0, "label smoothing of the cross-entropy term (ce)", minimum=0, below=1
    )
    # optimisation
    auto: tuple[str, ...] = option(
        (),
        "options chosen from the dataset's fingerprint (its image sizes, class shares, thinnest "
        "structures, number of images) when not given, each printed with its reason at the "
        f"start: all ({', '.join(RECIPE_OPTIONS)}), none, or a comma-separated list; on the "
        "command line all unless --config is given (a file means exactly what it says)",
        group="schedule",
        check=lambda value, where: check_auto(value, where),
    )
    epochs: int | None = option(
        None,
        f"training epochs (none: {DEFAULT_EPOCHS}, or as many as fit --time-budget when it is "
        "given without --epochs or --iterations)",
        minimum=1,
    )
    iterations: int | None = option(None, "optimizer steps; overrides epochs when set", minimum=1)
    time_budget: float | None = option(
        None,
        "time for the whole run (training, validation and saving), with its unit: 90s, 60m, "
        "1.5h; the learning-rate decay is fitted to it, and given alone it sets the run's "
        "length (training goes on until it ends)",
        above=0,
        duration=True,
    )
    batch_size: int = option(8, "images per step per process (before accumulation)", minimum=1)
    accumulate: int = option(1, "micro-batches per optimizer step", minimum=1)
    optimizer: str = option("adamw", "optimizer", choices=("adamw", "sgd"))
    lr: float = option(1e-3, "learning rate", above=0)
    encoder_lr: float | None = option(
        None, "learning rate of the pretrained encoder (default: lr)", above=0
    )
    momentum: float = option(0.9, "SGD momentum", minimum=0, below=1)
    weight_decay: float = option(1e-4, "weight decay", minimum=0)
    schedule: str = option(
        "poly", "learning-rate decay after warm-up", choices=("poly", "cosine", "constant")
    )
    warmup_iters: int = option(
        0,
        "linear warm-up steps (a run that fills its --time-budget ends the warm-up after a "
        "quarter of the budget at the latest)",
        minimum=0,
    )
    clip_grad: float | None = option(None, "clip the gradient norm to this value", above=0)
    ema: float | None = option(
        None,
        "decay of an exponential moving average of the weights (e.g. 0.999): validation, "
        "best.pt and everything made from it use the averaged weights; none is off",
        above=0,
        below=1,
    )
    # evaluation
    val_interval: int = option(
        1, "epochs between validations (always after the last)", minimum=1, group="evaluation"
    )
    # machine
    device: str = option(
        "auto", "auto, cpu, cuda or cuda:N", group="machine", check=lambda v, w: check_device(v, w)
    )
    precision: str = option(
        "auto",
        "auto: the fastest exact choice on this machine",
        choices=("auto", "fp32", "bf16", "fp16"),
    )
    threads: int | str = option(
        "auto",
        "torch's intra-op threads; auto: one per free core not feeding data (see --workers)",
        minimum=1,
        auto=True,
    )
    channels_last: bool = option(True, "channels-last memory format")
    compile: bool = option(False, "torch.compile the model")
    seed: int = option(0, "random seed", minimum=0)
    fold: str | None = option(
        None,
        "cross-validation: train on the other folds of train+val and validate on fold I of K "
        "(I/K, e.g. 2/5; group-aware when the dataset declares groups, the same folds for "
        "every seed); none: the dataset's own split",
        check=lambda value, where: parse_fold(value, where),
        metavar="I/K",
    )
    out: str | None = option(
        None, "run folder (default: runs/ENCODER, numbered runs/ENCODER-2, -3, ... if taken)"
    )
    progress: bool = option(True, "progress bars")

    def __post_init__(self) -> None:
        """Every value converted to its option's type and checked, however it was built."""
        hints = typing.get_type_hints(TrainConfig)
        for f in fields(self):
            value = _check(getattr(self, f.name), hints[f.name], f.metadata, f.name)
            object.__setattr__(self, f.name, value)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        return {k: list(v) if isinstance(v, tuple) else v for k, v in d.items()}

    @property
    def fills_budget(self) -> bool:
        """The time budget alone sets the run's length: no epochs or iterations are given."""
        return bool(self.time_budget) and self.iterations is None and self.epochs is None

    def planned_steps(self, steps_per_epoch: int) -> int | None:
        """The optimizer steps the schedule plans; None when the run fills its time budget."""
        if self.fills_budget:
            return None
        return self.iterations or (self.epochs or DEFAULT_EPOCHS) * steps_per_epoch

    @classmethod
    def from_dict(cls, values: dict[str, Any], source: str = "configuration") -> TrainConfig:
        """A checked configuration: unknown keys are named with a suggestion, every value is
        converted to its option's type and checked against what the option allows."""
        return cls(**check_values(values, source))


def check_values(values: dict[str, Any], source: str, flags: bool = False) -> dict[str, Any]:
    """``values`` converted and checked; the first bad one raises a one-line SeglabError naming
    ``source``, the option (``--batch-size`` with ``flags``), the value and what is allowed."""
    declared = {f.name: f for f in fields(TrainConfig)}
    hints = typing.get_type_hints(TrainConfig)
    checked = {}
    for key, value in values.items():
        name = f"--{key.replace('_', '-')}" if flags else key
        if key not in declared:
            close = difflib.get_close_matches(str(key), declared, n=1)
            hint = f"; did you mean {close[0]}?" if close else ""
            raise SeglabError(f"{source}: unknown option {name!r}{hint}")
        checked[key] = _check(value, hints[key], declared[key].metadata, f"{source}: {name}")
    return checked


def _check(value: Any, hint: Any, meta: Any, where: str) -> Any:
    if meta.get("duration") and value is not None:
        return parse_duration(value, where)
    kinds = typing.get_args(hint) if typing.get_origin(hint) in (typing.Union, _UnionType) else ()
    if meta.get("auto"):  # "auto", or a value of the option's other type (int | str: int)
        if isinstance(value, str) and value.strip().lower() == AUTO:
            return AUTO
        kind = next(k for k in kinds if k is not str)
        try:
            converted = _convert(value, kind, where)
        except SeglabError:
            raise SeglabError(f"{where}: {value!r} is not auto or an integer") from None
        _check_allowed(converted, meta, where)
        return converted
    optional = type(None) in kinds
    if optional:
        if value is None or (isinstance(value, str) and value.lower() in ("none", "null")):
            return None
        hint = next(k for k in kinds if k is not type(None))
    if value is None:
        raise SeglabError(f"{where}: a value is required")
    converted = _convert(value, hint, where)
    _check_allowed(converted, meta, where)
    return converted


try:  # X | Y annotations are types.UnionType, typing.Optional[X] is typing.Union
    from types import UnionType as _UnionType
except ImportError:  # pragma: no cover (Python < 3.10)
    _UnionType = typing.Union  # type: ignore[assignment,misc]


def _convert(value: Any, hint: Any, where: str) -> Any:
    if hint is bool:
        if isinstance(value, bool):
            return value
        text = str(value).lower()
        if text in ("true", "yes", "on", "1", "false", "no", "off", "0"):
            return text in ("true", "yes", "on", "1")
        raise SeglabError(f"{where}: {value!r} is not true or false")
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, (int, str, float)):
            raise SeglabError(f"{where}: {value!r} is not an integer")
        try:
            number = float(value)
        except ValueError:
            raise SeglabError(f"{where}: {value!r} is not an integer") from None
        if not number.is_integer():
            raise SeglabError(f"{where}: {value!r} is not an integer")
        return int(number)
    if hint is float:
        return _number(value, where)
    if hint is str:
        if not isinstance(value, str):
            raise SeglabError(f"{where}: {value!r} is not a text value")
        return value
    if hint == tuple[int, int]:
        return parse_size(value, where)
    if hint == tuple[float, float]:
        return parse_range(value, where)
    if hint == tuple[str, ...]:
        return parse_names(value, where)
    raise TypeError(f"no conversion for {hint}")  # a programming error, not a user's


def _number(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise SeglabError(f"{where}: {value!r} is not a number")
    try:
        number = float(value)
    except ValueError:
        raise SeglabError(f"{where}: {value!r} is not a number") from None
    if not math.isfinite(number):
        raise SeglabError(f"{where}: {value!r} is not a finite number")
    return number


def _check_allowed(value: Any, meta: Any, where: str) -> None:
    if meta.get("check"):
        meta["check"](value, where)
    choices = meta.get("choices")
    if choices and value not in choices:
        hint = did_you_mean(str(value), choices)
        raise SeglabError(f"{where}: {value!r} is not one of {', '.join(choices)}{hint}")
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if meta.get("minimum") is not None and value < meta["minimum"]:
            raise SeglabError(f"{where}: {value!r} must be at least {meta['minimum']:g}")
        if meta.get("above") is not None and value <= meta["above"]:
            raise SeglabError(f"{where}: {value!r} must be greater than {meta['above']:g}")
        if meta.get("below") is not None and value >= meta["below"]:
            raise SeglabError(f"{where}: {value!r} must be less than {meta['below']:g}")


# --- values written as text: sizes, ranges, durations, loss sums ------------------------------


def parse_size(value: Any, where: str = "size") -> tuple[int, int]:
    """(height, width) from 'HxW', [H, W] or (H, W)."""
    try:
        parts = value.lower().split("x") if isinstance(value, str) else list(value)
        if len(parts) != 2 or any(isinstance(p, (bool, float)) for p in parts):
            raise ValueError
        height, width = (int(p) for p in parts)
    except (ValueError, TypeError, AttributeError):
        raise SeglabError(
            f"{where}: {value!r} is not HEIGHTxWIDTH, e.g. 360x480 or [360, 480]"
        ) from None
    if height < 1 or width < 1:
        raise SeglabError(f"{where}: {value!r} must be positive")
    return height, width


def parse_range(value: Any, where: str = "range") -> tuple[float, float]:
    """(low, high) from 'MIN,MAX' or [MIN, MAX], with 0 < MIN <= MAX."""
    try:
        parts = value.split(",") if isinstance(value, str) else list(value)
        if len(parts) != 2 or any(isinstance(p, bool) for p in parts):
            raise ValueError
        low, high = (float(p) for p in parts)
    except (ValueError, TypeError):
        raise SeglabError(f"{where}: {value!r} is not MIN,MAX, e.g. 0.75,1.25") from None
    if not 0 < low <= high or not math.isfinite(high):
        raise SeglabError(f"{where}: {value!r} needs 0 < MIN <= MAX")
    return low, high


def parse_scales(text: str, where: str = "scales") -> tuple[float, ...]:
    try:
        scales = tuple(float(v) for v in text.split(","))
    except ValueError:
        raise SeglabError(f"{where}: {text!r} are not numbers, e.g. 0.75,1,1.25") from None
    if not scales or min(scales) <= 0 or not all(map(math.isfinite, scales)):
        raise SeglabError(f"{where}: {text!r} must be positive")
    return scales


def parse_duration(value: Any, where: str = "duration") -> float:
    """Seconds from text with its unit ('90s', '60m', '1.5h'), or from a number in a file (YAML
    3600, a run's record), which is seconds. Text without a unit is refused: '4' could mean
    seconds, minutes or hours."""
    units = {"s": 1, "m": 60, "h": 3600}
    text = str(value).strip().lower()
    try:
        if isinstance(value, bool):
            raise ValueError
        if isinstance(value, (int, float)):
            seconds = float(value)
        elif text[-1:] in units:
            seconds = float(text[:-1]) * units[text[-1]]
        else:
            float(text)  # a bare number: refused below with its own message
            raise SeglabError(f"{where}: {value!r} has no unit; write {text}s, {text}m or {text}h")
    except (ValueError, IndexError):
        raise SeglabError(f"{where}: {value!r} is not a duration, e.g. 90s, 60m or 1.5h") from None
    if not math.isfinite(seconds) or seconds <= 0:
        raise SeglabError(f"{where}: {value!r} must be a positive duration")
    return seconds


def did_you_mean(value: str, choices: tuple[str, ...]) -> str:
    """' (did you mean X?)' for the closest of ``choices``, or '' when none is close."""
    close = difflib.get_close_matches(value, choices, n=1)
    return f" (did you mean {close[0]}?)" if close else ""


def parse_loss(spec: str, where: str = "loss") -> list[tuple[str, float]]:
    """``"ce"``, ``"ce+dice"`` (weights 1) or ``"ce:1,dice:0.5"`` as (name, weight) terms."""
    terms = []
    for part in spec.replace("+", ",").split(","):
        name, _, factor = part.strip().partition(":")
        if name not in LOSS_NAMES:
            raise SeglabError(
                f"{where}: unknown loss {name!r} in {spec!r}; choose from "
                f"{', '.join(LOSS_NAMES)}{did_you_mean(name, LOSS_NAMES)}"
            )
        weight = _number(factor, f"{where}: weight of {name}") if factor else 1.0
        if weight <= 0:
            raise SeglabError(f"{where}: weight of {name} in {spec!r} must be positive")
        terms.append((name, weight))
    return terms


def parse_names(value: Any, where: str = "names") -> tuple[str, ...]:
    """Option names from 'a,b', [a, b], 'all' (every one of RECIPE_OPTIONS) or 'none'."""
    if isinstance(value, str):
        text = value.strip().lower()
        if text == "all":
            return RECIPE_OPTIONS
        if text in ("none", ""):
            return ()
        value = [v.strip() for v in text.split(",") if v.strip()]
    if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
        raise SeglabError(f"{where}: {value!r} is not a comma-separated list of names")
    return tuple(v.replace("-", "_") for v in value)


def check_auto(names: tuple[str, ...], where: str) -> None:
    for name in names:
        if name not in RECIPE_OPTIONS:
            raise SeglabError(
                f"{where}: {name!r} is not chosen by the fingerprint; choose from "
                f"{', '.join(RECIPE_OPTIONS)}{did_you_mean(name, RECIPE_OPTIONS)}"
            )


def parse_fold(value: str, where: str = "fold") -> tuple[int, int]:
    """(I, K) from 'I/K': fold I (1-based) of K, with 2 <= K and 1 <= I <= K."""
    try:
        index, count = (int(v) for v in str(value).split("/"))
    except ValueError:
        raise SeglabError(f"{where}: {value!r} is not I/K, e.g. 2/5 (fold 2 of 5)") from None
    if count < 2 or not 1 <= index <= count:
        raise SeglabError(f"{where}: {value!r} needs 2 <= K and 1 <= I <= K")
    return index, count


def check_encoder(name: str, where: str = "encoder") -> None:
    from seglab.models.encoders import get_encoder_spec  # the registry needs torchvision: late

    try:
        get_encoder_spec(name)
    except SeglabError as err:
        raise SeglabError(f"{where}: {err}") from None


def check_share(value: float, where: str) -> None:
    if value > 1:
        raise SeglabError(f"{where}: {value} is a share, from 0 to 1")


def check_device(name: str, where: str = "device") -> None:
    if not re.fullmatch(r"auto|cpu|cuda(:\d+)?", name):
        raise SeglabError(f"{where}: {name!r} is not one of auto, cpu, cuda, cuda:N (e.g. cuda:0)")


def format_value(value: Any) -> str:
    """An option's value as a person writes it on the command line."""
    if isinstance(value, tuple) and len(value) == 2 and all(isinstance(v, int) for v in value):
        return f"{value[0]}x{value[1]}"
    if isinstance(value, tuple) and all(isinstance(v, str) for v in value):
        return ",".join(value) or "none"
    if isinstance(value, tuple):
        return ",".join(f"{v:g}" for v in value)
    if isinstance(value, bool):
        return "on" if value else "off"
    return "none" if value is None else f"{value:g}" if isinstance(value, float) else str(value)


def describe_options() -> list[tuple[str, str, str | None]]:
    """(name, help with its default, metavar) of every option, for the command line's flags;
    metavar is None for on/off switches."""
    hints = typing.get_type_hints(TrainConfig)
    described = []
    for f in fields(TrainConfig):
        help_text = f.metadata["help"]
        if f.metadata["choices"]:
            help_text += f": {', '.join(f.metadata['choices'])}"
        if f.name not in ("out", "progress"):
            help_text += f" (default {format_value(f.default)})"
        described.append((f.name, help_text, _metavar(hints[f.name], f.metadata)))
    return described


def _metavar(hint: Any, meta: Any) -> str | None:
    union = typing.get_origin(hint) in (typing.Union, _UnionType)
    kind = next(k for k in typing.get_args(hint) if k is not type(None)) if union else hint
    if kind is bool:
        return None
    if meta.get("choices"):
        return "{" + ",".join(meta["choices"]) + "}"
    if meta.get("auto"):
        return "auto|N"
    if meta.get("metavar"):
        return meta["metavar"]
    if meta.get("duration"):
        return "DURATION"
    names = {
        int: "N",
        float: "X",
        tuple[int, int]: "HxW",
        tuple[float, float]: "MIN,MAX",
        tuple[str, ...]: "NAMES",
    }
    return names.get(kind, "TEXT")


# --- files --------------------------------------------------------------------------------------


def read_yaml_mapping(path: str | Path, what: str, keys: str = "options") -> dict[str, Any]:
    """A YAML file's top-level mapping (an empty file is an empty one), or a one-line error
    naming the file; ``what`` and ``keys`` say what it should hold."""
    path = Path(path)
    try:
        loaded = yaml.safe_load(path.read_text())
    except OSError as err:
        raise SeglabError(f"cannot read {what} {path}: {err.strerror}") from None
    except yaml.YAMLError as err:
        raise SeglabError(f"{path}: not valid YAML ({first_line(err)})") from None
    if loaded is None:
        return {}
    if not isinstance(loaded, dict):
        raise SeglabError(f"{path}: expected a mapping of {keys}")
    return loaded


def load_config(path: str | Path | None, overrides: dict[str, Any]) -> TrainConfig:
    """Defaults, then the YAML file, then the command-line ``overrides`` (None = not given).
    A run's own config.yaml is a valid file here: its record of what was resolved is skipped.
    Without a file, the dataset's fingerprint chooses every recipe option not given (auto: all);
    a file means exactly what it says (its auto list is a record) unless --auto is given. An
    option given, in the file or as a flag, is never chosen."""
    values: dict[str, Any] = {"auto": RECIPE_OPTIONS}
    if path is not None:
        loaded = read_yaml_mapping(path, "config")
        values.update(
            check_values({k: v for k, v in loaded.items() if k not in RUN_RECORD_KEYS}, str(path))
        )
        values["auto"] = ()
    given = {k: v for k, v in overrides.items() if v is not None}
    values.update(check_values(given, "command line", flags=True))
    set_by_user = set(given) | (set(loaded) if path is not None else set())
    values["auto"] = tuple(name for name in values["auto"] if name not in set_by_user)
    return TrainConfig(**values)


def save_config(
    config: TrainConfig,
    path: Path,
    resolved: dict[str, Any] | None = None,
    extensions: list[dict[str, Any]] | None = None,
) -> None:
    """config.yaml: the options, then what was resolved at the start (weights, device,
    precision and why) and every extension of the run, each with its step."""
    record = config.to_dict()
    if resolved:
        record["resolved"] = resolved
    if extensions:
        record["extensions"] = extensions
    write_text_atomic(path, yaml.safe_dump(record, sort_keys=False))  # a full disk keeps the old


def read_run_record(path: Path) -> tuple[TrainConfig, dict[str, Any], list[dict[str, Any]]]:
    """A run's config.yaml: its configuration, what was resolved and its extensions."""
    loaded = read_yaml_mapping(path, "run configuration")
    options = {k: v for k, v in loaded.items() if k not in RUN_RECORD_KEYS}
    config = TrainConfig.from_dict(options, str(path))
    return config, loaded.get("resolved") or {}, list(loaded.get("extensions") or [])
