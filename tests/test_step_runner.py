"""The runner's recording rules, with steps written for the test (the real steps have their own
files): status never moves back a stage, and an overlapping loser never undoes a winner."""

from __future__ import annotations

from pathlib import Path

from panoptes_network.core.context import Context
from panoptes_network.core.messages import ObjectRef, StepMessage
from panoptes_network.core.outcomes import Outcome
from panoptes_network.core.status import ImageStatus
from panoptes_network.core.step_shell import Step, StepResult
from panoptes_network.core.topology import load_topology
from step_harness import deliver, local

IMAGE = "PAN001_14d3bd_20181011T134333"
MESSAGE = StepMessage(
    ObjectRef("panoptes-raw-images", "PAN001/14d3bd/20181011T134202/20181011T134333.fits.fz", 5),
    IMAGE,
    "PAN001_14d3bd_20181011T134202",
)
SERVICE = load_topology().service("subtract-background")


def run(context: Context, handle, message: StepMessage = MESSAGE, message_id: str = "m-1"):
    return deliver(context, SERVICE.name, message, message_id, step=Step(SERVICE.name, handle))


def test_status_moves_forward_only_but_the_latest_solve_decides(tmp_path: Path) -> None:
    context, _ = local(tmp_path)
    context.metadata.create("images", IMAGE, {"status": ImageStatus.UNSOLVED.value})
    assert run(context, lambda c, m: StepResult(status=ImageStatus.BACKGROUND_SUBTRACTED)).outcome is Outcome.DONE
    assert context.metadata.get("images", IMAGE)["status"] == "unsolved"  # a late message: not back
    run(context, lambda c, m: StepResult(status=ImageStatus.SOLVED), message_id="m-2")
    assert context.metadata.get("images", IMAGE)["status"] == "solved"
    run(context, lambda c, m: StepResult(status=ImageStatus.UNSOLVED), message_id="m-3")
    assert context.metadata.get("images", IMAGE)["status"] == "unsolved"  # the same stage: latest run
    context.metadata.merge("images", IMAGE, {"status": ImageStatus.ERROR.value})
    run(context, lambda c, m: StepResult(status=ImageStatus.RECORDED), message_id="m-4")
    assert context.metadata.get("images", IMAGE)["status"] == "recorded"  # a success replaces an error


def test_a_losing_attempts_failure_never_replaces_a_finished_record(tmp_path: Path) -> None:
    """Two attempts overlap (a lease taken over from a slow one): the winner records done, then
    the loser fails. The done record and the status stand; the loser is still answered an error."""
    context, _ = local(tmp_path)

    def winner_then_failure(context: Context, message: StepMessage) -> StepResult:
        # The winner (which took the lease over) records what the runner records for a success.
        winner = {"state": "done", "input": message.ref.identity, "message_id": "winner"}
        context.metadata.replace_field(
            "images", IMAGE, ("steps", SERVICE.name), winner, {"status": "background_subtracted"}
        )
        raise RuntimeError("the slow attempt failed after all")

    handled = run(context, winner_then_failure, message_id="loser")
    assert handled.outcome is Outcome.ERROR
    image = context.metadata.get("images", IMAGE)
    assert image["status"] == "background_subtracted"
    assert image["steps"]["subtract-background"]["state"] == "done"
    assert image["steps"]["subtract-background"]["message_id"] == "winner"

    # A failure with nothing finished before it is recorded as usual.
    other = StepMessage(ObjectRef(MESSAGE.ref.bucket, MESSAGE.ref.name, 6), IMAGE, MESSAGE.sequence_id)
    run(context, _fail, other, "m-9")
    image = context.metadata.get("images", IMAGE)
    assert (image["status"], image["steps"]["subtract-background"]["state"]) == ("error", "error")


def _fail(context: Context, message: StepMessage) -> StepResult:
    raise RuntimeError("a bug")
