"""The dataset fingerprint: the few facts about a dataset that a training recipe is chosen by
(as nnU-Net chooses its own): how many images and how large, how many channels and classes, how
rare the rarest class is, how thin the thinnest structures are, and whether the dataset declares
groups. Sizes and class shares come from the data check where there is one (no image is read
again); widths are measured on a sample of the training masks."""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass

import numpy as np

from seglab.data.dataset import Data, FolderDataset
from seglab.data.segmentation_dataset import SegmentationDataset
from seglab.errors import SeglabError

Size = tuple[int, int]  # (height, width)


@dataclass(frozen=True)
class Fingerprint:
    """What a dataset is like, in the numbers a recipe depends on (all of the training split,
    but for the images counted and the groups, which are over train+val)."""

    train_images: int
    val_images: int
    image_size: Size  # median (H, W) of the training images
    smallest_size: Size  # (min H, min W) over the training images
    largest_size: Size  # (max H, max W)
    channels: int
    classes: tuple[str, ...]
    class_shares: tuple[float, ...]  # each class's share of the labelled training pixels
    ignored_share: float  # share of the training pixels that are ignored
    widths: tuple[float | None, ...]  # per class: median width of its structures, in pixels
    groups: int | None  # distinct groups over train+val; None: the dataset declares none
    measured_masks: int  # how many training masks the widths were measured on

    @property
    def rarest(self) -> tuple[str, float]:
        """(name, share) of the rarest class among those present (any class if none is)."""
        k = min(self._present(), key=lambda c: self.class_shares[c])
        return self.classes[k], self.class_shares[k]

    @property
    def commonest(self) -> tuple[str, float]:
        """(name, share) of the commonest class: the background, in most datasets."""
        k = max(range(len(self.classes)), key=lambda c: self.class_shares[c])
        return self.classes[k], self.class_shares[k]

    @property
    def thinnest(self) -> tuple[str, float] | None:
        """(name, width) of the thinnest structures among the present classes but the commonest
        (whose width is that of the gaps between the others); None when none was measured."""
        measured = self.thinner_than(math.inf)
        if not measured:
            return None
        k = min(measured, key=lambda c: self.widths[c])
        return self.classes[k], float(self.widths[k])

    def thinner_than(self, pixels: float) -> list[int]:
        """The present classes but the commonest whose structures were measured narrower than
        ``pixels`` (math.inf: every measured one)."""
        background = self.classes.index(self.commonest[0])
        return [
            c
            for c in self._present()
            if c != background and self.widths[c] is not None and self.widths[c] < pixels
        ]

    def _present(self) -> list[int]:
        present = [c for c, share in enumerate(self.class_shares) if share > 0]
        return present or list(range(len(self.classes)))

    def to_dict(self) -> dict:
        """JSON-ready: lists for tuples, and the rarest, commonest and thinnest classes."""
        thinnest = self.thinnest
        return {
            "train_images": self.train_images,
            "val_images": self.val_images,
            "image_size": list(self.image_size),
            "smallest_size": list(self.smallest_size),
            "largest_size": list(self.largest_size),
            "channels": self.channels,
            "classes": list(self.classes),
            "class_shares": list(self.class_shares),
            "ignored_share": self.ignored_share,
            "widths": list(self.widths),
            "groups": self.groups,
            "measured_masks": self.measured_masks,
            "rarest": {"class": self.rarest[0], "share": self.rarest[1]},
            "commonest": {"class": self.commonest[0], "share": self.commonest[1]},
            "thinnest": None if thinnest is None else {"class": thinnest[0], "width": thinnest[1]},
        }


@dataclass(frozen=True)
class _Sample:
    """What the sampled training masks hold: each one's size, class pixels (N x classes),
    ignored pixels, and per class the width of its structures (NaN where absent)."""

    sizes: list[Size]
    class_pixels: np.ndarray
    ignored: np.ndarray
    widths: np.ndarray


def fingerprint(data: Data, samples: int = 64) -> Fingerprint:
    """The dataset's fingerprint; widths (and, for the generated dataset, which has no check,
    sizes and class shares) are measured on up to ``samples`` training masks spread evenly
    through the split."""
    sample = _sample_masks(data, samples)
    if data.report is not None:
        train = data.report.splits["train"]
        sizes, class_pixels, ignored = train.image_sizes, train.class_pixels, train.ignored_pixels
    else:
        sizes = Counter(sample.sizes)
        class_pixels, ignored = sample.class_pixels.sum(axis=0), int(sample.ignored.sum())
    labelled = int(np.sum(class_pixels))
    median, smallest, largest = _size_range(sizes)
    return Fingerprint(
        train_images=_count(data, "train"),
        val_images=_count(data, "val"),
        image_size=median,
        smallest_size=smallest,
        largest_size=largest,
        channels=data.info.in_channels,
        classes=tuple(data.info.classes),
        class_shares=tuple(float(n) / labelled if labelled else 0.0 for n in class_pixels),
        ignored_share=ignored / (labelled + ignored) if labelled + ignored else 0.0,
        widths=tuple(_median_width(column) for column in sample.widths.T),
        groups=_group_count(data),
        measured_masks=len(sample.sizes),
    )


def structure_widths(mask: np.ndarray, num_classes: int, ignore_index: int) -> np.ndarray:
    """Per class, the width of its structures in ``mask`` (H x W class indices): 2 x area /
    boundary, where the boundary is the class's pixels with a 4-neighbour of another value
    (ignored pixels are another value; the image's border is no boundary). A long stripe w
    pixels wide gives about w. NaN for a class absent, or with no boundary (it fills the mask)."""
    edge = np.zeros(mask.shape, dtype=bool)
    across = mask[:, 1:] != mask[:, :-1]
    edge[:, 1:] |= across
    edge[:, :-1] |= across
    down = mask[1:] != mask[:-1]
    edge[1:] |= down
    edge[:-1] |= down
    labelled = (mask != ignore_index) & (mask >= 0) & (mask < num_classes)
    area = np.bincount(mask[labelled], minlength=num_classes)
    boundary = np.bincount(mask[labelled & edge], minlength=num_classes)
    widths = np.full(num_classes, np.nan)
    np.divide(2.0 * area, boundary, out=widths, where=boundary > 0)
    return widths


def _sample_masks(data: Data, samples: int) -> _Sample:
    """Up to ``samples`` training masks, spread evenly through the split, measured one at a
    time (huge masks are never all in memory together)."""
    train = data.split("train")
    count = min(samples, len(train))
    picked = np.linspace(0, len(train) - 1, count).round().astype(int) if count else []
    k, ignore = data.info.num_classes, data.info.ignore_index
    sizes, class_pixels, ignored, widths = [], [], [], []
    for index in picked:
        mask = _load_mask(train, int(index))
        labelled = mask[(mask != ignore) & (mask >= 0) & (mask < k)]
        sizes.append((int(mask.shape[0]), int(mask.shape[1])))
        class_pixels.append(np.bincount(labelled, minlength=k))
        ignored.append(mask.size - labelled.size)
        widths.append(structure_widths(mask, k, ignore))
    return _Sample(
        sizes,
        np.array(class_pixels, dtype=np.int64).reshape(-1, k),
        np.array(ignored, dtype=np.int64),
        np.array(widths, dtype=np.float64).reshape(-1, k),
    )


def _load_mask(dataset: SegmentationDataset, index: int) -> np.ndarray:
    """The item's mask; a folder dataset's without reading its image (huge ones are slow)."""
    if isinstance(dataset, FolderDataset):
        return dataset.load_mask(index).numpy()
    return dataset.load(index)[1].numpy()


def _median_width(widths: np.ndarray) -> float | None:
    """The median over the masks a class was measured in (None: in none)."""
    measured = widths[~np.isnan(widths)]
    return float(np.median(measured)) if measured.size else None


def _size_range(sizes: Counter) -> tuple[Size, Size, Size]:
    """Median, smallest and largest (H, W), each side on its own; the median is the lower
    middle image's, so always a size some image has. All (0, 0) without images."""
    if not sizes:
        return (0, 0), (0, 0), (0, 0)
    counts = list(sizes.values())
    heights = np.repeat([h for h, _ in sizes], counts)
    widths = np.repeat([w for _, w in sizes], counts)
    middle = (len(heights) - 1) // 2
    median = (int(np.sort(heights)[middle]), int(np.sort(widths)[middle]))
    return median, (int(heights.min()), int(widths.min())), (int(heights.max()), int(widths.max()))


def _count(data: Data, split: str) -> int:
    """The split's images; 0 when the dataset has no such split."""
    if data.report is not None:
        summary = data.report.splits.get(split)
        return summary.pairs if summary else 0
    try:
        return len(data.split(split))
    except SeglabError:
        return 0


def _group_count(data: Data) -> int | None:
    """Distinct groups over train+val, when the dataset declares groups."""
    if data.report is None or data.report.source.groups is None:
        return None
    splits = data.report.splits
    return len({g for s in ("train", "val") if s in splits for g in splits[s].groups})


def format_fingerprint(fp: Fingerprint) -> list[str]:
    """The fingerprint as lines for ``seglab data check``."""
    return [_overview_line(fp), _shares_line(fp), _thinnest_line(fp), _groups_line(fp)]


def _overview_line(fp: Fingerprint) -> str:
    if fp.smallest_size == fp.largest_size:
        size = "{}x{} (all the same size)".format(*fp.image_size)
    else:
        size = "median {}x{} (from {}x{} to {}x{})".format(
            *fp.image_size, *fp.smallest_size, *fp.largest_size
        )
    channels = f"{fp.channels} channel{'s' if fp.channels != 1 else ''}"
    return (
        f"fingerprint: {fp.train_images} train / {fp.val_images} val images, {size}, "
        f"{channels}, {len(fp.classes)} classes"
    )


def _shares_line(fp: Fingerprint) -> str:
    shares = ", ".join(f"{n} {_percent(s)}" for n, s in zip(fp.classes, fp.class_shares))
    ignored = f"; {_percent(fp.ignored_share)} of the pixels ignored" if fp.ignored_share else ""
    return f"class shares: {shares} (rarest: {fp.rarest[0]}){ignored}"


def _thinnest_line(fp: Fingerprint) -> str:
    thinnest = fp.thinnest
    if thinnest is None:
        why = "no training mask" if not fp.measured_masks else f"none besides {fp.commonest[0]}"
        return f"thinnest structures: not measured ({why})"
    name, width = thinnest
    return (
        f"thinnest structures: {name}, about {width:.0f} px wide "
        f"(median over {fp.measured_masks} training masks)"
    )


def _groups_line(fp: Fingerprint) -> str:
    if fp.groups is None:
        return "groups: none declared"
    return f"groups: {fp.groups} over train+val"


def _percent(share: float) -> str:
    """1 decimal, but small shares keep two significant digits (0.021%): a rare class must not
    read as 0.0%."""
    if 0 < share < 0.001:
        return f"{100 * share:.2g}%"
    return f"{100 * share:.1f}%"
