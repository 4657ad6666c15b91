"""The report's figures: drawn from the numbers given, at a size a page can hold."""

import numpy as np
from PIL import Image

from seglab.reporting.plots import confusion_matrices


def test_confusion_matrices_sit_side_by_side_one_per_model(tmp_path):
    matrix = [[5, 1, 0], [2, 3, 0], [0, 0, 0]]  # a class that never occurs draws an empty row
    path = confusion_matrices(
        {"a": matrix, "b": matrix}, ["sky", "road", "car"], tmp_path / "c.png"
    )
    width, height = Image.open(path).size
    assert width > 1.5 * height  # two square panels in a row


def test_many_classes_stay_a_readable_page(tmp_path):
    k = 60
    matrix = np.random.default_rng(0).integers(0, 50, (k, k)).tolist()
    path = confusion_matrices({"a": matrix}, [f"class{i}" for i in range(k)], tmp_path / "c.png")
    assert max(Image.open(path).size) <= 15 * 110  # 14 inches at 110 dpi, and the title
