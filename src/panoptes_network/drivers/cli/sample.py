"""``panoptes-network sample``: a realistic synthetic PANOPTES frame, or a whole night, of the real sky."""

from __future__ import annotations

import argparse
from pathlib import Path

from panoptes_network.drivers.cli.shared import Commands, CommonOptions

NIGHT_SHAPE = (700, 1000)  # rows, columns: big enough to solve, small enough for a quick demo


def add_parser(commands: Commands, options: CommonOptions) -> None:
    sample = commands.add_parser(
        "sample",
        help="write a realistic synthetic PANOPTES frame or night",
        description="Write a synthetic raw Bayer frame of the real sky (Tycho-2 stars around KIC 8462852 "
        "through a known WCS, the mount hint 2 degrees off) with a POCS header, at its canonical path under OUT. "
        "With --night: a whole observation instead (a pointing image, FRAMES science frames drifting slowly "
        "with jitter, and a dark), as a unit uploads it.",
    )
    sample.add_argument("--out", type=Path, default=Path("samples"), help="folder (default: %(default)s)")
    sample.add_argument("--size", choices=("full", "small"), default="full", help="5208x3476 or 700x700")
    sample.add_argument("--seed", type=int, default=1, help="random seed (default: %(default)s)")
    sample.add_argument(
        "--night",
        type=_frame_count,
        metavar="FRAMES",
        help=f"write an observation of FRAMES science frames ({NIGHT_SHAPE[1]}x{NIGHT_SHAPE[0]}) instead",
    )
    sample.set_defaults(func=cmd_sample)


def _frame_count(text: str) -> int:
    try:
        count = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of frames") from None
    if count < 1:
        raise argparse.ArgumentTypeError("a night needs at least 1 frame")
    return count


def cmd_sample(args: argparse.Namespace) -> int:
    if args.night is not None:
        return _night(args)
    from astropy.io import fits

    from panoptes_network.synthetic.frames import FULL_SHAPE
    from panoptes_network.synthetic.star_field import StarFieldSpec, frame_spec_for, make_star_field

    spec = StarFieldSpec(shape=FULL_SHAPE if args.size == "full" else (700, 700), seed=args.seed)
    data, header, _ = make_star_field(spec)  # real Tycho-2 stars, so the plate-solver can solve it
    path = args.out / frame_spec_for(spec).path()
    path.parent.mkdir(parents=True, exist_ok=True)
    fits.PrimaryHDU(data, header).writeto(path, overwrite=True, checksum=True)
    print(path)
    return 0


def _night(args: argparse.Namespace) -> int:
    """Every frame of one observation, written under OUT; prints the sequence's folder."""
    from panoptes_network.synthetic.observation import ObservationSpec, write_observation
    from panoptes_network.synthetic.star_field import StarFieldSpec

    spec = ObservationSpec(
        field=StarFieldSpec(shape=NIGHT_SHAPE, seed=args.seed),
        frames=args.night,
        stars=None,  # the real sky, so every frame solves
        pointing_images=1,
        darks=1,
        seed=args.seed,
    )
    truth = write_observation(spec, args.out)
    print(args.out / Path(truth.frames[0].name).parent)
    return 0
