"""The class tables that come with the known layouts (names, colours, how their masks encode them)
and the default palette for classes that come without colours."""

from __future__ import annotations

from dataclasses import dataclass

from seglab.data.masks import IGNORE, MaskEncoding, index_encoding

RGB = tuple[int, int, int]


@dataclass(frozen=True)
class ClassTable:
    """What a dataset's masks mean: the class names, their colours, and the mask encoding."""

    names: tuple[str, ...]
    colors: tuple[RGB, ...]
    encoding: MaskEncoding


CAMVID_CLASSES = (
    "Sky",
    "Building",
    "Pole",
    "Road",
    "Pavement",
    "Tree",
    "SignSymbol",
    "Fence",
    "Car",
    "Pedestrian",
    "Bicyclist",
)
CAMVID_COLORS = (
    (128, 128, 128),
    (128, 0, 0),
    (192, 192, 128),
    (128, 64, 128),
    (60, 40, 222),
    (128, 128, 0),
    (192, 128, 128),
    (64, 64, 128),
    (64, 0, 128),
    (64, 64, 0),
    (0, 128, 192),
)
CAMVID_VOID = 11

VOC_CLASSES = (
    "background",
    "aeroplane",
    "bicycle",
    "bird",
    "boat",
    "bottle",
    "bus",
    "car",
    "cat",
    "chair",
    "cow",
    "diningtable",
    "dog",
    "horse",
    "motorbike",
    "person",
    "pottedplant",
    "sheep",
    "sofa",
    "train",
    "tvmonitor",
)


def voc_colors(n: int = 21) -> tuple[RGB, ...]:
    """The Pascal VOC palette: class bits spread over the high bits of R, G and B."""
    colors = []
    for i in range(n):
        r = g = b = 0
        c = i
        for j in range(8):
            r |= ((c >> 0) & 1) << (7 - j)
            g |= ((c >> 1) & 1) << (7 - j)
            b |= ((c >> 2) & 1) << (7 - j)
            c >>= 3
        colors.append((r, g, b))
    return tuple(colors)


def default_colors(n: int) -> tuple[RGB, ...]:
    """Colours for classes that come without any: the VOC palette (class 0 black)."""
    return voc_colors(n)


# Cityscapes: (label id, train id name, colour) of the 19 evaluated classes; every other id of
# 0..33 (and -1, licence plate) is ignored.
CITYSCAPES_IDS = (
    (7, "road", (128, 64, 128)),
    (8, "sidewalk", (244, 35, 232)),
    (11, "building", (70, 70, 70)),
    (12, "wall", (102, 102, 156)),
    (13, "fence", (190, 153, 153)),
    (17, "pole", (153, 153, 153)),
    (19, "traffic light", (250, 170, 30)),
    (20, "traffic sign", (220, 220, 0)),
    (21, "vegetation", (107, 142, 35)),
    (22, "terrain", (152, 251, 152)),
    (23, "sky", (70, 130, 180)),
    (24, "person", (220, 20, 60)),
    (25, "rider", (255, 0, 0)),
    (26, "car", (0, 0, 142)),
    (27, "truck", (0, 0, 70)),
    (28, "bus", (0, 60, 100)),
    (31, "train", (0, 80, 100)),
    (32, "motorcycle", (0, 0, 230)),
    (33, "bicycle", (119, 11, 32)),
)


def _cityscapes_encoding() -> MaskEncoding:
    mapping = {label_id: IGNORE for label_id in range(34)}
    mapping.update({label_id: train_id for train_id, (label_id, _, _) in enumerate(CITYSCAPES_IDS)})
    return MaskEncoding("index", mapping)


CAMVID = ClassTable(
    CAMVID_CLASSES,
    CAMVID_COLORS,
    index_encoding(len(CAMVID_CLASSES), ignore_values=[CAMVID_VOID]),
)
VOC = ClassTable(VOC_CLASSES, voc_colors(21), index_encoding(21, ignore_values=[IGNORE]))
CITYSCAPES = ClassTable(
    tuple(name for _, name, _ in CITYSCAPES_IDS),
    tuple(color for *_, color in CITYSCAPES_IDS),
    _cityscapes_encoding(),
)
