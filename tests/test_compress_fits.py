"""compress-fits: lossless, verified before anything is deleted, exact under redelivery."""

from __future__ import annotations

import dataclasses
import io
import threading
import warnings
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits

from panoptes_network.core.errors import TransientError
from panoptes_network.core.outcomes import Outcome
from panoptes_network.science.lossless_compression import compress_verified
from step_harness import RAW, deliver, drain, local, message_for

NAME = "PAN001/14d3bd/20181011T134202/20181011T134333.fits"


def fits_bytes(*hdus: fits.hdu.base._BaseHDU) -> bytes:
    buffer = io.BytesIO()
    fits.HDUList(list(hdus)).writeto(buffer)
    return buffer.getvalue()


def special_floats(dtype: type) -> np.ndarray:
    data = np.random.default_rng(3).normal(100, 20, (50, 70)).astype(dtype)
    data[0, :4] = [np.nan, -0.0, np.inf, -np.inf]
    return data


@pytest.mark.parametrize(
    "data",
    [
        np.random.default_rng(1).integers(-32768, 32767, (50, 70)).astype(np.int16),
        np.random.default_rng(2).integers(0, 65535, (50, 70)).astype(np.uint16),
        np.random.default_rng(4).integers(-(2**31), 2**31 - 1, (50, 70)).astype(np.int32),
        special_floats(np.float32),
        special_floats(np.float64),
    ],
    ids=["int16", "uint16", "int32", "float32", "float64"],
)
def test_round_trip_is_bit_exact_with_fresh_checksums(data: np.ndarray) -> None:
    header = fits.Header([("EXPTIME", 120.4, "seconds"), ("CAMTEMP", "11 C")])
    header["CHECKSUM"] = "stale"
    original = fits_bytes(fits.PrimaryHDU(data, header))
    compressed = compress_verified(original, "test")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a checksum mismatch is a warning in astropy
        stored = fits.open(io.BytesIO(compressed.data), checksum=True, disable_image_compression=True)
        assert stored[1].header["CHECKSUM"] != "stale" and stored[1].header["DATASUM"]
    hdus = fits.open(io.BytesIO(compressed.data))
    restored = hdus[1].data
    assert restored.dtype == data.dtype
    assert restored.tobytes() == data.tobytes()  # bits: NaN, -0.0 and infinities included
    assert hdus[1].header["EXPTIME"] == 120.4 and hdus[1].header.comments["EXPTIME"] == "seconds"
    assert hdus[1].header["CAMTEMP"] == "11 C"
    assert "CHECKSUM" not in hdus[1].header  # the stale one is gone


def test_multi_extension_files_keep_every_hdu() -> None:
    table = fits.BinTableHDU.from_columns([fits.Column("flux", "E", array=np.arange(4.0))], name="SOURCES")
    image = fits.ImageHDU(np.arange(12, dtype=np.int32).reshape(3, 4), name="MASK")
    original = fits_bytes(fits.PrimaryHDU(np.ones((4, 5), np.uint16)), image, table)
    hdus = fits.open(io.BytesIO(compress_verified(original, "mef").data))
    assert [h.name for h in hdus] == ["PRIMARY", "COMPRESSED_IMAGE", "MASK", "SOURCES"]
    assert np.array_equal(hdus["MASK"].data, np.arange(12).reshape(3, 4))
    assert list(hdus["SOURCES"].data["flux"]) == [0.0, 1.0, 2.0, 3.0]


def test_uint16_is_byte_identical_to_fpack_with_the_same_tiles(test_data: Path, tmp_path: Path) -> None:
    """The compressed tiles equal cfitsio's, byte for byte, for `fpack -t NAXIS1,16`."""
    import shutil
    import subprocess

    original = (test_data / "panoptes" / "unsolved.fits").read_bytes()
    ours = compress_verified(original, "unsolved")
    assert ours.ratio > 1.5
    fpack = shutil.which("fpack")
    assert fpack is not None, "fpack (libcfitsio-bin) is installed by bin/install test"
    copy = tmp_path / "unsolved.fits"
    copy.write_bytes(original)
    width = fits.getheader(copy)["NAXIS1"]
    subprocess.run([fpack, "-t", f"{width},16", str(copy)], check=True)
    theirs = fits.open(tmp_path / "unsolved.fits.fz", disable_image_compression=True)[1]
    mine = fits.open(io.BytesIO(ours.data), disable_image_compression=True)[1]
    assert (mine.header["ZTILE1"], mine.header["ZTILE2"]) == (theirs.header["ZTILE1"], theirs.header["ZTILE2"])
    tiles = list(zip(mine.data["COMPRESSED_DATA"], theirs.data["COMPRESSED_DATA"], strict=True))
    assert all(np.array_equal(a, b) for a, b in tiles)


@pytest.fixture
def stored(tmp_path: Path, test_data: Path):
    context, queue = local(tmp_path)
    original = (test_data / "panoptes" / "unsolved.fits").read_bytes()
    ref = context.storage.write_new(RAW, NAME, original)
    drain(queue)
    return context, queue, ref, original


def test_the_fits_becomes_a_verified_fz_and_the_original_goes(stored) -> None:
    context, queue, ref, original = stored
    handled = deliver(context, "compress-fits", message_for(ref))
    assert handled.outcome is Outcome.DONE
    assert context.storage.stat(RAW, NAME) is None
    fz = context.storage.stat(RAW, NAME + ".fz")
    assert fz is not None
    restored = fits.open(io.BytesIO(context.storage.read(fz.ref)))[1].data
    assert np.array_equal(restored, fits.getdata(io.BytesIO(original)))
    assert drain(queue) == ["image-received"]  # the new .fits.fz re-enters the chain
    step = context.metadata.get("images", "PAN001_14d3bd_20181011T134333")["steps"]["compress-fits"]
    assert step["state"] == "done" and step["verified"] is True and step["original"] == "deleted"
    assert step["ratio"] > 1.5


class FailingWrites:
    """Storage whose uploads fail (as GCS does during an outage); everything else is real."""

    def __init__(self, storage) -> None:
        self.storage = storage

    def __getattr__(self, name: str):
        return getattr(self.storage, name)

    def write_new(self, *args, **kwargs):
        raise TransientError("storage unavailable for uploads")


def test_a_failing_upload_leaves_the_original(stored) -> None:
    context, _, ref, original = stored
    failing = dataclasses.replace(context, storage=FailingWrites(context.storage))
    assert deliver(failing, "compress-fits", message_for(ref)).outcome is Outcome.TRANSIENT
    assert context.storage.read(ref) == original
    assert context.storage.stat(RAW, NAME + ".fz") is None


class ReplacedWhileReading:
    """Storage in which a unit re-uploads the file while the step is compressing it."""

    def __init__(self, storage) -> None:
        self.storage = storage

    def __getattr__(self, name: str):
        return getattr(self.storage, name)

    def read(self, ref):
        data = self.storage.read(ref)
        self.storage.delete(ref)
        self.newer = self.storage.write_new(ref.bucket, ref.name, b"SIMPLE  = newer upload")
        return data


def test_a_newer_upload_of_the_same_name_is_never_deleted(stored) -> None:
    context, _, ref, _ = stored
    replacing = ReplacedWhileReading(context.storage)
    racing = dataclasses.replace(context, storage=replacing)
    handled = deliver(racing, "compress-fits", message_for(ref))
    assert handled.outcome is Outcome.DONE
    assert context.storage.read(replacing.newer) == b"SIMPLE  = newer upload"
    step = context.metadata.get("images", "PAN001_14d3bd_20181011T134333")["steps"]["compress-fits"]
    assert step["original"] == "kept: a newer upload replaced it"


def test_an_identical_existing_fz_lets_the_original_go(stored) -> None:
    context, _, ref, original = stored
    context.storage.write_new(RAW, NAME + ".fz", compress_verified(original, "x").data)
    assert deliver(context, "compress-fits", message_for(ref)).outcome is Outcome.DONE
    assert context.storage.stat(RAW, NAME) is None
    step = context.metadata.get("images", "PAN001_14d3bd_20181011T134333")["steps"]["compress-fits"]
    assert step["outputs"]["compressed"]["state"] == "identical"


def test_a_different_existing_fz_keeps_both_and_records_the_conflict(stored) -> None:
    context, _, ref, original = stored
    other = compress_verified(fits_bytes(fits.PrimaryHDU(np.zeros((5, 5), np.uint16))), "other").data
    existing = context.storage.write_new(RAW, NAME + ".fz", other)
    handled = deliver(context, "compress-fits", message_for(ref))
    assert handled.outcome is Outcome.CONFLICT and "conflict" in handled.reason
    assert context.storage.read(ref) == original
    assert context.storage.read(existing) == other
    step = context.metadata.get("images", "PAN001_14d3bd_20181011T134333")["steps"]["compress-fits"]
    assert step["state"] == "conflict"


def test_redelivery_and_concurrent_delivery_give_one_result(stored) -> None:
    context, _, ref, _ = stored
    results = []
    start = threading.Barrier(4)

    def run(i: int) -> None:
        start.wait()
        results.append(deliver(context, "compress-fits", message_for(ref), f"m-{i}").outcome)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    # One attempt holds the lease and compresses; the others are told to come back (503) or,
    # arriving after it finished, find it done.
    assert len(results) == 4 and set(results) <= {Outcome.DONE, Outcome.ALREADY_DONE, Outcome.TRANSIENT}
    assert results.count(Outcome.DONE) >= 1
    assert [i.ref.name for i in context.storage.list(RAW)] == [NAME + ".fz"]
    assert deliver(context, "compress-fits", message_for(ref), "m-late").outcome is Outcome.ALREADY_DONE


@pytest.mark.parametrize(
    ("content", "why"),
    [(b"", "not a FITS file"), (b"hello world", "not a FITS file"), ("truncated", "not a readable FITS")],
)
def test_bad_input_is_rejected_and_left_untouched(tmp_path: Path, test_data: Path, content, why: str) -> None:
    context, queue = local(tmp_path)
    if content == "truncated":
        content = (test_data / "panoptes" / "unsolved.fits").read_bytes()[:100_000]
    ref = context.storage.write_new(RAW, NAME, content)
    drain(queue)
    handled = deliver(context, "compress-fits", message_for(ref))
    assert handled.outcome is Outcome.REJECTED and why in handled.reason
    assert context.storage.read(ref) == content
    assert context.storage.stat(RAW, NAME + ".fz") is None
    image = context.metadata.get("images", "PAN001_14d3bd_20181011T134333")
    assert image["status"] == "rejected" and why in image["steps"]["compress-fits"]["error"]
