"""The review's scores on constructed probability maps."""

from __future__ import annotations

import numpy as np
import pytest

from seglab.reporting.label_scores import disagreement_regions, margin_uncertainty, pick_diverse

SIZE = (30, 40)  # height, width


def confident(classes: np.ndarray, num_classes: int = 3, sure: float = 0.98) -> np.ndarray:
    """K x H x W probabilities: ``sure`` on each pixel's class, the rest shared."""
    probs = np.full((num_classes, *classes.shape), (1 - sure) / (num_classes - 1), np.float32)
    np.put_along_axis(probs, classes[None], sure, axis=0)
    return probs


def test_a_confidently_contradicted_block_is_one_region_with_its_box_and_classes():
    truth = np.zeros(SIZE, np.int64)
    truth[:, 20:] = 1
    mask = truth.copy()
    mask[5:13, 2:10] = 2  # a wrong label where the model sees class 0
    regions, labels = disagreement_regions(confident(truth), mask, ignore_index=255)
    assert len(regions) == 1
    region = regions[0]
    assert region.box == (2, 5, 10, 13) and region.area == 64
    assert (region.mask_class, region.predicted_class) == (2, 0)
    assert region.confidence == pytest.approx(0.98)
    assert region.score == pytest.approx(64 * (0.98 - 0.01) / mask.size * 0.98)
    assert labels[5:13, 2:10].all() and (labels > 0).sum() == 64


def test_ignored_pixels_never_count_and_a_hesitant_model_weighs_little():
    truth = np.zeros(SIZE, np.int64)
    mask = np.full(SIZE, 255)
    mask[0, 0] = 1
    assert disagreement_regions(confident(truth), mask, 255)[0][0].area == 1
    hesitant = confident(truth, sure=0.4)  # 0.4 against 0.3 for the mask's class
    mask = np.ones(SIZE, np.int64)
    sure_score = disagreement_regions(confident(truth), mask, 255)[0][0].score
    assert disagreement_regions(hesitant, mask, 255)[0][0].score < sure_score / 5


def test_a_confident_map_is_less_uncertain_than_a_coin_toss():
    classes = np.zeros(SIZE, np.int64)
    assert margin_uncertainty(confident(classes, 2, 0.99)) == pytest.approx(0.02, abs=1e-5)
    assert margin_uncertainty(np.full((2, *SIZE), 0.5, np.float32)) == pytest.approx(1.0)
    assert margin_uncertainty(confident(classes, 3, 0.6)) < margin_uncertainty(
        confident(classes, 3, 0.4)
    )


def test_two_identical_images_are_not_both_picked_before_a_different_one():
    frame, other = np.array([1.0, 0.0, 0.2]), np.array([0.0, 1.0, 0.0])
    order = pick_diverse([0.9, 0.9, 0.5], np.stack([frame, frame, other]))
    assert [index for index, _, _ in order] == [0, 2, 1]
    assert order[0][1] == 1.0 and order[2][1] == pytest.approx(0.0)
