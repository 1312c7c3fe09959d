"""``panoptes-network header``: a FITS file's image header as JSON, local or in Cloud Storage."""

from __future__ import annotations

import argparse
import json
from functools import partial
from pathlib import Path

from panoptes_network.core.errors import PipelineError
from panoptes_network.drivers.cli.shared import Commands, CommonOptions, print_error


def add_parser(commands: Commands, options: CommonOptions) -> None:
    header = commands.add_parser(
        "header",
        help="print a FITS file's image header as JSON (reads only the header blocks)",
        description="Print the image header of a local FITS/.fits.fz file or of gs://BUCKET/NAME (the "
        "usual Google credentials, or STORAGE_EMULATOR_HOST for the local stack) as JSON.",
    )
    header.add_argument("location", metavar="PATH|gs://BUCKET/NAME")
    header.set_defaults(func=cmd_header)


def cmd_header(args: argparse.Namespace) -> int:
    from panoptes_network.science.fits_header import read_image_header
    from panoptes_network.science.header_metadata import header_as_json

    location: str = args.location
    try:
        if location.startswith("gs://"):
            from panoptes_network.adapters.gcs_storage import GcsStorage

            bucket, _, name = location.removeprefix("gs://").partition("/")
            storage = GcsStorage()
            info = storage.stat(bucket, name)
            if info is None:
                print_error(f"no object {location}")
                return 1
            header = read_image_header(partial(storage.read_range, info.ref), location).header
        else:
            path = Path(location)
            if not path.is_file():
                print_error(f"no such file: {location}")
                return 1
            with open(path, "rb") as handle:

                def read_range(start: int, end: int) -> bytes:
                    handle.seek(start)
                    return handle.read(end - start)

                header = read_image_header(read_range, location).header
    except PipelineError as exc:
        print_error(exc.message)
        return 1
    print(json.dumps(header_as_json(header), indent=2, default=str))
    return 0
