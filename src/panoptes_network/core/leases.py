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
import time
import uuid
from collections.abc import Iterator

from panoptes_network.adapters.metadata import MetadataStore
from panoptes_network.core.errors import TransientError
from panoptes_network.core.logs import log
from panoptes_network.core.records import LEASES

# A duplicate that finds the lease held waits this long for it before answering "come back
# later": copies of a quick step then find the work done (204) instead of spending delivery
# attempts on 503s, which could send a harmless copy to the dead-letter topic.
PATIENCE_SECONDS = 2.0
POLL_SECONDS = 0.1
logger = logging.getLogger(__name__)


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _renew(metadata: MetadataStore, key: str, holder: str, seconds: float, stop: threading.Event) -> None:
    while not stop.wait(seconds / 3):
        try:
            if not metadata.claim_lease(LEASES, key, holder, _now(), _now() + dt.timedelta(seconds=seconds)):
                log(
                    logger,
                    "WARNING",
                    f"lease {key} was taken over: another attempt may run alongside (outputs are idempotent)",
                )
                return
        except TransientError as exc:
            log(logger, "WARNING", f"could not renew lease {key}: {exc.message}")


def _claim(metadata: MetadataStore, key: str, holder: str, seconds: float, patience: float) -> bool:
    """Take the lease, waiting up to ``patience`` seconds for another holder to give it up."""
    deadline = time.monotonic() + patience
    while not metadata.claim_lease(LEASES, key, holder, _now(), _now() + dt.timedelta(seconds=seconds)):
        if time.monotonic() >= deadline:
            return False
        time.sleep(POLL_SECONDS)
    return True


@contextlib.contextmanager
def lease(metadata: MetadataStore, key: str, seconds: float, patience: float = PATIENCE_SECONDS) -> Iterator[bool]:
    """Hold lease ``key`` for the block (True), or say another attempt still holds it after
    ``patience`` seconds (False)."""
    holder = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:12]}"
    if not _claim(metadata, key, holder, seconds, patience):
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
