"""``panoptes-network``: run the pipeline on this machine, read its records, start the local stack.

One module per command, each adding its parser (``add_parser``) and running it (``cmd_*``);
``shared`` holds what several of them use.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from panoptes_network.core.errors import PipelineError
from panoptes_network.core.settings import Settings
from panoptes_network.drivers.cli import (
    catalog,
    dlq,
    download,
    explore,
    gaps,
    header,
    observations,
    process,
    query,
    reprocess,
    sample,
    search,
    stack,
    status,
)
from panoptes_network.drivers.cli.shared import common_options, print_error

DESCRIPTION = """\
Process PANOPTES images on this machine, through the same steps the cloud services run.

Buckets become folders under the data directory, topics an in-process queue, and the
metadata (Firestore in the cloud) one SQLite file, so no cloud account, emulator or network
is needed. Logs go to DATA_DIR/pipeline.log as JSON lines.
"""

EPILOG = """\
examples:
  panoptes-network sample                       write a realistic synthetic frame
  panoptes-network process ./frames             every file under ./frames
  panoptes-network process --json unsolved.fits one JSON record per image on stdout
  panoptes-network status PAN001_XXXXXX_20160909T081314
  panoptes-network observations list            every observation and its status
  panoptes-network explore                      browse them at http://127.0.0.1:8080/
  panoptes-network header gs://panoptes-raw-images/PAN001/14d3bd/20181011T134202/20181011T134333.fits.fz
  panoptes-network search --target 'kic 8462'   observations of a field, newest first
  panoptes-network download PAN001_14d3bd_20181011T134202 --what raw
  panoptes-network query "SELECT image_id, count(*) FROM sources GROUP BY 1"
  panoptes-network reprocess --status unsolved  solve every unsolved image again
  panoptes-network stack                        the local cloud stack, until Ctrl-C
"""

# In the order ``--help`` lists them.
COMMANDS = (
    process,
    status,
    observations,
    explore,
    search,
    download,
    query,
    header,
    sample,
    stack,
    gaps,
    reprocess,
    dlq,
    catalog,
)


def build_parser(settings: Settings | None = None) -> argparse.ArgumentParser:
    """Every command's parser; option defaults come from ``settings`` (default: the environment's)."""
    parser = argparse.ArgumentParser(
        prog="panoptes-network",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    options = common_options(settings or Settings.from_env())
    for command in COMMANDS:
        command.add_parser(commands, options)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; what the user can fix (no credentials, a backend down) is one line, not a traceback."""
    from google.auth.exceptions import DefaultCredentialsError

    args = build_parser().parse_args(argv)
    try:
        return args.func(args)  # type: ignore[no-any-return]
    except DefaultCredentialsError as exc:
        print_error(
            f"no Google credentials ({exc}); run 'gcloud auth application-default login', "
            "or set the *_EMULATOR_HOST variables that 'panoptes-network stack' prints"
        )
    except PipelineError as exc:
        print_error(exc.message)
    return 1
