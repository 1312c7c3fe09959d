"""The observation's timelapse: an H.264 MP4 of the usable frames, time and frame number burned in.

Encoded by PyAV, whose wheel ships FFmpeg with libx264: in process, no ffmpeg program to
install. H.264 High profile in yuv420p with the index at the front (``+faststart``) is what every
browser plays. Each frame is the image's quick look (JPEG or PNG bytes) when there is one, else
a quick look rendered from its pixels (binned, asinh-stretched, row 0 at the bottom as FITS
viewers show it); all are scaled to one even-sized picture at most ``width`` px wide.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import io
import math
import tempfile
from collections.abc import Sequence
from pathlib import Path

import av
import numpy as np
from PIL import Image, ImageDraw, ImageFont

from panoptes_network.science.quick_look import asinh_stretch, binned


@dataclasses.dataclass(frozen=True)
class TimelapseSettings:
    width: int = 1280  # px, at most (even)
    fps: int = 8
    crf: int = 23  # x264 quality: 23 is its default, visually clean on star fields
    font_px: int = 22


@dataclasses.dataclass(frozen=True)
class TimelapseFrame:
    """One picture of the film: encoded image bytes (a quick look), or an 8-bit grey rendering."""

    time: dt.datetime
    label: str  # e.g. the image id
    image: bytes | np.ndarray


def as_utc(time: dt.datetime) -> dt.datetime:
    """DATE-OBS is UTC: a naive time is taken as UTC, an aware one converted."""
    return time.replace(tzinfo=dt.UTC) if time.tzinfo is None else time.astimezone(dt.UTC)


def render_pixels(pixels: np.ndarray, width: int) -> np.ndarray:
    """uint8 grey quick look of a background-subtracted frame, at most ``width`` px wide, row 0 at the bottom."""
    factor = max(1, math.ceil(pixels.shape[1] / width))
    return np.ascontiguousarray(np.flipud(asinh_stretch(binned(pixels, factor))))


def _picture(frame: TimelapseFrame) -> Image.Image:
    if isinstance(frame.image, np.ndarray):
        return Image.fromarray(frame.image).convert("RGB")
    with Image.open(io.BytesIO(frame.image)) as opened:
        return opened.convert("RGB")


def _size(first: Image.Image, width: int) -> tuple[int, int]:
    """Even width and height (yuv420p halves both for colour), the first picture's aspect."""
    w = min(width, first.width) // 2 * 2
    h = max(2, round(first.height * w / first.width) // 2 * 2)
    return w, h


def _burn_in(picture: Image.Image, text: str, font_px: int) -> None:
    """White text on a black box at the top left, its font shrunk until the line fits the picture."""
    draw = ImageDraw.Draw(picture)
    font = ImageFont.load_default(size=font_px)
    while font_px > 6 and draw.textlength(text, font=font) > picture.width - 16:
        font_px -= 1
        font = ImageFont.load_default(size=font_px)
    left, top, right, bottom = draw.textbbox((8, 6), text, font=font)
    draw.rectangle((left - 4, top - 3, right + 4, bottom + 3), fill=(0, 0, 0))
    draw.text((8, 6), text, fill=(255, 255, 255), font=font)


def encode(frames: Sequence[TimelapseFrame], settings: TimelapseSettings = TimelapseSettings()) -> bytes:
    """MP4 bytes: one video frame per ``frames`` entry, in the given order."""
    if not frames:
        raise ValueError("no frames for a timelapse")
    with tempfile.TemporaryDirectory(prefix="panoptes-timelapse-") as scratch:
        path = Path(scratch) / "timelapse.mp4"  # +faststart rewrites the file: a file, not a buffer
        _write(path, frames, settings)
        return path.read_bytes()


def _write(path: Path, frames: Sequence[TimelapseFrame], settings: TimelapseSettings) -> None:
    with av.open(str(path), mode="w", format="mp4", options={"movflags": "+faststart"}) as container:
        stream = container.add_stream("libx264", rate=settings.fps)
        size: tuple[int, int] | None = None
        for number, frame in enumerate(frames, start=1):
            picture = _picture(frame)
            if size is None:
                size = _size(picture, settings.width)
                stream.width, stream.height = size
                stream.pix_fmt = "yuv420p"
                # The same frames must give the same bytes (a redelivery after a crash finds its film
                # identical, not a conflict): one encoder thread, explicit timestamps, and no x264
                # lookahead or macroblock tree, whose output varied from run to run in one process
                # (measured: 2-3 of 4 encodes of one film differed with them; 0 of 24 without).
                x264 = "sync-lookahead=0:rc-lookahead=0:mbtree=0"
                stream.options = {
                    "crf": str(settings.crf),
                    "preset": "veryfast",
                    "profile": "high",
                    "threads": "1",
                    "x264-params": x264,
                }
            picture = picture.resize(size, Image.Resampling.BILINEAR)
            stamp = as_utc(frame.time).strftime("%Y-%m-%d %H:%M:%S UTC")
            _burn_in(picture, f"{stamp}  frame {number}/{len(frames)}  {frame.label}", settings.font_px)
            video_frame = av.VideoFrame.from_image(picture)  # type: ignore[no-untyped-call]
            video_frame.pts = number - 1
            for packet in stream.encode(video_frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
