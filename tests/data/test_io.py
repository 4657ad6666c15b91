"""Reading images of any number of bands and bit depth: every band a TIFF holds, whichever way it
stores them, values scaled by their type alone (no precision lost), and a band count that does not
fit refused in one line naming the file."""

from io import BytesIO

import numpy as np
import pytest
import tifffile
import torch
from PIL import Image

from seglab.data.io import bit_depth, decode_image, fit_bands, read_image, tiff_size
from seglab.errors import SeglabError

BANDS = np.random.default_rng(0).integers(0, 65536, (5, 12, 16), dtype=np.uint16)


@pytest.mark.parametrize(
    "write",
    [
        # samples of a pixel (YXS), as most GIS tools write them
        lambda p: tifffile.imwrite(
            p, BANDS.transpose(1, 2, 0), photometric="minisblack", planarconfig="contig"
        ),
        # planes (SYX)
        lambda p: tifffile.imwrite(p, BANDS, photometric="minisblack", planarconfig="separate"),
        # a stack of pages of one size (QYX)
        lambda p: tifffile.imwrite(p, BANDS),
    ],
    ids=["samples", "planes", "pages"],
)
def test_a_multi_band_tiff_reads_every_band_at_full_precision(tmp_path, write):
    path = tmp_path / "scene.tif"
    write(path)
    image = read_image(path)
    assert image.dtype == torch.float32 and image.shape == (5, 12, 16)
    # 16 bits scaled by 65535 and back: every value exactly as stored
    assert np.array_equal(np.rint(image.numpy() * 65535).astype(np.uint16), BANDS)
    assert tiff_size(path) == (16, 12)


def test_a_16_bit_png_keeps_every_value(tmp_path):
    values = np.arange(0, 4096 * 16, 16, dtype=np.uint16).reshape(64, 64)  # 12-bit steps
    Image.fromarray(values).save(tmp_path / "grey16.png")
    image = read_image(tmp_path / "grey16.png")
    assert image.shape == (1, 64, 64) and image.dtype == torch.float32
    assert np.array_equal(np.rint(image[0].numpy() * 65535).astype(np.uint16), values)
    assert decode_image(tmp_path / "grey16.png").dtype == np.uint16


def test_8_bit_images_stay_uint8_and_float_tiffs_are_taken_as_stored(tmp_path):
    rgb = np.random.default_rng(1).integers(0, 256, (10, 12, 3), dtype=np.uint8)
    Image.fromarray(rgb).save(tmp_path / "rgb.png")
    assert torch.equal(read_image(tmp_path / "rgb.png"), torch.from_numpy(rgb).permute(2, 0, 1))
    reflectance = np.array([[[0.25, -0.5], [np.nan, 3.0]]] * 4, dtype=np.float32)
    tifffile.imwrite(tmp_path / "float.tif", reflectance, photometric="minisblack")
    image = read_image(tmp_path / "float.tif")
    assert image.shape == (4, 2, 2)
    assert image[0].tolist() == [[0.25, -0.5], [0.0, 3.0]]  # NaN (no data) read as 0


def test_tiff_alpha_is_dropped_and_other_extra_samples_are_bands(tmp_path):
    rgbx = np.random.default_rng(2).integers(0, 256, (8, 8, 4), dtype=np.uint8)
    tifffile.imwrite(tmp_path / "rgba.tif", rgbx, photometric="rgb", extrasamples=["unassalpha"])
    tifffile.imwrite(tmp_path / "rgbn.tif", rgbx, photometric="rgb", extrasamples=["unspecified"])
    assert torch.equal(
        read_image(tmp_path / "rgba.tif"), torch.from_numpy(rgbx[..., :3]).permute(2, 0, 1)
    )
    assert torch.equal(read_image(tmp_path / "rgbn.tif"), torch.from_numpy(rgbx).permute(2, 0, 1))


def test_tiffs_tifffile_cannot_decode_alone_go_through_pillow(tmp_path):
    # LZW needs the imagecodecs package in tifffile; Pillow decodes it for grey and colour
    grey = np.random.default_rng(3).integers(0, 256, (9, 7), dtype=np.uint8)
    Image.fromarray(grey).save(tmp_path / "lzw.tif", compression="tiff_lzw")
    assert torch.equal(read_image(tmp_path / "lzw.tif"), torch.from_numpy(grey)[None])


def test_a_tiff_stream_reads_like_its_file(tmp_path):
    tifffile.imwrite(tmp_path / "scene.tif", BANDS, photometric="minisblack")
    data = (tmp_path / "scene.tif").read_bytes()
    assert torch.equal(read_image(BytesIO(data)), read_image(tmp_path / "scene.tif"))


def test_a_volume_is_refused_naming_the_file(tmp_path):
    volume = np.zeros((2, 3, 8, 8), np.uint8)
    tifffile.imwrite(tmp_path / "volume.tif", volume, photometric="minisblack")
    with pytest.raises(SeglabError, match=r"volume\.tif: a TIFF of axes \w+ \(shape 2x3x8x8\)"):
        read_image(tmp_path / "volume.tif")


def test_bands_are_fitted_only_between_grey_and_colour(tmp_path):
    grey = torch.arange(6, dtype=torch.uint8).reshape(1, 2, 3)
    assert torch.equal(fit_bands(grey, 3, "x"), grey.expand(3, -1, -1))
    colour = torch.stack([grey[0], grey[0] + 3, grey[0] + 6])
    assert torch.equal(fit_bands(colour, 1, "x"), grey + 3)  # the mean of the bands
    with pytest.raises(SeglabError, match=r"^a\.tif: a 3-band image where 5-band images"):
        fit_bands(colour, 5, "a.tif")
    tifffile.imwrite(tmp_path / "five.tif", BANDS, photometric="minisblack")
    with pytest.raises(SeglabError, match=r"five\.tif: a 5-band image where 3-band images"):
        read_image(tmp_path / "five.tif", 3)


def test_bit_depth_names():
    assert [bit_depth(t) for t in ("uint8", "uint16", ">u2", "float32", "int16")] == [
        "8-bit",
        "16-bit",
        "16-bit",
        "32-bit float",
        "16-bit signed",
    ]
