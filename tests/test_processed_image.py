"""The processed frame's storage: quantized within the documented step of the frame, adding noise
far under the sky's, unbiased for aperture photometry; lossless bit for bit; bad choices fail clearly."""

from __future__ import annotations

import time

import numpy as np
import pytest
from astropy.io import fits

from panoptes_network.core.settings import Settings
from panoptes_network.science import fits_codec
from panoptes_network.science.processed_image import STEP_FRACTION, stored_image
from panoptes_network.synthetic.frames import FULL_SHAPE

CHANNEL_RMS = {(0, 0): 10.0, (0, 1): 15.0, (1, 0): 15.0, (1, 1): 12.0}  # ADU, R G G B sky noise


@pytest.fixture(scope="module")
def frame() -> np.ndarray:
    """A background-subtracted Bayer frame (a quarter of a full one): per-channel noise and 400 stars."""
    rng = np.random.default_rng(3)
    shape = (FULL_SHAPE[0] // 2, FULL_SHAPE[1] // 2)
    pixels = np.zeros(shape, np.float32)
    for (row, col), rms in CHANNEL_RMS.items():
        pixels[row::2, col::2] = rng.normal(0.0, rms, pixels[row::2, col::2].shape)
    yy, xx = np.mgrid[-4:5, -4:5]
    for y, x, flux in zip(rng.integers(10, shape[0] - 10, 400), rng.integers(10, shape[1] - 10, 400),
                          rng.uniform(200, 50_000, 400)):  # fmt: skip
        pixels[y - 4 : y + 5, x - 4 : x + 5] += flux * np.exp(-(xx**2 + yy**2) / (2 * 1.1**2)) / (2 * np.pi * 1.1**2)
    return pixels


def read_back(data: bytes) -> np.ndarray:
    return np.asarray(fits_codec.image_hdu(fits_codec.open_fits(data, "processed"), "processed").data)


def test_the_quantized_frame_is_within_half_a_step_and_adds_under_one_percent_of_the_sky_noise(frame) -> None:
    sky_rms = float(np.median(list(CHANNEL_RMS.values())))
    stored = stored_image(frame, fits.Header(), "quantized", sky_rms)
    assert stored.storage == "quantized" and stored.step_adu == pytest.approx(STEP_FRACTION * sky_rms, abs=1e-4)
    error = read_back(stored.data).astype(np.float64) - frame
    assert np.abs(error).max() <= stored.step_adu / 2 * 1.0001
    assert error.std() == pytest.approx(stored.step_adu / np.sqrt(12), rel=0.02)  # uniform, as documented
    assert abs(error.mean()) < 0.002 * stored.step_adu  # dithered: unbiased
    for (row, col), rms in CHANNEL_RMS.items():  # the noise each channel ends with, against its own
        assert np.hypot(rms, error[row::2, col::2].std()) / rms - 1 < 0.01


def test_aperture_photometry_does_not_depend_on_the_storage(frame) -> None:
    """Sums over 9x9 boxes (81 pixels) differ by the rounding alone: unbiased, and 0.072 of the box's
    sky noise (in quadrature, +0.26% to a flux error that is at least that noise)."""
    quantized = read_back(stored_image(frame, fits.Header(), "quantized", 13.5).data)
    lossless = read_back(stored_image(frame, fits.Header(), "lossless", 13.5).data)
    assert np.array_equal(lossless, frame)
    boxes = [(slice(y, y + 9), slice(x, x + 9)) for y in range(0, 1700, 12) for x in range(0, 2600, 12)]
    differences = np.array([quantized[box].sum(dtype=np.float64) - frame[box].sum(dtype=np.float64) for box in boxes])
    sky_noise = 9 * 13.5  # sqrt(81) pixels of about 13.5 ADU
    assert differences.std() == pytest.approx(0.25 / np.sqrt(12) * sky_noise, rel=0.05)
    assert abs(differences.mean()) < 0.01 * sky_noise


def test_bad_storage_choices_and_sky_rms_fail_clearly(frame) -> None:
    with pytest.raises(ValueError, match="expected one of quantized, lossless"):
        stored_image(frame[:64, :64], fits.Header(), "lossy", 10.0)
    with pytest.raises(ValueError, match="sky RMS must be a positive number"):
        stored_image(frame[:64, :64], fits.Header(), "quantized", float("nan"))
    with pytest.raises(ValueError, match="PANOPTES_PROCESSED_STORAGE is 'lossy'"):
        Settings.from_env({"PANOPTES_PROCESSED_STORAGE": "lossy"})
    assert Settings.from_env({}).processed_storage == "quantized"
    assert Settings.from_env({"PANOPTES_PROCESSED_STORAGE": "lossless"}).processed_storage == "lossless"


def test_two_writes_of_the_same_frame_are_the_same_content_without_decoding(frame) -> None:
    """astropy writes the time into the checksum cards: a redelivery's file differs only there."""
    small = frame[:256, :512]
    first = stored_image(small, fits.Header(), "quantized", 13.5).data
    time.sleep(1.1)
    second = stored_image(small, fits.Header(), "quantized", 13.5).data
    assert first != second and len(first) == len(second)
    assert fits_codec.without_checksum_cards(first) == fits_codec.without_checksum_cards(second)
    assert fits_codec.same_content(first, second)
    changed = small.copy()
    changed[100, 100] += 50.0
    other = stored_image(changed, fits.Header(), "quantized", 13.5).data
    assert fits_codec.without_checksum_cards(first) != fits_codec.without_checksum_cards(other)
    assert not fits_codec.same_content(first, other)


def test_a_stack_is_quantized_to_a_sixteenth_of_its_noise_and_keeps_its_nans(frame) -> None:
    """The observation's stack and difference image: no step given, 1/16 of the image's own noise."""
    image = frame[:512, :1024].copy()
    image[10, 20] = np.nan  # a pixel saturated in some frame
    back = read_back(fits_codec.quantized_file(image))
    noise = fits_codec.image_noise(image)
    assert 10.0 < noise < 15.0  # the channels' 10-15 ADU
    assert np.isnan(back[10, 20]) and np.isfinite(np.delete(back.ravel(), 10 * 1024 + 20)).all()
    error = np.abs(back - image)[np.isfinite(image)]
    assert error.max() <= noise / fits_codec.QUANTIZE_LEVEL / 2 * 1.0001
    flat = np.full((64, 64), 3.0, np.float32)  # no noise: cfitsio's own estimate, exact
    assert np.array_equal(read_back(fits_codec.quantized_file(flat)), flat)
