"""The one configuration object that flows from the command line (or a YAML experiment file) to
the training engine. A YAML file sets options; command-line flags override it; the resolved
configuration is saved in the run folder as ``config.yaml``."""

from __future__ import annotations

import difflib
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import yaml

from seglab.errors import SeglabError


@dataclass
class TrainConfig:
    # data
    data: str = "synthetic"  # "synthetic", a dataset folder or a dataset YAML file
    crop_size: tuple[int, int] | None = None  # None: crop back to each image's own size
    scale: tuple[float, float] = (0.75, 1.25)  # random scale range of the augmentation
    hflip: bool = True
    color_jitter: float = 0.2
    workers: int = 2
    # model
    encoder: str = "mobilenet_v2"
    # "imagenet": official weights (error if unobtainable); "auto": imagenet when obtainable,
    # else random init with a notice; "none": random init; or a path to a state dict.
    weights: str = "auto"
    freeze_encoder_epochs: int = 0  # transfer learning: train only the decoder at first
    sync_bn: bool = False  # SyncBatchNorm across GPUs under DDP
    # loss
    loss: str = "ce"  # ce | ohem | dice | focal, or a weighted sum: "ce+dice", "ce:1,dice:0.5"
    class_weights: str = (
        "none"  # none | median_frequency | sqrt_median_frequency | inverse_frequency
    )
    focal_gamma: float = 2.0
    # optimisation
    epochs: int = 10
    iterations: int | None = None  # optimizer steps; overrides epochs when set
    time_budget: float | None = None  # seconds of training; the schedule is fitted to it
    batch_size: int = 8  # images per step per process (before accumulation)
    accumulate: int = 1  # micro-batches per optimizer step
    optimizer: str = "adamw"  # adamw | sgd
    lr: float = 1e-3
    encoder_lr: float | None = None  # learning rate of the encoder (default: lr)
    momentum: float = 0.9  # SGD
    weight_decay: float = 1e-4
    schedule: str = "poly"  # poly | cosine | constant, after warm-up
    warmup_iters: int = 0
    clip_grad: float | None = None  # max gradient norm
    # evaluation
    val_interval: int = 1  # epochs between validations (and always after the last)
    # machine
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    precision: str = "auto"  # auto | fp32 | bf16 | fp16
    channels_last: bool = True
    compile: bool = False  # torch.compile the model
    seed: int = 0
    out: str = "runs/latest"
    progress: bool = True

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        return {k: list(v) if isinstance(v, tuple) else v for k, v in d.items()}

    @classmethod
    def from_dict(cls, values: dict[str, Any], source: str = "configuration") -> TrainConfig:
        known = {f.name for f in fields(cls)}
        for key in values:
            if key not in known:
                close = difflib.get_close_matches(key, known, n=1)
                hint = f"; did you mean {close[0]}?" if close else ""
                raise SeglabError(f"{source}: unknown option {key!r}{hint}")
        values = dict(values)
        for key in ("crop_size", "scale"):
            if values.get(key) is not None:
                values[key] = tuple(values[key])
        return cls(**values)


def load_config(path: str | Path | None, overrides: dict[str, Any]) -> TrainConfig:
    """Defaults, then the YAML file, then the command-line ``overrides`` (None = not given)."""
    values: dict[str, Any] = {}
    source = "command line"
    if path is not None:
        path = Path(path)
        try:
            loaded = yaml.safe_load(path.read_text())
        except OSError as err:
            raise SeglabError(f"cannot read config {path}: {err.strerror}") from None
        except yaml.YAMLError as err:
            raise SeglabError(f"{path}: not valid YAML ({str(err).splitlines()[0]})") from None
        if not isinstance(loaded, dict):
            raise SeglabError(f"{path}: expected a mapping of options")
        values.update(loaded)
        source = str(path)
    values.update({k: v for k, v in overrides.items() if v is not None})
    return TrainConfig.from_dict(values, source)


def save_config(config: TrainConfig, path: Path) -> None:
    path.write_text(yaml.safe_dump(config.to_dict(), sort_keys=False))
