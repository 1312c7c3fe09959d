"""The local stack under load: small frames uploaded at once, until every one is final."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from panoptes_network.local.stack import patched_env, start_stack
from panoptes_network.local.stack_load import load_frames, measure, settled, upload_all, wait_until_final

Pair = tuple[Callable[[], object], Callable[[], object]]

LOAD_FRAMES = 200  # issue 8: "200 small frames uploaded at once"
TIMEOUT_SECONDS = 600


@contextmanager
def stack_load(work: Path) -> Iterator[Pair]:
    """The whole chain (uploads, then every step until the last image's final step) vs the same
    uploads alone, into a bucket without notifications; each chain run prints
    ``bench stack-load images=... images_per_s=... p50_latency_s=... p95_latency_s=...``.
    Both sides include making the frames (about 2 s for 200)."""
    from google.cloud import firestore, storage

    stack = start_stack(f"bench-{uuid.uuid4().hex[:8]}", work / "stack")
    try:
        with patched_env(stack.client_env):
            gcs, db = storage.Client(), firestore.Client(project=stack.project)
        runs = iter(range(1000))  # a camera-id tag per run: every run uploads new names

        def ours() -> None:
            frames = load_frames(LOAD_FRAMES, tag=f"B{next(runs):03d}")
            uploads = upload_all(gcs.bucket(stack.settings.bucket("raw")), frames)
            images = wait_until_final(db, frames, TIMEOUT_SECONDS)
            unfinished = sum(not settled(frame, images.get(frame.image_id)) for frame in frames)
            if unfinished:
                raise SystemExit(f"bench stack-load: {unfinished} image(s) unfinished after {TIMEOUT_SECONDS} s")
            print(f"bench stack-load {measure(uploads, images).line()}", flush=True)

        def reference() -> None:
            frames = load_frames(LOAD_FRAMES, tag=f"R{next(runs):03d}")
            upload_all(gcs.bucket(stack.settings.bucket("rgb")), frames)

        yield ours, reference
    finally:
        stack.stop()


CASES = {"stack-load": stack_load}
