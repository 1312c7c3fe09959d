"""record-image: header to metadata from a few ranged reads, exact counters, then the next step."""

from __future__ import annotations

import dataclasses
import datetime as dt
import threading
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits

from panoptes_network.adapters.firestore_metadata import FirestoreMetadata
from panoptes_network.core.context import Context
from panoptes_network.core.geo_point import GeoPoint
from panoptes_network.core.outcomes import Outcome
from panoptes_network.science.fits_codec import compressed_file
from panoptes_network.science.fits_header import read_image_header
from panoptes_network.synthetic.frames import FrameSpec, make_frame
from step_harness import RAW, deliver, drain, local, message_for

SEQUENCE = "PAN001/XXXXXX/20160909T081152"


class CountingStorage:
    """Real storage that counts what is read (ranged reads, and whole-object reads)."""

    def __init__(self, storage) -> None:
        self.storage = storage
        self.range_bytes = 0
        self.whole_reads = 0

    def __getattr__(self, name: str):
        return getattr(self.storage, name)

    def read(self, ref):
        self.whole_reads += 1
        return self.storage.read(ref)

    def read_range(self, ref, start, end):
        data = self.storage.read_range(ref, start, end)
        self.range_bytes += len(data)
        return data


def store(context: Context, name: str, data: bytes):
    ref = context.storage.write_new(RAW, name, data)
    return ref


def test_the_real_header_is_recorded_with_parsed_values(tmp_path: Path, test_data: Path) -> None:
    context, queue = local(tmp_path)
    ref = store(context, f"{SEQUENCE}/20160909T081522.fits.fz", (test_data / "panoptes/solved.fits.fz").read_bytes())
    drain(queue)
    handled = deliver(context, "record-image", message_for(ref))
    assert handled.outcome is Outcome.DONE
    image = context.metadata.get("images", "PAN001_XXXXXX_20160909T081522")
    assert image["status"] == "recorded"
    assert image["exptime"] == 120.4 and image["field_name"] == "KIC 8462852"
    assert image["camera"]["temperature"] == 13.0
    assert image["camera"]["circle_of_confusion_mm"] == 0.019
    assert image["camera"]["measured_rggb"] == {"r": 474.0, "g1": 1024.0, "g2": 1024.0, "b": 718.0}
    assert image["camera"]["white_level_n"] == 11765.0 and image["camera"]["red_balance"] == 2.019531
    assert image["mount"] == {"ra": 301.56439, "dec": 44.456875, "ha": pytest.approx(1.03388073074251)}
    assert image["date_obs"] == dt.datetime(2016, 9, 9, 8, 14, 34, tzinfo=dt.UTC)
    assert image["ra_image"] == pytest.approx(303.2064, abs=1e-3)
    assert image["dec_image"] == pytest.approx(46.0174, abs=1e-3)
    assert image["bucket_path"] == f"{RAW}/{ref.name}" and image["generation"] == ref.generation
    flat = repr(image)
    assert "012070048413" not in flat and "HA0028608" not in flat  # CAMSN, INTSN
    assert "_RVAL1" not in flat and "_TYPE1" not in flat  # junk keywords
    unit = context.metadata.get("units", "PAN001")
    assert unit["location"] == GeoPoint(19.54, -155.58) and unit["elevation"] == 3400.0
    observation = context.metadata.get("observations", "PAN001_XXXXXX_20160909T081152")
    assert observation["software_version"] == "POCSv0.1.1" and observation["iso"] == 100.0
    assert observation["num_images"] == 1 and observation["total_exptime"] == 120.4
    assert image["frame_type"] == "science" and observation["num_science_images"] == 1
    assert drain(queue) == ["subtract-background"]


def test_missing_optional_keywords_are_null_not_a_crash(tmp_path: Path, test_data: Path) -> None:
    context, queue = local(tmp_path)
    ref = store(context, f"{SEQUENCE}/20160909T081314.fits", (test_data / "panoptes/noheader.fits").read_bytes())
    handled = deliver(context, "record-image", message_for(ref))
    assert handled.outcome is Outcome.DONE
    image = context.metadata.get("images", "PAN001_XXXXXX_20160909T081314")
    assert image["exptime"] is None and image["ra_image"] is None and image["camera"] == {}
    assert context.metadata.get("units", "PAN001") == {
        "unit_id": "PAN001",
        "name": "PAN001",
        "num_images": 1,
        "num_science_images": 1,
        "total_exptime": 0.0,
    }


@pytest.fixture(scope="module")
def big_fz() -> bytes:
    """A realistic full frame compressed (about 20 MB)."""
    data, header = make_frame(FrameSpec())
    return compressed_file(data, header)


def test_a_large_fz_costs_only_a_few_header_blocks(tmp_path: Path, big_fz: bytes) -> None:
    assert len(big_fz) > 15_000_000
    context, queue = local(tmp_path)
    ref = store(context, "PAN000/SC5348/20261124T080000/20261124T080203.fits.fz", big_fz)
    counting = CountingStorage(context.storage)
    metered = dataclasses.replace(context, storage=counting)
    assert deliver(metered, "record-image", message_for(ref)).outcome is Outcome.DONE
    assert counting.whole_reads == 0
    assert 0 < counting.range_bytes < 64 * 1024
    assert context.metadata.get("images", "PAN000_SC5348_20261124T080203")["exptime"] == 120.0


def test_header_reading_matches_astropy_and_refuses_junk(test_data: Path) -> None:
    for name in ("solved.fits.fz", "unsolved.fits", "tiny.fits"):
        data = (test_data / "panoptes" / name).read_bytes()
        header, _, needed = read_image_header(lambda a, b, data=data: data[a:b], name)
        assert needed == len(data)  # the whole file, to the block
        reference = fits.getheader(test_data / "panoptes" / name, ext=1 if name.endswith(".fz") else 0)
        assert {k: header[k] for k in ("NAXIS1", "NAXIS2", "EXPTIME", "SEQID")} == {
            k: reference[k] for k in ("NAXIS1", "NAXIS2", "EXPTIME", "SEQID")
        }
    with pytest.raises(Exception, match="not a FITS file"):
        read_image_header(lambda a, b: b"GIF89a"[a:b], "junk")


def test_a_header_of_ten_thousand_cards_is_read(tmp_path: Path) -> None:
    header = fits.Header([(f"KEY{i}", i) for i in range(10_000)])
    header["EXPTIME"] = 30.0
    hdu = fits.PrimaryHDU(np.zeros((4, 4), np.uint16), header)
    path = tmp_path / "big.fits"
    hdu.writeto(path)
    data = path.read_bytes()
    parsed, read, _ = read_image_header(lambda a, b: data[a:b], "big")
    assert parsed["EXPTIME"] == 30.0 and parsed["KEY9999"] == 9999 and read >= 800_000


@pytest.mark.parametrize(("content", "why"), [(b"", "not a FITS file"), (b"SIMPLE  =" + b" " * 3000, "END")])
def test_bad_files_are_rejected(tmp_path: Path, content: bytes, why: str) -> None:
    context, queue = local(tmp_path)
    ref = store(context, f"{SEQUENCE}/20160909T081522.fits.fz", content)
    drain(queue)
    handled = deliver(context, "record-image", message_for(ref))
    assert handled.outcome is Outcome.REJECTED and why in handled.reason
    assert drain(queue) == []
    assert context.metadata.get("images", "PAN001_XXXXXX_20160909T081522")["status"] == "rejected"


def deliver_many(context: Context, messages, copies: int) -> list[Outcome]:
    start = threading.Barrier(len(messages) * copies)
    outcomes: list[Outcome] = []

    def run(message, i) -> None:
        start.wait()
        outcomes.append(deliver(context, "record-image", message, f"m-{i}").outcome)

    threads = [threading.Thread(target=run, args=(m, i)) for i, m in enumerate(messages * copies)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    return outcomes


def reruns(messages: list) -> list:
    """The same messages as two ``reprocess`` runs would publish them (each token runs the step again)."""
    return [dataclasses.replace(m, rerun=f"reprocess-{i % 2}") for i, m in enumerate(messages * 2)]


def frames(context: Context, count: int) -> list:
    refs = []
    for i in range(count):
        spec = FrameSpec(shape=(40, 60), stars=2, exposure_offset_s=100 + i, exptime=30.0 + i)
        data, header = make_frame(spec)
        refs.append(store(context, spec.path() + ".fz", compressed_file(data, header)))
    return refs


def check_counts(context: Context, count: int) -> None:
    total = sum(30.0 + i for i in range(count))
    observation = context.metadata.get("observations", "PAN000_SC5348_20261124T080000")
    assert observation["num_images"] == count and observation["total_exptime"] == pytest.approx(total)
    unit = context.metadata.get("units", "PAN000")
    assert unit["num_images"] == count and unit["total_exptime"] == pytest.approx(total)


def test_counters_are_exact_under_redelivery_and_concurrency_sqlite(tmp_path: Path) -> None:
    context, queue = local(tmp_path)
    messages = [message_for(ref) for ref in frames(context, 3)]
    drain(queue)
    outcomes = deliver_many(context, messages, copies=4)
    assert set(outcomes) <= {Outcome.DONE, Outcome.ALREADY_DONE, Outcome.TRANSIENT}  # losers of the lease retry
    check_counts(context, 3)
    deliver_many(context, messages, copies=1)  # a late redelivery of all of them
    check_counts(context, 3)
    mixed = deliver_many(context, messages + reruns(messages), copies=2)  # reprocessing mixed with redeliveries
    assert Outcome.DONE in mixed  # the reruns really ran the step again
    check_counts(context, 3)


@pytest.mark.stack
def test_counters_are_exact_under_redelivery_and_concurrency_firestore(tmp_path: Path, firestore_project: str) -> None:
    local_stand_ins, queue = local(tmp_path)
    context = dataclasses.replace(local_stand_ins, metadata=FirestoreMetadata(firestore_project))
    messages = [message_for(ref) for ref in frames(context, 3)]
    drain(queue)
    outcomes = deliver_many(context, messages, copies=5)
    assert set(outcomes) <= {Outcome.DONE, Outcome.ALREADY_DONE, Outcome.TRANSIENT}, outcomes
    check_counts(context, 3)
    deliver_many(context, messages, copies=2)
    check_counts(context, 3)
    mixed = deliver_many(context, messages + reruns(messages), copies=2)  # reprocessing mixed with redeliveries
    assert Outcome.DONE in mixed  # the reruns really ran the step again
    check_counts(context, 3)


def test_header_command_prints_json(test_data: Path) -> None:
    import json
    import subprocess
    import sys

    result = subprocess.run(
        [sys.executable, "-m", "panoptes_network", "header", str(test_data / "panoptes/solved.fits.fz")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    header = json.loads(result.stdout)
    assert header["NAXIS1"] == 700 and header["EXPTIME"] == 120.4 and "ZBITPIX" not in header


def test_the_frame_type_is_recorded_and_counted_per_type(tmp_path: Path) -> None:
    context, queue = local(tmp_path)
    spec = FrameSpec(shape=(40, 60), stars=2)
    sequence = spec.path().rsplit("/", 1)[0]
    data, science = make_frame(spec)
    pointing = science.copy()
    pointing["POINTING"] = True
    dark = science.copy()
    dark["IMAGETYP"], dark["DARK"] = "Dark Frame", True
    inputs = {
        f"{sequence}/20261124T080203.fits.fz": science,
        f"{sequence}/pointing00.fits.fz": science,  # by name
        f"{sequence}/20261124T080100.fits.fz": pointing,  # by header
        f"{sequence}/20261124T081000.fits.fz": dark,
    }
    refs = [store(context, name, compressed_file(data, header)) for name, header in inputs.items()]
    drain(queue)  # the storage notifications
    for ref in refs:
        assert deliver(context, "record-image", message_for(ref)).outcome is Outcome.DONE
    types = {doc_id: image["frame_type"] for doc_id, image in context.metadata.list("images")}
    assert types == {
        "PAN000_SC5348_20261124T080203": "science",
        "PAN000_SC5348_pointing00": "pointing",
        "PAN000_SC5348_20261124T080100": "pointing",
        "PAN000_SC5348_20261124T081000": "dark",
    }
    for counted in (context.metadata.get("observations", "PAN000_SC5348_20261124T080000"),
                    context.metadata.get("units", "PAN000")):  # fmt: skip
        assert counted["num_images"] == 4
        assert (counted["num_science_images"], counted["num_pointing_images"], counted["num_dark_images"]) == (1, 2, 1)
        assert "num_flat_images" not in counted
    assert drain(queue) == ["subtract-background"] * 4  # pointing images and darks go on like any frame
