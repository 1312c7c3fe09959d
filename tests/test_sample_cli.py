"""``panoptes-network sample --night``: the demo's night is a real observation a unit would upload."""

from __future__ import annotations

from pathlib import Path

import pytest
from astropy.io import fits

from panoptes_network.drivers.cli import main


def test_night_writes_pointing_science_frames_and_a_dark(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["sample", "--night", "3", "--out", str(tmp_path)]) == 0
    folder = Path(capsys.readouterr().out.strip())
    assert folder == tmp_path / "PAN000/SC5348/20261124T080000"
    files = sorted(folder.iterdir())
    assert "pointing01.fits.fz" in [f.name for f in files]
    headers = {f.name: fits.getheader(f, 1) for f in files}
    assert headers["pointing01.fits.fz"]["POINTING"] is True
    darks = [name for name, header in headers.items() if header.get("IMAGETYP") == "Dark Frame"]
    science = [name for name, header in headers.items() if "POINTING" not in header and "IMAGETYP" not in header]
    assert len(darks) == 1 and len(science) == 3
    assert {fits.getdata(folder / name, 1).shape for name in science} == {(700, 1000)}


@pytest.mark.parametrize("frames", ["0", "-2", "many"])
def test_night_refuses_a_frame_count_that_is_not_a_positive_number(
    frames: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as stopped:
        main(["sample", "--night", frames, "--out", str(tmp_path)])
    assert stopped.value.code == 2
    assert "argument --night" in capsys.readouterr().err
    assert not any(tmp_path.iterdir())
