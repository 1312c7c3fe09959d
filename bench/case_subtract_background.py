"""subtract-background against photutils' Background2D with upstream's settings, per Bayer channel."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
from astropy.stats import SigmaClip
from photutils.background import Background2D, MedianBackground

from panoptes_network.adapters.backends import local_context
from panoptes_network.core.messages import PushMessage, StepMessage
from panoptes_network.core.settings import Settings
from panoptes_network.core.step_shell import run_step
from panoptes_network.core.topology import load_topology
from panoptes_network.science import background_model as bm
from panoptes_network.science import fits_codec
from panoptes_network.steps import subtract_background
from panoptes_network.synthetic.frames import FrameSpec, make_frame

SETTINGS = bm.BackgroundSettings()


def photutils_per_channel(raw: np.ndarray, black: float) -> dict[str, Background2D]:
    """Upstream's estimate on each channel: box 84 px on the full frame = 42 on a channel grid."""
    return {
        name: Background2D(
            raw[row::2, col::2].astype(np.float32) - black,
            (SETTINGS.mesh, SETTINGS.mesh),
            filter_size=(SETTINGS.filter_size, SETTINGS.filter_size),
            sigma_clip=SigmaClip(sigma=5.0),
            bkg_estimator=MedianBackground(),
        )
        for name, row, col in bm.channel_names("RGGB")
    }


def report_agreement(raw: np.ndarray, header) -> None:
    """The two models' median absolute difference in units of the sky RMS (must stay < 0.2)."""
    ours = {c.name: c for c in bm.estimate(raw, header, SETTINGS).channels}
    reference = photutils_per_channel(raw, SETTINGS.black_level)
    worst = max(
        float(np.median(np.abs(ours[name].model() - ref.background)) / np.median(ours[name].rms_grid))
        for name, ref in reference.items()
    )
    print(f"bench background-estimate median_abs_diff_rms={worst:.3f}", flush=True)


def photutils_reference(raw: np.ndarray) -> Callable[[], object]:
    """Photutils' whole estimate, full-resolution background and RMS of every channel."""

    def reference() -> None:
        for estimate in photutils_per_channel(raw, SETTINGS.black_level).values():
            _ = estimate.background, estimate.background_rms  # evaluated lazily: force both

    return reference


@contextmanager
def background_estimate(work: Path) -> Iterator[tuple[Callable[[], object], Callable[[], object]]]:
    """Our estimate of a full frame in memory vs photutils' (both with full-resolution models)."""
    raw, header = make_frame(FrameSpec())
    report_agreement(raw, header)

    def ours() -> None:
        for channel in bm.estimate(raw, header, SETTINGS).channels:
            channel.model(), channel.rms()

    yield ours, photutils_reference(raw)


@contextmanager
def background_step(work: Path) -> Iterator[tuple[Callable[[], object], Callable[[], object]]]:
    """Our whole step (read the stored .fits.fz, estimate, write the model, record, publish) vs
    photutils' estimate alone. Each run is a new image id, and its output is removed after it."""
    raw, header = make_frame(FrameSpec())
    service = load_topology().service(subtract_background.NAME)
    context, _ = local_context(Settings(data_dir=work), work)
    name = "PAN000/SC5348/20261124T080000/20261124T080203.fits.fz"
    ref = context.storage.write_new("panoptes-raw-images", name, fits_codec.compressed_file(raw, header))
    runs = iter(range(1_000_000))

    def ours() -> None:
        run = next(runs)
        message = StepMessage(ref, f"PAN000_SC5348_run{run}", "PAN000_SC5348_20261124T080000")
        data, attributes = message.encode()
        handled = run_step(service, subtract_background.STEP, context, PushMessage(f"m-{run}", data, attributes))
        assert handled.outcome.value == "done", handled.reason
        output = context.storage.stat("panoptes-backgrounds", subtract_background.background_name(name))
        context.storage.delete(output.ref)

    yield ours, photutils_reference(raw)


CASES = {"background-estimate": background_estimate, "background-step": background_step}
