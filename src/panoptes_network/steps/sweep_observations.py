"""sweep-observations: find the observations that are ready and publish ``process-observation``
once for each.

Cloud Scheduler publishes to ``observation-sweep`` every 10 minutes (a timer on the local
stack). Only pending observations are looked at (a frame arrived that no processing has seen);
each gets its status (``receiving`` or ``ready``), frame counts and times, decided on the
document as written so that a sweep never undoes what process-observation recorded meanwhile.
A repeated publish is harmless: process-observation holds a lease per observation and answers
"already done".
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

from panoptes_network.core import records
from panoptes_network.core.context import Context
from panoptes_network.core.messages import ObservationMessage
from panoptes_network.core.observations import FRAMES, Readiness, frame_summary, last_arrival, readiness
from panoptes_network.core.status import ObservationStatus
from panoptes_network.core.step import Step, StepResult, Work
from panoptes_network.core.step_records import now

NAME = "sweep-observations"
TOPIC = "process-observation"


def check(context: Context, sequence_id: str, observation: dict[str, Any], when: dt.datetime) -> Readiness:
    """Decide one pending observation and record what the sweep found (unless the observation
    is being processed, or no longer pending, by the time it is written)."""
    images = records.sequence_images(context.metadata, sequence_id)
    state = readiness(observation, images, when, context.settings.observation_quiet)
    summary = frame_summary(images)
    frames = summary.pop(FRAMES)
    fields = {**summary, "last_arrival": last_arrival(observation, images), "swept": when}

    def decide(current: dict[str, Any]) -> dict[str, Any] | None:
        if not current.get(records.PENDING) or current.get("status") == ObservationStatus.PROCESSING.value:
            return None
        return {**fields, "status": state.status.value, "reason": state.reason}

    records.decide_observation(context.metadata, sequence_id, FRAMES, frames, decide)
    return state


def sweep(context: Context, when: dt.datetime, publish: Callable[[ObservationMessage], object]) -> dict[str, int]:
    """Check every pending observation; ``publish(message)`` each ready one. Counts by status."""
    counts: dict[str, int] = {}
    for sequence_id, observation in records.pending_observations(context.metadata):
        state = check(context, sequence_id, observation, when)
        counts[state.status.value] = counts.get(state.status.value, 0) + 1
        if state.publish:
            publish(ObservationMessage(sequence_id, state.reason, state.rerun))
    return counts


def do(work: Work) -> StepResult:
    counts = sweep(work.context, now(), lambda message: work.publish(TOPIC, message))
    found = ", ".join(f"{n} {status}" for status, n in sorted(counts.items())) or "nothing pending"
    return StepResult(reason=f"swept: {found}", record={"counts": counts})


STEP = Step(NAME, do)
