"""The step shell's rules, with steps written for the test (the real steps have their own files):
status never moves back a stage, an overlapping loser never undoes a winner, a finished input is
answered at once, a vanished input is a recorded rejection, and a step publishes only where the
topology says it may."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from panoptes_network.core.context import Context
from panoptes_network.core.messages import ObjectRef, StepMessage
from panoptes_network.core.outcomes import Outcome
from panoptes_network.core.status import ImageStatus
from panoptes_network.core.step import Step, StepResult, Work
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


def rerun(token: str) -> StepMessage:
    """The same input asked for again (a finished input runs again only under a new token)."""
    return dataclasses.replace(MESSAGE, rerun=token)


def test_status_moves_forward_only_but_the_latest_solve_decides(tmp_path: Path) -> None:
    context, _ = local(tmp_path)
    context.metadata.create("images", IMAGE, {"status": ImageStatus.UNSOLVED.value})
    assert run(context, lambda work: StepResult(status=ImageStatus.BACKGROUND_SUBTRACTED)).outcome is Outcome.DONE
    assert context.metadata.get("images", IMAGE)["status"] == "unsolved"  # a late message: not back
    run(context, lambda work: StepResult(status=ImageStatus.SOLVED), rerun("r-2"), "m-2")
    assert context.metadata.get("images", IMAGE)["status"] == "solved"
    run(context, lambda work: StepResult(status=ImageStatus.UNSOLVED), rerun("r-3"), "m-3")
    assert context.metadata.get("images", IMAGE)["status"] == "unsolved"  # the same stage: latest run
    context.metadata.merge("images", IMAGE, {"status": ImageStatus.ERROR.value})
    run(context, lambda work: StepResult(status=ImageStatus.RECORDED), rerun("r-4"), "m-4")
    assert context.metadata.get("images", IMAGE)["status"] == "recorded"  # a success replaces an error


def test_a_losing_attempts_failure_never_replaces_a_finished_record(tmp_path: Path) -> None:
    """Two attempts overlap (a lease taken over from a slow one): the winner records done, then
    the loser fails. The done record and the status stand; the loser is still answered an error."""
    context, _ = local(tmp_path)

    def winner_then_failure(work: Work) -> StepResult:
        # The winner (which took the lease over) records what the runner records for a success.
        winner = {"state": "done", "input": work.message.ref.identity, "message_id": "winner"}
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


def _fail(work: Work) -> StepResult:
    raise RuntimeError("a bug")


def test_a_finished_input_is_answered_at_once_and_a_new_extra_runs_again(tmp_path: Path) -> None:
    context, _ = local(tmp_path)
    calls = []

    def count(work: Work) -> StepResult:
        calls.append(work.message.extra)
        return StepResult()

    assert run(context, count).outcome is Outcome.DONE
    assert run(context, count, message_id="m-2").outcome is Outcome.ALREADY_DONE  # a redelivery
    told_more = dataclasses.replace(MESSAGE, extra={"background": {"generation": 7}})
    assert run(context, count, told_more, "m-3").outcome is Outcome.DONE
    assert calls == [{}, {"background": {"generation": 7}}]


def test_a_vanished_input_is_a_recorded_rejection(tmp_path: Path) -> None:
    context, _ = local(tmp_path)
    handled = run(context, lambda work: StepResult(reason=str(len(work.read()))))
    assert (handled.outcome, handled.error_class) == (Outcome.REJECTED, "NotFound")
    step = context.metadata.get("images", IMAGE)["steps"][SERVICE.name]
    assert step["state"] == "rejected" and step["error"] == f"input {MESSAGE.ref.identity} no longer exists"


@pytest.mark.parametrize("topic", ["record-image", "no-such-topic"])
def test_publishing_to_a_topic_the_topology_does_not_list_for_the_step_fails(tmp_path: Path, topic: str) -> None:
    context, queue = local(tmp_path)
    assert "plate-solve" in SERVICE.publishes and topic not in SERVICE.publishes

    def publish_elsewhere(work: Work) -> StepResult:
        work.publish(topic, MESSAGE)
        return StepResult()

    handled = run(context, publish_elsewhere)
    assert handled.outcome is Outcome.ERROR and handled.error_class == "UnlistedTopic", handled
    assert len(queue) == 0
    assert context.metadata.get("images", IMAGE)["steps"][SERVICE.name]["state"] == "error"

    def publish_listed(work: Work) -> StepResult:
        work.context.publish("plate-solve", MESSAGE)  # the context a step sees is held to the same list
        return StepResult()

    assert run(context, publish_listed, rerun("r-1"), "m-2").outcome is Outcome.DONE
    assert len(queue) == 1
    assert context.metadata.get("images", IMAGE)["steps"][SERVICE.name]["published"] == {"plate-solve": "local-1"}
