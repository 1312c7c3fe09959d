"""``panoptes-network explore``'s refusals: each is one line that says what to do, status 1, and
nothing written into the data directory. (Serving a processed night: tests/test_explorer_browser.py.)"""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from panoptes_network.drivers.cli import main


def test_a_data_dir_without_records_is_refused_with_what_to_run(tmp_path: Path, capsys) -> None:
    assert main(["explore", "--data-dir", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert "no processed data in" in err and "bin/demo" in err and "--data-dir" in err
    assert list(tmp_path.iterdir()) == []


def test_a_port_in_use_is_refused_with_the_option_to_choose_another(tmp_path: Path, capsys) -> None:
    (tmp_path / "metadata.sqlite").touch()
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert main(["explore", "--data-dir", str(tmp_path), "--port", str(port)]) == 1
    err = capsys.readouterr().err
    assert f"cannot listen on 127.0.0.1:{port}" in err and "--port" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["metadata.sqlite"]


@pytest.mark.parametrize("port", ["-1", "70000"])
def test_a_port_out_of_range_is_refused(tmp_path: Path, capsys, port: str) -> None:
    (tmp_path / "metadata.sqlite").touch()
    assert main(["explore", "--data-dir", str(tmp_path), "--port", port]) == 1
    assert "is not between 0 and 65535" in capsys.readouterr().err
