"""Fine-tuning from an earlier seglab model: ``--weights`` names a run folder (its best.pt) or a
seglab checkpoint, and the new run starts from its encoder and decoder. Train on dataset A, adapt
to B: the architecture must be the same (encoder, input channels, decoder, full-resolution skip),
but the classes may differ, and then the classifier alone starts afresh, said out loud and
recorded in config.yaml."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from seglab.config import TrainConfig, format_value
from seglab.engine.checkpoint import Checkpoint, file_sha256
from seglab.errors import SeglabError, first_line
from seglab.models.unet import ModelSpec, UNet

# The options of ModelSpec that change a weight's shape, beside the encoder, the input channels
# and the classes (each with its own message).
SHAPE_OPTIONS = ("decoder_channels", "full_res_skip")
CLASSIFIER = "classifier."  # the prefix of the final layer's parameters in a U-Net state dict


@dataclass(frozen=True)
class StartPoint:
    """A seglab checkpoint a run starts from: its file (absolute) and what it holds."""

    path: Path
    checkpoint: Checkpoint

    @property
    def spec(self) -> ModelSpec:
        return self.checkpoint.spec


def find_start(weights: str) -> StartPoint | None:
    """The seglab checkpoint ``weights`` names (a run folder: its best.pt), or None when it names
    anything else: imagenet, none, auto, a plain state-dict file, or nothing that exists (the
    encoder weights' own checks say so)."""
    path = Path(weights)
    if weights in ("auto", "imagenet", "none") or not path.exists():
        return None
    if path.is_dir():
        if not (path / "best.pt").is_file():
            raise SeglabError(
                f"weights: {path} is a folder without best.pt; give a seglab run folder that "
                "has validated once, a checkpoint, or a state-dict file"
            )
        path = path / "best.pt"
    checkpoint = Checkpoint.load_if_checkpoint(path)
    return None if checkpoint is None else StartPoint(path.resolve(), checkpoint)


def keep_architecture(
    config: TrainConfig, start: StartPoint, say: Callable[[str], None]
) -> TrainConfig:
    """``config`` with the start's full-resolution skip where the dataset's fingerprint would
    otherwise choose it: a fine-tuned model keeps the architecture its weights were trained in,
    and only an option the user gave can differ (and is then refused, see check_architecture)."""
    if "full_res_skip" not in config.auto:
        return config
    value = start.spec.full_res_skip
    say(f"full-res-skip {value}: kept from {start.path} (fine-tuning keeps its architecture)")
    auto = tuple(name for name in config.auto if name != "full_res_skip")
    return dataclasses.replace(config, full_res_skip=value, auto=auto)


def check_architecture(start: StartPoint, spec: ModelSpec) -> None:
    """One line naming the file and the option when the run's model ``spec`` cannot take the
    start's weights; the number of classes may differ (the classifier then starts afresh)."""
    theirs = start.spec
    if theirs.encoder != spec.encoder:
        raise SeglabError(
            f"weights: {start.path} holds a {theirs.encoder} U-Net, but this run's encoder is "
            f"{spec.encoder}; fine-tuning needs the same encoder (--encoder {theirs.encoder})"
        )
    if theirs.in_channels != spec.in_channels:
        raise SeglabError(
            f"weights: {start.path} was trained on {theirs.in_channels}-channel images, this "
            f"data has {spec.in_channels} channels; fine-tuning needs the same number"
        )
    for name in SHAPE_OPTIONS:
        was, now = getattr(theirs, name), getattr(spec, name)
        if was != now:
            raise SeglabError(
                f"weights: {start.path} has {name} {format_value(was)}, this run "
                f"{format_value(now)}; fine-tuning needs the same architecture "
                f"(--{name.replace('_', '-')} {format_value(was)})"
            )


def start_from(model: UNet, start: StartPoint, say: Callable[[str], None]) -> dict[str, Any]:
    """Load the start's weights into ``model`` (freshly built, its classifier randomly
    initialised); when the numbers of classes differ, that classifier is kept and the change
    said. Returns what config.yaml's resolved part records of it."""
    check_architecture(start, model.spec)
    theirs, ours = start.spec.num_classes, model.spec.num_classes
    state = dict(start.checkpoint.state_dict)
    reinitialised = theirs != ours
    if reinitialised:
        fresh = {k: v for k, v in model.state_dict().items() if k.startswith(CLASSIFIER)}
        state = {**{k: v for k, v in state.items() if not k.startswith(CLASSIFIER)}, **fresh}
    try:
        model.load_state_dict(state)
    except RuntimeError as err:  # a checkpoint whose weights do not fit its own spec
        raise SeglabError(
            f"weights: {start.path}: weights do not match its model ({first_line(err)})"
        ) from None
    if reinitialised:
        say(f"classifier re-initialised: {start.path} has {theirs} classes, this data {ours}")
    step = start.checkpoint.step
    note = f", classifier re-initialised ({theirs} -> {ours} classes)" if reinitialised else ""
    return {
        "weights": str(start.path),
        "weights_source": f"from seglab checkpoint {start.path}, step {step}{note}",
        "weights_sha256": file_sha256(start.path),
        "weights_step": step,
        "weights_encoder": start.spec.encoder,
        "weights_classes": list(start.checkpoint.dataset.classes),
        "classifier_reinitialised": reinitialised,
    }
