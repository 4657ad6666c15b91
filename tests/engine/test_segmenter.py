"""Segmenters: a model that takes one fixed input size, run on any batch and size."""

import torch

from seglab.data.synthetic import INFO
from seglab.engine.segmenter import FixedInputSegmenter


def test_a_fixed_size_model_is_fitted_to_any_image_by_padding_and_tiling():
    """A per-pixel 'model' that accepts only 1 x C x 8 x 12: padded and tiled, its logits
    cropped back are exactly the per-pixel function of the original image."""
    seen = []

    class PerPixel:
        info, name, kind, device = INFO, "per-pixel", "test", torch.device("cpu")

        def __call__(self, images):
            seen.append(tuple(images.shape))
            return torch.cat([images.sum(1, keepdim=True), images[:, :1] * 2], dim=1)

    fitted = FixedInputSegmenter(PerPixel(), (8, 12))
    assert fitted.info == INFO and fitted.kind == "test"
    for shape in ((1, 3, 8, 12), (2, 3, 5, 7), (1, 3, 20, 31), (1, 3, 6, 40)):
        images = torch.rand(shape)
        expected = torch.cat([images.sum(1, keepdim=True), images[:, :1] * 2], dim=1)
        assert torch.allclose(fitted(images), expected, atol=1e-6)
    assert set(seen) == {(1, 3, 8, 12)}
