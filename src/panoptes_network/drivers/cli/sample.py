"""``panoptes-network sample``: a realistic synthetic PANOPTES frame of the real sky."""

from __future__ import annotations

import argparse
from pathlib import Path

from panoptes_network.drivers.cli.shared import Commands, CommonOptions


def add_parser(commands: Commands, options: CommonOptions) -> None:
    sample = commands.add_parser(
        "sample",
        help="write a realistic synthetic PANOPTES frame",
        description="Write a synthetic raw Bayer frame of the real sky (Tycho-2 stars around KIC 8462852 "
        "through a known WCS, the mount hint 2 degrees off) with a POCS header, at its canonical path under OUT.",
    )
    sample.add_argument("--out", type=Path, default=Path("samples"), help="folder (default: %(default)s)")
    sample.add_argument("--size", choices=("full", "small"), default="full", help="5208x3476 or 700x700")
    sample.add_argument("--seed", type=int, default=1, help="random seed (default: %(default)s)")
    sample.set_defaults(func=cmd_sample)


def cmd_sample(args: argparse.Namespace) -> int:
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
