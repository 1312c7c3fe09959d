"""``reprocess``: re-run chosen images through a step, embedded, with the real steps.

Two images are processed first: a small frame of the real sky (solved) and a frame of another
unit with too few stars (unsolved). Reruns must run finished steps again once per token,
replace only derived outputs, pass the token down the chain and count nothing twice.
"""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
from pathlib import Path

import pytest
from astropy.io import fits

from panoptes_network.core.messages import PushMessage
from panoptes_network.core.outcomes import Outcome
from panoptes_network.core.records import latest_step
from panoptes_network.drivers.cli import main
from panoptes_network.drivers.embedded import EmbeddedRunner
from panoptes_network.operations.reprocessing import (
    Selection,
    new_token,
    parse_since,
    plan_rerun,
    publish,
    select_images,
)
from panoptes_network.synthetic.frames import FrameSpec, write_frame
from panoptes_network.synthetic.star_field import StarFieldSpec, frame_spec_for, make_star_field
from step_harness import deliver, drain, local

SOLVED = "PAN000_SC5348_20261124T080203"
UNSOLVED = "PAN002_SC5348_20261124T080203"


def star_field(root: Path) -> Path:
    spec = StarFieldSpec(shape=(700, 700))
    data, header, _ = make_star_field(spec)
    path = root / frame_spec_for(spec).path()
    path.parent.mkdir(parents=True, exist_ok=True)
    fits.PrimaryHDU(data, header).writeto(path)
    return path


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    frames = tmp_path / "frames"
    star_field(frames)
    write_frame(FrameSpec(unit_id="PAN002", shape=(200, 300), stars=5), frames)
    data = tmp_path / "data"
    assert main(["process", "--quiet", "--data-dir", str(data), str(frames)]) == 0
    runner = EmbeddedRunner(data)
    assert runner.metadata.get("images", SOLVED)["status"] == "solved"
    assert runner.metadata.get("images", UNSOLVED)["status"] == "unsolved"
    return data


def rows_of(out: str) -> list[dict]:
    return [json.loads(line) for line in out.splitlines() if line.startswith("{")]


def counters(runner: EmbeddedRunner) -> dict:
    docs = [runner.metadata.get("units", unit) for unit in ("PAN000", "PAN002")]
    docs += [doc for _, doc in runner.metadata.list("observations")]
    return {(doc.get("unit_id"), doc.get("sequence_id")): (doc["num_images"], doc["total_exptime"]) for doc in docs}


def stamp_rows(data: Path, image_id: str) -> tuple[int, int]:
    with sqlite3.connect(data / "stamps.sqlite") as sql:
        return sql.execute(
            "SELECT COUNT(*), COUNT(DISTINCT source_id) FROM stamps WHERE image_id = ?", (image_id,)
        ).fetchone()


def test_reprocess_unsolved_reruns_only_those_and_counts_nothing_twice(data_dir: Path, capsys) -> None:
    runner = EmbeddedRunner(data_dir)
    solved_before = runner.metadata.get("images", SOLVED)
    unsolved_before = runner.metadata.get("images", UNSOLVED)["steps"]["plate-solver"]
    counts_before = counters(runner)
    capsys.readouterr()

    assert main(["reprocess", "--json", "--quiet", "--data-dir", str(data_dir), "--status", "unsolved"]) == 0

    [row, observation] = rows_of(capsys.readouterr().out)
    assert (row["image_id"], row["step"], row["result"], row["status"]) == (
        UNSOLVED,
        "plate-solver",
        "done",
        "unsolved",
    )
    sequence_id = runner.metadata.get("images", UNSOLVED)["sequence_id"]
    assert (observation["image_id"], observation["step"], observation["result"]) == (
        sequence_id,
        "process-observation",
        "done",
    ), "the re-run frame's observation is processed once more"
    after = runner.metadata.get("images", UNSOLVED)["steps"]["plate-solver"]
    assert after["rerun"].startswith("reprocess-") and after["message_id"] != unsolved_before["message_id"]
    assert after["finished"] > unsolved_before["finished"]
    assert after["input"] == unsolved_before["input"] and after["extra"] == unsolved_before["extra"]
    assert runner.metadata.get("images", SOLVED) == solved_before  # not selected: untouched
    assert counters(runner) == counts_before


def test_a_rerun_runs_a_finished_step_once_per_token_down_the_chain(data_dir: Path) -> None:
    runner = EmbeddedRunner(data_dir)
    context = runner.context
    image = context.metadata.get("images", SOLVED)
    processed = {key: context.storage.stat(*name.split("/", 1)).ref for key, name in image["outputs"].items()}
    # An output of an older software version under the quick look's name: a rerun replaces it.
    old_png = context.storage.replace(processed["quick_look"], b"an older quick look")
    stamps_before, counts_before = stamp_rows(data_dir, SOLVED), counters(runner)

    token = new_token()
    rerun = plan_rerun(context, SOLVED, image, "subtract-background", token)
    assert rerun.skipped is None and rerun.topic == "subtract-background"
    publish(context, rerun)
    handled = list(runner.drain())
    assert [(h.step, h.outcome) for h in handled] == [
        ("subtract-background", Outcome.DONE),
        ("plate-solver", Outcome.DONE),
    ]
    steps = context.metadata.get("images", SOLVED)["steps"]
    assert steps["subtract-background"]["rerun"] == steps["plate-solver"]["rerun"] == token
    assert steps["subtract-background"]["outputs"]["background"]["state"] == "identical"  # same input, same bytes
    outputs = steps["plate-solver"]["outputs"]
    assert outputs["processed"]["state"] == "identical"
    assert outputs["processed"]["generation"] == processed["processed"].generation
    assert outputs["quick_look"]["state"] == "replaced"  # different, and this run is a rerun
    png = context.storage.stat(*image["outputs"]["quick_look"].split("/", 1))
    assert png.ref.generation == outputs["quick_look"]["generation"] != old_png.generation
    assert context.storage.read(png.ref).startswith(b"\x89PNG")
    assert stamp_rows(data_dir, SOLVED) == stamps_before  # replaced, not added
    assert counters(runner) == counts_before
    assert context.metadata.get("images", SOLVED)["status"] == "solved"

    # The same rerun again (a redelivery) and the original message again: both already done.
    again = deliver(context, "subtract-background", PushMessage("again", rerun.data, rerun.attributes))
    assert again.outcome is Outcome.ALREADY_DONE
    payload = json.loads(rerun.data)
    del payload["rerun"]
    late = deliver(context, "subtract-background", PushMessage("late", json.dumps(payload).encode(), rerun.attributes))
    assert late.outcome is Outcome.ALREADY_DONE
    assert list(runner.drain()) == []  # nothing published by either


def test_reprocess_skips_images_whose_input_is_gone_and_dry_run_publishes_nothing(data_dir: Path, capsys) -> None:
    runner = EmbeddedRunner(data_dir)
    before = {image_id: doc for image_id, doc in runner.metadata.list("images")}
    capsys.readouterr()

    # Both were uploaded as .fits: compress-fits deleted each original once its .fits.fz was verified.
    assert main(["reprocess", "--json", "--quiet", "--data-dir", str(data_dir), "--step", "compress-fits"]) == 0
    rows = rows_of(capsys.readouterr().out)
    assert {row["image_id"] for row in rows} == {SOLVED, UNSOLVED}
    assert all(row["result"] == "skipped" and "no longer exists" in row["note"] for row in rows)

    assert main(["reprocess", "--json", "--quiet", "--dry-run", "--data-dir", str(data_dir), "--unit", "PAN000"]) == 0
    [row] = rows_of(capsys.readouterr().out)
    assert (row["image_id"], row["step"], row["result"], row["note"]) == (
        SOLVED,
        "plate-solver",
        "planned",
        "plate-solve",
    )
    assert {image_id: doc for image_id, doc in runner.metadata.list("images")} == before
    assert drain(runner.queue) == []


def test_selection_by_unit_status_and_date(tmp_path: Path) -> None:
    context, _ = local(tmp_path)
    taken = dt.datetime(2026, 11, 24, 8, 2, 3, tzinfo=dt.UTC)
    context.metadata.create("images", SOLVED, {"unit_id": "PAN000", "status": "solved", "time": taken})
    context.metadata.create("images", UNSOLVED, {"unit_id": "PAN002", "status": "unsolved", "time": taken})
    ids = lambda selection: [image_id for image_id, _ in select_images(context, selection)]  # noqa: E731
    assert ids(Selection()) == [SOLVED, UNSOLVED]
    assert ids(Selection(unit="PAN002")) == [UNSOLVED]
    assert ids(Selection(statuses=("solved", "unsolved"))) == [SOLVED, UNSOLVED]
    assert ids(Selection(statuses=("error",))) == []
    assert ids(Selection(since=parse_since("2026-11-24T08:02:03"))) == [SOLVED, UNSOLVED]
    assert ids(Selection(since=parse_since("20261124T080204"))) == []
    assert parse_since("2026-11-24") == dt.datetime(2026, 11, 24, tzinfo=dt.UTC)
    with pytest.raises(ValueError, match="ISO 8601"):
        parse_since("last tuesday")


def test_the_latest_step_is_the_one_that_finished_last() -> None:
    def finished(minute: int) -> dict:
        return {"state": "done", "finished": dt.datetime(2026, 11, 24, 8, minute, tzinfo=dt.UTC)}

    steps = {"record-image": finished(2), "plate-solver": finished(9), "subtract-background": finished(5)}
    assert latest_step({"steps": steps}) == "plate-solver"
    assert latest_step({"steps": {**steps, "image-received": {"state": "transient"}}}) == "plate-solver"
    assert latest_step({"steps": {}}) is None and latest_step({}) is None


def test_reprocess_of_an_empty_data_dir_says_so(tmp_path: Path, capsys) -> None:
    assert main(["reprocess", "--data-dir", str(tmp_path)]) == 2
    assert "no records" in capsys.readouterr().err


def test_a_rerun_from_image_received_carries_its_token_through_the_notification(data_dir: Path, capsys) -> None:
    runner = EmbeddedRunner(data_dir)
    counts_before = counters(runner)
    capsys.readouterr()
    assert (
        main(
            [
                "reprocess",
                "--json",
                "--quiet",
                "--data-dir",
                str(data_dir),
                "--unit",
                "PAN002",
                "--step",
                "image-received",
            ]
        )
        == 0
    )
    [row, observation] = rows_of(capsys.readouterr().out)
    assert (row["image_id"], row["result"], row["status"]) == (UNSOLVED, "done", "unsolved")
    assert (observation["step"], observation["result"]) == ("process-observation", "done")
    steps = runner.metadata.get("images", UNSOLVED)["steps"]
    tokens = {
        steps[step].get("rerun") for step in ("image-received", "record-image", "subtract-background", "plate-solver")
    }
    assert len(tokens) == 1 and None not in tokens
    assert steps["compress-fits"].get("rerun") is None  # not downstream of the .fits.fz
    assert counters(runner) == counts_before


def test_cloud_commands_say_what_is_wrong_in_one_line(tmp_path: Path, monkeypatch, capsys) -> None:
    for key in ("FIRESTORE_EMULATOR_HOST", "STORAGE_EMULATOR_HOST", "PUBSUB_EMULATOR_HOST"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(tmp_path / "missing.json"))
    assert main(["reprocess", "--cloud", "--quiet"]) == 1
    err = capsys.readouterr().err
    assert "no Google credentials" in err and "gcloud auth application-default login" in err

    monkeypatch.setenv("FIRESTORE_EMULATOR_HOST", "127.0.0.1:1")  # nothing listens there
    assert main(["reprocess", "--cloud", "--quiet"]) == 1
    assert "Firestore unavailable" in capsys.readouterr().err
