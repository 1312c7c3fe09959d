"""One conflict policy for every step: an output name that already holds different content is
kept, never overwritten, recorded the same way on the step record (``state: conflict``, the
``conflict`` text, ``outputs.{key}.state``), makes ``process`` exit 1, and ``gaps`` lists it."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from pathlib import Path

import pytest
from astropy.io import fits

from panoptes_network.adapters.backends import local_context
from panoptes_network.core.settings import Settings
from panoptes_network.drivers.cli import main
from panoptes_network.synthetic.camera_raw import raw_path, write_raw
from panoptes_network.synthetic.frames import FrameSpec, write_frame
from panoptes_network.synthetic.star_field import StarFieldSpec, frame_spec_for, make_star_field

SOMETHING_ELSE = b"SIMPLE  = T / not what the step makes"
FRAME = FrameSpec(shape=(200, 300), stars=20)
RAW_FRAME = FrameSpec(shape=(600, 900), stars=40)
STAR_FIELD = StarFieldSpec(shape=(700, 700))


def write_star_field(root: Path) -> Path:
    data, header, _ = make_star_field(STAR_FIELD)
    path = root / frame_spec_for(STAR_FIELD).path()
    path.parent.mkdir(parents=True, exist_ok=True)
    fits.PrimaryHDU(data, header).writeto(path)
    return path


def base(path: str) -> str:
    """``{unit}/{camera}/{sequence_time}/{image_time}``: the name every output derives from."""
    return path.rsplit(".", 1)[0]


@dataclasses.dataclass(frozen=True)
class Case:
    write_input: Callable[[Path], Path]
    bucket: str
    name: str  # the output name taken before the step runs
    key: str  # the output's key on the step record


CASES = {
    "compress-fits": Case(
        lambda root: write_frame(FRAME, root), "panoptes-raw-images", f"{FRAME.path()}.fz", "compressed"
    ),
    "make-rgb-fits": Case(
        lambda root: write_raw(RAW_FRAME, root), "panoptes-rgb-images", f"{base(raw_path(RAW_FRAME))}_r.fits", "r_fits"
    ),
    "subtract-background": Case(
        lambda root: write_frame(FRAME, root),
        "panoptes-backgrounds",
        f"{base(FRAME.path())}-background.fits.fz",
        "background",
    ),
    "plate-solver": Case(
        write_star_field,
        "panoptes-processed-images",
        f"{base(frame_spec_for(STAR_FIELD).path())}.png",
        "quick_look",
    ),
}


@pytest.mark.parametrize("step", list(CASES))
def test_a_conflict_is_recorded_the_same_way_fails_process_and_is_a_gap(step: str, tmp_path: Path, capsys) -> None:
    case = CASES[step]
    data_dir = tmp_path / "data"
    path = case.write_input(tmp_path / "frames")
    storage = local_context(Settings(data_dir=data_dir), data_dir)[0].storage  # its notifications go nowhere
    taken = storage.write_new(case.bucket, case.name, SOMETHING_ELSE)

    assert main(["process", "--json", "-q", "--data-dir", str(data_dir), str(path)]) == 1
    record = json.loads(capsys.readouterr().out)
    conflict = record["steps"][step]
    assert conflict["state"] == "conflict"
    assert f"{case.bucket}/{case.name} already held different content" in conflict["conflict"]
    assert conflict["outputs"][case.key] == {
        "name": f"{case.bucket}/{case.name}",
        "generation": None,
        "state": "conflict",
    }
    assert conflict["published"] == {}  # nothing passed on from a conflict
    assert storage.read(taken) == SOMETHING_ELSE  # kept, not overwritten

    assert main(["gaps", "--json", "--data-dir", str(data_dir)]) == 1
    gaps = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    listed = [gap for gap in gaps if gap["image_id"] == record["image_id"] and f"conflict in {step}" in gap["why"]]
    assert listed, gaps
