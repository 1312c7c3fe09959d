"""One attempt at a time per step and image: a lease in the metadata store, kept alive while
the step works.

The lease is short (``Settings.lease_seconds``, a minute by default) and renewed every third of it from a background thread, so a
step may run for as long as it needs while a crashed attempt (a killed worker, a lost
instance) blocks its image for at most a minute, not for the whole push ack deadline.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import os
import socket
import threading
import uuid
from collections.abc import Iterator

from .adapters.metadata import MetadataStore
from .errors import TransientError
from .logs import log

LEASES = "leases"
logger = logging.getLogger(__name__)


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def _renew(metadata: MetadataStore, key: str, holder: str, seconds: float, stop: threading.Event) -> None:
    while not stop.wait(seconds / 3):
        try:
            if not metadata.claim_lease(LEASES, key, holder, _now(), _now() + dt.timedelta(seconds=seconds)):
                log(logger, "WARNING", f"lease {key} was taken over: another attempt may run alongside (outputs are idempotent)")
                return
        except TransientError as exc:
            log(logger, "WARNING", f"could not renew lease {key}: {exc.message}")


@contextlib.contextmanager
def lease(metadata: MetadataStore, key: str, seconds: float) -> Iterator[bool]:
    """Hold lease ``key`` for the block (True), or say another attempt holds it (False)."""
    holder = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:12]}"
    if not metadata.claim_lease(LEASES, key, holder, _now(), _now() + dt.timedelta(seconds=seconds)):
        yield False
        return
    stop = threading.Event()
    renewer = threading.Thread(target=_renew, args=(metadata, key, holder, seconds, stop), daemon=True)
    renewer.start()
    try:
        yield True
    finally:
        stop.set()
        renewer.join()
        try:
            metadata.release_lease(LEASES, key, holder)
        except TransientError as exc:  # it expires by itself; the outcome stands
            log(logger, "WARNING", f"could not release lease {key}: {exc.message}")
