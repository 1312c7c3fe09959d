"""The read model of the public data explorer: records and buckets as plain JSON-able dicts.

Every view (the HTML pages, the JSON API, ``panoptes-network search`` and ``download``) reads
through ``Archive``, which sees only a ``Context``'s metadata store and storage: the same code
on the embedded store and on Firestore with Cloud Storage. It never writes.

Searches read every observation record and filter here: the stores answer equality queries only
(``MetadataStore.list``), and an archive of a few thousand observations is a few hundred kB.
Results are ordered newest first; a cursor names the last item given (start time and sequence id),
so a page is stable while observations are added.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import datetime as dt
import json
import math
from collections.abc import Iterator, Mapping
from functools import partial
from typing import Any, Literal

from panoptes_network.adapters.storage import ObjectInfo
from panoptes_network.core import records
from panoptes_network.core.context import Context
from panoptes_network.core.errors import BadInput
from panoptes_network.core.names import sequence_folder
from panoptes_network.explorer.json_values import iso_time, jsonable
from panoptes_network.explorer.search_filters import BadQuery, Cone, SearchFilters
from panoptes_network.explorer.stored_files import Buckets, FileLocation, content_type
from panoptes_network.science.fits_header import read_image_header
from panoptes_network.science.header_metadata import header_as_json

FileSet = Literal["raw", "processed", "products"]
FILE_SETS: tuple[FileSet, ...] = ("raw", "processed", "products")
# The observation's field make-lightcurves writes (resources/status.md): a map with its own
# products, the target's lightcurve summary and the transit candidates.
LIGHTCURVES = "lightcurves"
LIGHTCURVE_BOOKKEEPING = (
    "candidates",
    "products",
    "product_objects",
    "stamp_cube_generation",
    "rerun",
    "started",
    "finished",
)


@dataclasses.dataclass(frozen=True)
class Page:
    """One page of results; ``next_cursor`` asks for the next one (None: this is the last)."""

    items: list[dict[str, Any]]
    next_cursor: str | None

    def as_json(self) -> dict[str, Any]:
        return {"items": self.items, "next_cursor": self.next_cursor}


class Archive:
    """Read-only views of the records and buckets of one ``Context``."""

    def __init__(self, context: Context) -> None:
        self.metadata = context.metadata
        self.storage = context.storage
        self.limits = context.settings.limits
        self.buckets = Buckets(context.settings.buckets)

    def stats(self) -> dict[str, Any]:
        """Network totals: ``units``, ``observations``, ``frames`` (every frame recorded) and
        ``exposure_hours`` (their exposure time), from the units' exact counters."""
        units = [unit for _, unit in self.metadata.list(records.UNITS)]
        # keyword names: these are JSON keys, not the collections records.py names
        return dict(
            units=len(units),
            observations=len(records.observations(self.metadata)),
            frames=int(sum(unit.get("num_images") or 0 for unit in units)),
            exposure_hours=round(sum(unit.get("total_exptime") or 0.0 for unit in units) / 3600, 3),
        )

    def search(self, filters: SearchFilters) -> Page:
        """Observation summaries (``summary``) matching ``filters``, newest first, one page."""
        found = sorted(
            (order_key(seq, record), seq, record)
            for seq, record in self._observations(filters.unit)
            if matches(record, filters)
        )
        after = decode_cursor(filters.cursor) if filters.cursor else None
        remaining = [(key, seq, record) for key, seq, record in found if after is None or key > after]
        page = remaining[: filters.limit]
        items = [self.summary(seq, record) for _, seq, record in page]
        more = len(remaining) > filters.limit
        return Page(items, encode_cursor(page[-1][0]) if more else None)

    def summary(self, sequence_id: str, record: Mapping[str, Any]) -> dict[str, Any]:
        """An observation in a list: ``sequence_id``, ``unit_id``, ``camera_id``, ``status``,
        ``reasons`` (sentences), ``start_time``, ``end_time`` (ISO), ``frames`` (image status ->
        count), ``frame_count``, ``science_frames``, ``usable_frames`` (those the products used;
        None before processing), ``exposure_seconds``, ``field`` {name, ra, dec}, ``thumbnail``
        (the stack preview's URL path, or None)."""
        frames = record.get("frames") or {}
        processing = record.get("processing") or {}
        products = record.get("products") or {}
        return {
            "sequence_id": sequence_id,
            "unit_id": record.get("unit_id"),
            "camera_id": record.get("camera_id"),
            "status": record.get("status"),
            "reasons": reasons(record),
            "start_time": iso_time(start_time(record)),
            "end_time": iso_time(record.get("last_frame_time")),
            "frames": dict(frames.get("by_status") or {}),
            "frame_count": frames.get("count", record.get("num_images")),
            "science_frames": science_frames(record),
            "usable_frames": processing.get("frames_used"),
            "exposure_seconds": record.get("total_exptime"),
            "field": field(record),
            "thumbnail": self.buckets.url(products.get("stack_png")),
        }

    def observation(self, sequence_id: str) -> dict[str, Any] | None:
        """One observation: its ``summary``, ``record`` (every field, as JSON), ``products``
        ([{key, name, url, size, content_type}], size None when the object is gone), ``frames``
        ([{image_id, time, status, frame_type, excluded (the reason, or None), quick_look_url,
        processed_url, raw_url}], by time); when make-lightcurves ran, ``lightcurve`` (its
        summary: target, precision, comparison stars, with ``plot_url`` and ``table_url``) and
        ``candidates`` (transit candidates, best first). None when there is no such
        observation. ``BadQuery`` for a malformed id."""
        check_sequence_id(sequence_id)
        record = records.observation(self.metadata, sequence_id)
        if record is None:
            return None
        frames = [
            self.frame(image_id, image) for image_id, image in records.sequence_images(self.metadata, sequence_id)
        ]
        view = {
            **self.summary(sequence_id, record),
            "record": jsonable(record),
            "products": [self.product(key, path) for key, path in sorted(product_paths(record).items())],
            "frames": sorted(frames, key=lambda frame: (frame["time"] or "", frame["image_id"])),
        }
        lightcurves = record.get(LIGHTCURVES) or {}
        if lightcurves:
            made = lightcurves.get("products") or {}
            summary = {key: value for key, value in lightcurves.items() if key not in LIGHTCURVE_BOOKKEEPING}
            view["lightcurve"] = jsonable(summary) | {
                "plot_url": self.buckets.url(made.get("lightcurve_plot")),
                "table_url": self.buckets.url(made.get("lightcurves")),
            }
            view["candidates"] = jsonable(lightcurves.get("candidates") or [])
        return view

    def frame(self, image_id: str, image: Mapping[str, Any]) -> dict[str, Any]:
        outputs = image.get("outputs") or {}
        return {
            "image_id": image_id,
            "time": iso_time(image.get("time")),
            "status": image.get("status"),
            "frame_type": image.get("frame_type"),
            "excluded": image.get("observation_excluded"),
            "quick_look_url": self.buckets.url(outputs.get("quick_look")),
            "processed_url": self.buckets.url(outputs.get("processed")),
            "raw_url": self.buckets.url(image.get("bucket_path")),
        }

    def product(self, key: str, path: str) -> dict[str, Any]:
        location = self.buckets.from_path(path)
        info = self.stored(location) if location else None
        return {
            "key": key,
            "name": location.name if location else path,
            "url": location.url if location else None,
            "size": info.size if info else None,
            "content_type": content_type(path)[0],
        }

    def image(self, image_id: str) -> dict[str, Any] | None:
        """One frame: ``image_id``, ``sequence_id``, ``unit_id``, ``camera_id``, ``time``,
        ``status``, ``frame_type``, ``record`` (every field but the step records, as JSON),
        ``steps`` (step -> its latest record), ``wcs`` (the solution's summary with the centre
        ``ra``/``dec``, or None), ``sources`` (the source counts), ``sources_url``,
        ``quick_look_url``, ``processed_url``, ``raw_url`` and ``header_path`` (``gs://`` of the
        raw file, for ``/api/header``). None when there is no such image."""
        image = records.image(self.metadata, image_id)
        if image is None:
            return None
        outputs = image.get("outputs") or {}
        raw = self.buckets.from_path(image.get("bucket_path") or "")
        wcs = image.get("wcs")
        return {
            "image_id": image_id,
            "sequence_id": image.get("sequence_id"),
            "unit_id": image.get("unit_id"),
            "camera_id": image.get("camera_id"),
            "time": iso_time(image.get("time")),
            "status": image.get("status"),
            "frame_type": image.get("frame_type"),
            "record": jsonable({key: value for key, value in image.items() if key != records.STEPS}),
            "steps": {name: jsonable(step.fields) for name, step in records.steps(image).items()},
            "wcs": jsonable({**wcs, "ra": image.get("ra_image"), "dec": image.get("dec_image")}) if wcs else None,
            "sources": jsonable(image.get("sources")),
            "sources_url": self.buckets.url(outputs.get("sources")),
            "quick_look_url": self.buckets.url(outputs.get("quick_look")),
            "processed_url": self.buckets.url(outputs.get("processed")),
            "raw_url": raw.url if raw else None,
            "header_path": raw.gs_path if raw else None,
        }

    def unit(self, unit_id: str) -> dict[str, Any] | None:
        """One unit: ``unit_id``, ``record`` (name, location, counters, as JSON), ``totals``
        (observations, frames, exposure_hours) and ``observations`` (the first page of its
        observations, as ``search`` gives them). None when there is no such unit."""
        record = self.metadata.get(records.UNITS, unit_id)
        if record is None:
            return None
        first_page = self.search(SearchFilters(unit=unit_id))
        return {
            "unit_id": unit_id,
            "record": jsonable(record),
            "totals": dict(
                observations=len(self._observations(unit_id)),
                frames=record.get("num_images") or 0,
                exposure_hours=round((record.get("total_exptime") or 0.0) / 3600, 3),
            ),
        } | dict(observations=first_page.as_json())

    def files(self, sequence_id: str, what: FileSet) -> list[dict[str, Any]] | None:
        """An observation's files of one set, by name: ``raw`` (the raw bucket's folder),
        ``processed`` (the processed bucket's folder less the products) or ``products``; each
        {bucket (key), name, size, version (the object's generation: a replaced product has
        another), url}. None when there is no such observation; ``BadQuery`` for a malformed id."""
        folder = check_sequence_id(sequence_id) + "/"
        record = records.observation(self.metadata, sequence_id)
        if record is None:
            return None
        products = {loc for path in product_paths(record).values() if (loc := self.buckets.from_path(path))}
        if what == "products":
            found = [(loc, info) for loc in products if (info := self.stored(loc))]
        else:
            key = "raw" if what == "raw" else "processed"
            found = [
                (loc, info)
                for info in self.storage.list(self.buckets.by_key[key], folder)
                if (loc := self.buckets.location(key, info.ref.name)) and loc not in products
            ]
        return [
            {
                "bucket": loc.key,
                "name": loc.name,
                "size": info.size,
                "version": str(info.ref.generation),
                "url": loc.url,
            }
            for loc, info in sorted(found, key=lambda pair: pair[0].name)
        ]

    def stored(self, location: FileLocation) -> ObjectInfo | None:
        """The live object at ``location`` (what ``/files`` serves), or None."""
        return self.storage.stat(location.bucket, location.name)

    def read_range(self, info: ObjectInfo, start: int, end: int) -> bytes:
        """Bytes ``[start, end)`` of exactly the generation ``info`` describes."""
        return self.storage.read_range(info.ref, start, end)

    def stream(self, info: ObjectInfo, start: int, end: int, chunk: int = 1 << 20) -> Iterator[bytes]:
        """Bytes ``[start, end)`` in chunks, so a large file never sits in memory whole."""
        for offset in range(start, end, chunk):
            yield self.read_range(info, offset, min(offset + chunk, end))

    def header(self, path: str) -> dict[str, Any] | None:
        """The image header of a stored FITS object (``gs://bucket/name`` or ``bucket/name``) as
        JSON, read with ranged reads as ``panoptes-network header`` does. None when the object
        does not exist; ``BadQuery`` when it is not in one of our buckets or not FITS."""
        location = self.buckets.from_path(path)
        if location is None:
            raise BadQuery(f"{path!r} is not gs://BUCKET/NAME in one of {', '.join(self.buckets.by_name)}")
        info = self.stored(location)
        if info is None:
            return None
        try:
            header = read_image_header(partial(self.read_range, info), location.gs_path, self.limits).header
        except BadInput as exc:
            raise BadQuery(exc.message) from exc
        return header_as_json(header)

    def _observations(self, unit: str | None) -> list[tuple[str, dict[str, Any]]]:
        return records.observations(self.metadata, {"unit_id": unit} if unit else None)


def product_paths(record: Mapping[str, Any]) -> dict[str, str]:
    """Every product of an observation, key -> ``bucket/name``: process-observation's and
    make-lightcurves'."""
    lightcurves = record.get(LIGHTCURVES) or {}
    return {**(record.get("products") or {}), **(lightcurves.get("products") or {})}


def file_set(what: str) -> FileSet:
    """``what`` as one of ``FILE_SETS``; ``BadQuery`` for anything else."""
    for known in FILE_SETS:
        if what == known:
            return known
    raise BadQuery(f"files are one of {', '.join(FILE_SETS)}, not {what!r}")


def check_sequence_id(sequence_id: str) -> str:
    """The sequence's folder; ``BadQuery`` (saying the expected form) when the id is malformed."""
    try:
        return sequence_folder(sequence_id)
    except BadInput as exc:
        raise BadQuery(exc.message) from exc


def reasons(record: Mapping[str, Any]) -> list[str]:
    """Why the observation is as it is, in sentences: its reason, and which step failed how."""
    error = record.get("error") or {}
    failed = f"{error.get('step')} failed ({error.get('error_class')})" if error.get("step") else None
    conflict = f"a product name held other content: {record['conflict']}" if record.get("conflict") else None
    return [text for text in (record.get("reason"), failed, conflict) if text]


def start_time(record: Mapping[str, Any]) -> dt.datetime | None:
    value = record.get("first_frame_time") or record.get("time")
    return value if isinstance(value, dt.datetime) else None


def science_frames(record: Mapping[str, Any]) -> int:
    count = record.get(records.frame_count_field("science"), record.get("num_images"))
    return int(count or 0)


def field(record: Mapping[str, Any]) -> dict[str, Any]:
    """{name, ra, dec} of the observation's field: process-observation's, else the header's."""
    stored = record.get("field") or {}
    return {
        "name": stored.get("name") or record.get("field_name"),
        "ra": stored.get("ra", record.get("ra")),
        "dec": stored.get("dec", record.get("dec")),
    }


def separation_deg(ra1: float, dec1: float, ra2: float, dec2: float) -> float:
    """Angle between two points on the sky (haversine: exact at small separations)."""
    phi1, phi2 = math.radians(dec1), math.radians(dec2)
    half = (
        math.sin((phi2 - phi1) / 2) ** 2 + math.cos(phi1) * math.cos(phi2) * math.sin(math.radians(ra2 - ra1) / 2) ** 2
    )
    return math.degrees(2 * math.asin(min(1.0, math.sqrt(half))))


def in_cone(record: Mapping[str, Any], cone: Cone) -> bool:
    centre = field(record)
    if not isinstance(centre["ra"], int | float) or not isinstance(centre["dec"], int | float):
        return False
    return separation_deg(cone.ra, cone.dec, float(centre["ra"]), float(centre["dec"])) <= cone.radius


def matches(record: Mapping[str, Any], filters: SearchFilters) -> bool:
    """Whether an observation record passes every filter given."""
    start = start_time(record)
    name = str(field(record)["name"] or "")
    return (
        (filters.status is None or record.get("status") == filters.status)
        and (filters.since is None or (start is not None and start >= filters.since))
        and (filters.until is None or (start is not None and start < filters.until))
        and (filters.target is None or filters.target.casefold() in name.casefold())
        and (filters.cone is None or in_cone(record, filters.cone))
        and (filters.min_frames is None or science_frames(record) >= filters.min_frames)
    )


OrderKey = tuple[float, str]


def order_key(sequence_id: str, record: Mapping[str, Any]) -> OrderKey:
    """Newest first, then by id; observations without a time last."""
    start = start_time(record)
    return (-start.timestamp() if start else math.inf, sequence_id)


def encode_cursor(key: OrderKey) -> str:
    return base64.urlsafe_b64encode(json.dumps([key[0], key[1]]).encode()).decode()


def decode_cursor(cursor: str) -> OrderKey:
    """The order key a cursor names; ``BadQuery`` for anything ``encode_cursor`` did not make."""
    try:
        moment, sequence_id = json.loads(base64.urlsafe_b64decode(cursor.encode()))
        if isinstance(moment, int | float) and isinstance(sequence_id, str):
            return float(moment), sequence_id
    except (ValueError, TypeError, binascii.Error):
        pass
    raise BadQuery("cursor is not one this service gave out: pass next_cursor unchanged")
