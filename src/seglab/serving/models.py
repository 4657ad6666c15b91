"""The models a server holds: each loaded once from a checkpoint, a run folder or an exported
artifact, given a unique name, warmed up, and run on batches of decoded images."""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from seglab.deployment.artifacts import load_segmenter, model_warnings
from seglab.engine.inference import clear_argmax, first_argmax, predict_probabilities
from seglab.engine.run_folder import model_file
from seglab.engine.segmenter import Segmenter
from seglab.errors import SeglabError

NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


@dataclass(frozen=True)
class ServedModel:
    """A segmenter under the name clients choose it by, and what a person must know before
    trusting its masks (useless or undertrained; see seglab.deployment.artifacts.model_warnings),
    which GET /models and the page show beside them."""

    name: str
    segmenter: Segmenter
    warnings: tuple[str, ...] = ()
    path: str = ""  # the file it was loaded from, as the warnings name it

    @property
    def card(self) -> dict[str, Any] | None:
        """The artifact's deployment card (parity, accuracy, latency where it was measured), when
        the artifact carries one; None for a plain checkpoint."""
        card = getattr(self.segmenter, "card", None)
        if card is None:
            return None
        if hasattr(card, "to_dict"):
            card = card.to_dict()
        elif dataclasses.is_dataclass(card) and not isinstance(card, type):
            card = dataclasses.asdict(card)
        return json.loads(json.dumps(card, default=str))  # plain JSON values only

    def describe(self, details: bool = False) -> dict[str, Any]:
        """What GET /models says about it. Without ``details``, nothing of the machine serving
        it: the warnings name the model rather than its file, and the card keeps its figures
        but not the paths it records or the description of the machine that measured it."""
        info = self.segmenter.info
        card, warnings = self.card, list(self.warnings)
        if not details:
            card = None if card is None else public(card)
            if self.path:
                warnings = [w.replace(self.path, self.name) for w in warnings]
        described = {
            "name": self.name,
            "kind": self.segmenter.kind,
            "dataset": info.name,
            "classes": list(info.classes),
            "colors": [list(c) for c in info.colors],
            "in_channels": info.in_channels,
            "card": card,
            "warnings": warnings,
        }
        if details:
            described["path"] = self.path
        return described


# A deployment card's keys that tell about the serving machine: paths of the checkpoint and of
# the data it was measured or calibrated on, and the measuring machine's description.
PRIVATE_CARD_KEYS = frozenset({"machine", "checkpoint", "data", "path"})


def public(value: Any) -> Any:
    """A card (plain JSON values) without :data:`PRIVATE_CARD_KEYS` at any depth, and with
    any other string that is an absolute path withheld."""
    if isinstance(value, dict):
        return {k: public(v) for k, v in value.items() if k not in PRIVATE_CARD_KEYS}
    if isinstance(value, list):
        return [public(v) for v in value]
    if isinstance(value, str) and _looks_like_path(value):
        return "(withheld)"
    return value


def _looks_like_path(text: str) -> bool:
    return text.startswith(("/", "~", "\\\\")) or re.match(r"[A-Za-z]:[\\/]", text) is not None


def load_models(specs: Sequence[str], device: str = "cpu") -> list[ServedModel]:
    """Each ``spec`` loaded: a checkpoint (.pt), a run folder (its best.pt, else last.pt) or an
    exported artifact, optionally named as NAME=PATH. One-line SeglabError for a model that
    cannot be loaded or a name given twice."""
    if not specs:
        raise SeglabError("serve: name at least one model (a checkpoint, run folder or artifact)")
    named = [_split_name(spec) for spec in specs]
    names = unique_names([name or default_name(path) for name, path in named])
    explicit = [name for name, _ in named if name]
    for name in explicit:
        if explicit.count(name) > 1:
            raise SeglabError(f"serve: the name {name!r} is given to two models; name each once")
    models = []
    for name, (_, path) in zip(names, named):
        file = model_file(path, "serve: model")
        segmenter = load_segmenter(file, device)
        models.append(ServedModel(name, segmenter, tuple(model_warnings(file)), str(file)))
        warm_up(segmenter)
    return models


def _split_name(spec: str) -> tuple[str | None, Path]:
    """NAME=PATH gives the model a name of its own; a path that exists is taken whole."""
    name, sep, rest = spec.partition("=")
    if sep and not Path(spec).exists() and NAME.fullmatch(name):
        return name, Path(rest)
    return None, Path(spec)


def default_name(path: Path) -> str:
    """A run folder's name for the folder and its best.pt (NAME-last for last.pt); a file's
    name without its suffix otherwise. Characters other than letters, digits, '.', '_' and '-'
    become '-'."""
    path = path.resolve()
    if path.is_dir():
        name = path.name
    elif path.stem in ("best", "last") and path.suffix == ".pt":
        name = path.parent.name + ("-last" if path.stem == "last" else "")
    else:
        name = path.stem
    return re.sub(r"[^A-Za-z0-9._-]", "-", name).strip("-.") or "model"


def unique_names(names: Sequence[str]) -> list[str]:
    """The names with -2, -3, ... added to the second and later of each repeated one."""
    taken: set[str] = set()
    result = []
    for name in names:
        candidate, k = name, 1
        while candidate in taken or (candidate != name and candidate in names):
            k += 1
            candidate = f"{name}-{k}"
        taken.add(candidate)
        result.append(candidate)
    return result


def warm_up(segmenter: Segmenter) -> None:
    """One small forward pass, so the first request does not pay for lazy initialisation."""
    channels = segmenter.info.in_channels
    segment(segmenter, [torch.zeros(channels, 64, 64, dtype=torch.uint8)])


def segment(segmenter: Segmenter, images: Sequence[torch.Tensor]) -> np.ndarray:
    """N x H x W uint8 class indices of C x H x W images of one size (uint8, or float in
    [0, 1]), as ``seglab predict`` computes them: the argmax of the softmax of the logits
    (:func:`predict_probabilities`). The model runs once on the batch; then each image on its
    own: on the CPU the logits' argmax when it is provably the softmax's
    (:func:`clear_argmax`), else that image's softmax and :func:`first_argmax`. One float copy
    of the batch (none of a single image before it), and one image's probabilities in memory at
    a time, not the batch's."""
    batch = images[0][None] if len(images) == 1 else torch.stack(list(images))
    batch = batch.float().div_(255) if batch.dtype == torch.uint8 else batch.float()
    logits = segmenter(batch.to(segmenter.device))
    classes = np.empty((batch.shape[0], *batch.shape[-2:]), dtype=np.uint8)
    for k in range(batch.shape[0]):
        one = logits[k : k + 1]
        fast = one.device.type == "cpu" and one.dtype == torch.float32
        mask = clear_argmax(one[0]) if fast and one.shape[-2:] == batch.shape[-2:] else None
        if mask is None:
            probabilities = predict_probabilities(lambda _, one=one: one, batch[k : k + 1])
            if probabilities.device.type == "cpu":
                mask = first_argmax(probabilities[0])
            else:  # on an accelerator the argmax runs where the probabilities are
                mask = probabilities[0].argmax(0).to(torch.uint8).cpu().numpy()
        classes[k] = mask
    return classes
