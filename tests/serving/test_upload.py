"""Uploads of multi-band TIFFs: decoded for a model of their bands, sized from the header before
anything is decoded, and refused in one line when the model takes other bands."""

import io

import numpy as np
import pytest
import tifffile
import torch

from seglab.serving.upload import UploadError, decode_image


def tiff_bytes(bands: int, height: int = 12, width: int = 16) -> tuple[bytes, np.ndarray]:
    values = np.random.default_rng(bands).integers(0, 65536, (height, width, bands), np.uint16)
    buffer = io.BytesIO()
    tifffile.imwrite(buffer, values, photometric="minisblack", planarconfig="contig")
    return buffer.getvalue(), values


def test_a_multi_band_tiff_upload_is_decoded_for_a_model_of_its_bands():
    data, values = tiff_bytes(5)
    image = decode_image(data, channels=5, max_pixels=10**6)
    expected = torch.from_numpy(values.transpose(2, 0, 1) / np.float32(65535))
    assert image.shape == (5, 12, 16) and torch.equal(image, expected)


def test_an_upload_of_other_bands_is_refused_naming_both_counts():
    with pytest.raises(UploadError) as refused:
        decode_image(tiff_bytes(5)[0], channels=3, max_pixels=10**6)
    assert refused.value.status == 400
    assert (
        refused.value.message == "the TIFF image: a 5-band image where 3-band images are expected"
    )


def test_a_multi_band_tiff_over_the_pixel_limit_is_refused_from_its_header():
    with pytest.raises(UploadError) as refused:
        decode_image(tiff_bytes(5, 40, 50)[0], channels=5, max_pixels=1000)
    assert refused.value.status == 413
    assert "the limit is 0.001 megapixels" in refused.value.message
