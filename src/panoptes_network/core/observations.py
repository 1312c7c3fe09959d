"""When an observation is complete, and what its record says about its frames: pure decisions on
the documents, shared by the router, the sweep, process-observation, ``gaps`` and the CLI.

An observation (the frames of one ``sequence_id``) is ready when every frame it has has ended
its chain (solved, unsolved or rejected) and either the unit uploaded its end marker
(``names.END_MARKER``) or no frame arrived for the quiet period. A frame that arrives after
the observation was processed makes it pending again; the sweep then publishes it once more
with a rerun token named after that arrival, so the products are replaced, never duplicated.
A run that makes fewer products than the one before (``not_enough_frames`` after
``processed``) retires the earlier ones it did not make: recorded with its outcome, then deleted
at the generation recorded.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from panoptes_network.core.messages import ObjectRef
from panoptes_network.core.records import EPOCH, PENDING
from panoptes_network.core.status import FINAL_IMAGE_STATUSES, FrameType, ObservationStatus

FORCED = "forced"  # the reason of a message a person sent (``observations process``): no waiting
END_MARKER_REASON = "end marker"
FRAMES = "frames"  # the observation's field of frame counts
GAP_AFTER = dt.timedelta(hours=1)  # ready this long beyond the quiet period and still not processed: a gap
PRODUCT_OBJECTS = "product_objects"  # of ``processing``: the products it stored, as bucket/name#generation
RETIRED = "retired_products"  # earlier products the latest run did not make, until they are deleted

Images = Sequence[tuple[str, Mapping[str, Any]]]


def _time(value: Any) -> dt.datetime | None:
    return value if isinstance(value, dt.datetime) else None


def last_arrival(observation: Mapping[str, Any], images: Images) -> dt.datetime | None:
    """When the latest frame arrived (routed by image-received)."""
    times = [t for t in (_time(observation.get("last_arrival")), *(_time(i.get("received")) for _, i in images)) if t]
    return max(times, default=None)


def frame_summary(images: Images) -> dict[str, Any]:
    """The observation's frame fields: ``frames`` (count, by status, by frame type; one map, replaced
    as a whole) and the first and last frame time."""
    times = [t for _, image in images if (t := _time(image.get("time")))]
    return {
        FRAMES: {
            "count": len(images),
            "by_status": dict(Counter(str(image.get("status")) for _, image in images)),
            "by_type": dict(Counter(str(image.get("frame_type") or FrameType.SCIENCE.value) for _, image in images)),
        },
        "first_frame_time": min(times, default=None),
        "last_frame_time": max(times, default=None),
    }


def unfinished(images: Images) -> list[str]:
    """The frames still in the chain (their observation waits for them)."""
    return [image_id for image_id, image in images if image.get("status") not in FINAL_IMAGE_STATUSES]


def is_science(image: Mapping[str, Any]) -> bool:
    """A science frame (no frame type: science), not a pointing image, dark or flat."""
    return (image.get("frame_type") or FrameType.SCIENCE.value) == FrameType.SCIENCE.value


def usable(image: Mapping[str, Any]) -> bool:
    """A frame process-observation uses: solved, and a science frame."""
    return image.get("status") == "solved" and is_science(image)


def was_processed(observation: Mapping[str, Any]) -> bool:
    """Whether process-observation ever finished it (so products may exist, and a rerun replaces them)."""
    status = observation.get("status")
    return status in {s.value for s in ObservationStatus if s.final} or bool(observation.get("processed"))


def late_token(arrival: dt.datetime) -> str:
    """The rerun token for re-processing after a frame that arrived at ``arrival``: the same for
    every sweep that sees it, so repeated publishes are redeliveries, not new runs."""
    return f"late-frame-{arrival.astimezone(dt.UTC):%Y%m%dT%H%M%S%f}"


@dataclasses.dataclass(frozen=True)
class Readiness:
    """What the sweep makes of one observation: its status now, and whether to publish it."""

    status: ObservationStatus
    reason: str
    publish: bool = False
    rerun: str | None = None


def readiness(observation: Mapping[str, Any], images: Images, now: dt.datetime, quiet: dt.timedelta) -> Readiness:
    """Whether a pending observation is ready (see the module's docstring)."""
    if not images:
        return Readiness(ObservationStatus.RECEIVING, "no frames recorded yet")
    waiting = unfinished(images)
    if waiting:
        return Readiness(ObservationStatus.RECEIVING, f"{len(waiting)} of {len(images)} frames still in the chain")
    arrival = last_arrival(observation, images) or EPOCH
    if observation.get("end_marker"):
        why = END_MARKER_REASON
    elif now - arrival >= quiet:
        why = f"no frame for {int((now - arrival).total_seconds() // 60)} min (quiet period {quiet})"
    else:
        return Readiness(ObservationStatus.RECEIVING, f"last frame arrived {arrival:%Y-%m-%dT%H:%M:%SZ}; quiet {quiet}")
    if was_processed(observation):
        return Readiness(ObservationStatus.READY, f"a frame arrived after processing; {why}", True, late_token(arrival))
    return Readiness(ObservationStatus.READY, why, True)


def pending_after(observation: Mapping[str, Any], arrival_seen: dt.datetime | None) -> bool:
    """After processing with the frames that had arrived by ``arrival_seen``: whether a frame
    arrived meanwhile (the observation stays pending, and the sweep processes it again)."""
    latest = _time(observation.get("last_arrival"))
    return latest is not None and (arrival_seen is None or latest > arrival_seen)


def recorded_products(observation: Mapping[str, Any]) -> list[str]:
    """The product objects process-observation recorded: its latest run's, and those it retired
    but has not deleted yet (a crash in between)."""
    latest = (observation.get("processing") or {}).get(PRODUCT_OBJECTS) or []
    return [*latest, *(observation.get(RETIRED) or [])]


def retired(recorded: Iterable[str], made: Iterable[ObjectRef]) -> list[str]:
    """The recorded objects under names the latest run did not write: its own products replaced or
    reused the others (an object under a name it wrote is never retired, whatever its generation)."""
    names = {(ref.bucket, ref.name) for ref in made}
    refs = {ObjectRef.from_identity(identity) for identity in recorded}
    return sorted(ref.identity for ref in refs if (ref.bucket, ref.name) not in names)


def already_done(observation: Mapping[str, Any] | None, rerun: str | None) -> bool:
    """Whether process-observation has nothing to do: it finished, no frame arrived since, and a
    rerun's token is the one recorded."""
    if not observation or not was_processed(observation) or observation.get(PENDING):
        return False
    return rerun is None or (observation.get("processing") or {}).get("rerun") == rerun


def is_gap(observation: Mapping[str, Any], images: Images, now: dt.datetime, quiet: dt.timedelta) -> str | None:
    """Why a pending observation counts as a gap (ready long ago, never processed), or None."""
    if not observation.get(PENDING):
        return None
    state = readiness(observation, images, now, quiet)
    arrival = last_arrival(observation, images) or EPOCH
    if state.publish and now - arrival >= quiet + GAP_AFTER:
        return f"ready since about {arrival + quiet:%Y-%m-%dT%H:%M:%SZ} and not processed ({state.reason})"
    return None


def field_of(header: Mapping[str, Any], observation: Mapping[str, Any]) -> dict[str, Any]:
    """The field watched: FIELD, and FIELD_RA/FIELD_DEC when the header has them, else the mount's RA/Dec."""
    name = header.get("FIELD") or observation.get("field_name")
    if header.get("FIELD_RA") is not None and header.get("FIELD_DEC") is not None:
        ra, dec, source = header["FIELD_RA"], header["FIELD_DEC"], "FIELD_RA/FIELD_DEC"
    elif header.get("RA-MNT") is not None and header.get("DEC-MNT") is not None:
        ra, dec, source = header["RA-MNT"], header["DEC-MNT"], "mount"
    else:
        ra, dec, source = observation.get("ra"), observation.get("dec"), "mount"
    return {
        key: value
        for key, value in {
            "name": str(name) if name else None,
            "ra": _degrees(ra),
            "dec": _degrees(dec),
            "source": source if ra is not None else None,
        }.items()
        if value is not None
    }


def _degrees(value: Any) -> float | None:
    try:
        return round(float(value), 6)
    except (TypeError, ValueError):
        return None
