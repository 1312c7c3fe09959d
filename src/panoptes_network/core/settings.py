"""Settings: the only place that reads the environment.

Steps receive a ``Settings`` value; they never look at ``os.environ`` themselves. What else needs
the process environment (a child process's, a project named only there, Google clients that read
``*_EMULATOR_HOST`` when built) goes through the functions below; a test checks that no other
module reads it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import os
from collections.abc import Iterator, Mapping
from pathlib import Path

from panoptes_network.core.errors import OverLimit
from panoptes_network.core.topology import Topology, load_topology

DEFAULT_PROJECT = "panoptes-exp"
DEFAULT_DATA_DIR = Path("panoptes-data")


# Each limit's environment variable: what an over-limit rejection tells the operator to raise.
LIMIT_SETTINGS = {
    "max_image_pixels": "PANOPTES_MAX_IMAGE_PIXELS",
    "max_hdus": "PANOPTES_MAX_HDUS",
    "max_header_cards": "PANOPTES_MAX_HEADER_CARDS",
    "max_object_bytes": "PANOPTES_MAX_OBJECT_BYTES",
}


@dataclasses.dataclass(frozen=True)
class Limits:
    """What one input may hold, checked from headers and stored sizes before anything is
    allocated: a broken or hostile upload becomes a recorded rejection, not an out-of-memory crash."""

    max_image_pixels: int = 80_000_000  # ~4.4x a PANOPTES frame (5208 x 3476 = 18.1 Mpx)
    max_hdus: int = 100  # a PANOPTES file has 1 or 2
    max_header_cards: int = 13_000  # a POCS header has ~150; 1 MiB of cards, as before
    max_object_bytes: int = 400_000_000  # a full frame: 36 MB as .fits, ~25 MB as CR2

    def check(self, what: str, limit: str, value: int) -> None:
        """``OverLimit`` naming the limit, the value and its setting when ``value`` exceeds it."""
        maximum = getattr(self, limit)
        if value > maximum:
            raise OverLimit(what, limit, value, maximum, LIMIT_SETTINGS[limit])

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Limits:
        defaults = cls()
        return cls(**{key: int(env.get(name) or getattr(defaults, key)) for key, name in LIMIT_SETTINGS.items()})


DEFAULT_LIMITS = Limits()

# How the plate-solver stores the processed frame (science/processed_image.py says what each means).
PROCESSED_STORAGE_CHOICES = ("quantized", "lossless")


def processed_storage(value: str) -> str:
    """``PANOPTES_PROCESSED_STORAGE``, checked: a typo fails at start, not on the first frame."""
    if value not in PROCESSED_STORAGE_CHOICES:
        raise ValueError(
            f"PANOPTES_PROCESSED_STORAGE is {value!r}; expected one of {', '.join(PROCESSED_STORAGE_CHOICES)}"
        )
    return value


@dataclasses.dataclass(frozen=True)
class Settings:
    """Everything configurable, each with its default (buckets: the topology's names)."""

    project: str = DEFAULT_PROJECT
    buckets: Mapping[str, str] = dataclasses.field(default_factory=lambda: dict(load_topology().buckets))
    data_dir: Path = DEFAULT_DATA_DIR
    # Push auth (push_auth.py): on when the audience is set, i.e. on Cloud Run (bin/deploy sets both).
    push_auth_audience: str | None = None  # this service's URL, the OIDC token's audience
    push_auth_email: str | None = None  # the push subscriptions' service account
    push_auth_certs_url: str | None = None  # None: Google's; tests point it at their own key
    # plate-solver: stamps (and the SQL reference catalog) in this database; None: SQLite in data_dir.
    database_url: str | None = None
    database_schema: str | None = None  # PostgreSQL schema (tests, test instances); None: the default
    reference_catalog: str = "tycho2"  # "tycho2" (installed index files) or "sql" (reference_stars)
    # How long a crashed attempt can block its image (leases.py); shorter than the retry budget.
    lease_seconds: float = 60.0
    limits: Limits = DEFAULT_LIMITS  # PANOPTES_MAX_*: input sizes every step checks before allocating
    # Observations: ready once no frame arrived for this long (and every frame ended its chain).
    observation_quiet_minutes: float = 30.0
    min_frames: int = 10  # fewer usable frames: not_enough_frames
    max_drift_px: float = 18.0  # more drift across the observation: too_much_drift
    stamp_size: int = 16  # px, the stamp cube's window
    aperture_px: float = 5.0  # make-lightcurves: the photometry aperture's radius
    transit_snr: float = 7.0  # make-lightcurves: a box this many sigma deep is a candidate
    sweep_interval_seconds: float = 600.0  # the local stack's sweep timer (the cloud's: Cloud Scheduler)
    # plate-solver: the processed frame quantized below the sky noise (5x smaller) or lossless.
    processed_storage: str = "quantized"

    @property
    def observation_quiet(self) -> dt.timedelta:
        return dt.timedelta(minutes=self.observation_quiet_minutes)

    def bucket(self, key: str) -> str:
        """The bucket name for a logical bucket (``raw``, ``rgb``, ``backgrounds``, ``processed``)."""
        return self.buckets[key]

    def sql_url(self) -> str:
        """The stamps and SQL catalog database: ``DATABASE_URL``, else ``{data_dir}/stamps.sqlite``."""
        return self.database_url or f"sqlite:///{Path(self.data_dir).resolve() / 'stamps.sqlite'}"

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ, topology: Topology | None = None) -> Settings:
        """Read ``GOOGLE_CLOUD_PROJECT``, ``PANOPTES_DATA_DIR``, ``PANOPTES_BUCKET_<KEY>``, ``PUSH_AUTH_*``,
        ``DATABASE_URL``, ``PANOPTES_DATABASE_SCHEMA``, ``PANOPTES_REFERENCE_CATALOG``,
        ``PANOPTES_LEASE_SECONDS``, the ``PANOPTES_MAX_*`` limits, ``PANOPTES_OBSERVATION_QUIET_MINUTES``,
        ``PANOPTES_MIN_FRAMES``, ``PANOPTES_MAX_DRIFT_PX``, ``PANOPTES_STAMP_SIZE``, ``PANOPTES_APERTURE_PX``,
        ``PANOPTES_TRANSIT_SNR``, ``PANOPTES_SWEEP_INTERVAL_SECONDS`` and ``PANOPTES_PROCESSED_STORAGE``."""
        topology = topology or load_topology()
        buckets = {key: env.get(f"PANOPTES_BUCKET_{key.upper()}", default) for key, default in topology.buckets.items()}
        return cls(
            project=env.get("GOOGLE_CLOUD_PROJECT", DEFAULT_PROJECT),
            buckets=buckets,
            data_dir=Path(env.get("PANOPTES_DATA_DIR", DEFAULT_DATA_DIR)),
            push_auth_audience=env.get("PUSH_AUTH_AUDIENCE") or None,
            push_auth_email=env.get("PUSH_AUTH_EMAIL") or None,
            push_auth_certs_url=env.get("PUSH_AUTH_CERTS_URL") or None,
            database_url=env.get("DATABASE_URL") or None,
            database_schema=env.get("PANOPTES_DATABASE_SCHEMA") or None,
            reference_catalog=env.get("PANOPTES_REFERENCE_CATALOG") or "tycho2",
            lease_seconds=float(env.get("PANOPTES_LEASE_SECONDS") or 60.0),
            limits=Limits.from_env(env),
            observation_quiet_minutes=float(env.get("PANOPTES_OBSERVATION_QUIET_MINUTES") or 30.0),
            min_frames=int(env.get("PANOPTES_MIN_FRAMES") or 10),
            max_drift_px=float(env.get("PANOPTES_MAX_DRIFT_PX") or 18.0),
            stamp_size=int(env.get("PANOPTES_STAMP_SIZE") or 16),
            aperture_px=float(env.get("PANOPTES_APERTURE_PX") or 5.0),
            transit_snr=float(env.get("PANOPTES_TRANSIT_SNR") or 7.0),
            sweep_interval_seconds=float(env.get("PANOPTES_SWEEP_INTERVAL_SECONDS") or 600.0),
            processed_storage=processed_storage(env.get("PANOPTES_PROCESSED_STORAGE") or "quantized"),
        )


def configured_project(env: Mapping[str, str] = os.environ) -> str | None:
    """``GOOGLE_CLOUD_PROJECT`` when it is set: bin/deploy then asks for a project rather than
    deploy to ``DEFAULT_PROJECT``."""
    return env.get("GOOGLE_CLOUD_PROJECT") or None


def process_environment(extra: Mapping[str, str]) -> dict[str, str]:
    """This process's environment with ``extra`` on top: what a child process (an emulator, a
    service under gunicorn) starts with, so that it finds its programs and the caller's settings."""
    return {**os.environ, **extra}


@contextlib.contextmanager
def patched_env(values: Mapping[str, str]) -> Iterator[None]:
    """Google clients read the *_EMULATOR_HOST variables when they are built: set them just then."""
    saved = {key: os.environ.get(key) for key in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
