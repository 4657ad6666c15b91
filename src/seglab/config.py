"""The one configuration object that flows from the command line to the training engine."""

from __future__ import annotations

from dataclasses import asdict, dataclass


@dataclass
class TrainConfig:
    data: str = "synthetic"  # "synthetic", a dataset folder or a dataset YAML file
    encoder: str = "mobilenet_v2"
    # "imagenet": official weights (error if unobtainable); "auto": imagenet when obtainable,
    # else random init with a notice; "none": random init; or a path to a state dict.
    weights: str = "auto"
    epochs: int = 10
    batch_size: int = 8
    crop_size: tuple[int, int] | None = None  # None: crop back to each image's own size
    scale: tuple[float, float] = (0.75, 1.25)  # random scale range of the augmentation
    hflip: bool = True
    color_jitter: float = 0.2
    class_weights: str = (
        "none"  # none | median_frequency | sqrt_median_frequency | inverse_frequency
    )
    lr: float = 1e-3
    weight_decay: float = 1e-4
    workers: int = 2
    seed: int = 0
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    out: str = "runs/latest"
    progress: bool = True

    def to_dict(self) -> dict:
        return asdict(self)
