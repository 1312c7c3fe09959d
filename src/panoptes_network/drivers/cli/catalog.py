"""``panoptes-network catalog``: the SQL reference catalog (load a TESS Input Catalog subset)."""

from __future__ import annotations

import argparse
from pathlib import Path

from panoptes_network.core.settings import Settings
from panoptes_network.drivers.cli.shared import Commands, CommonOptions


def add_parser(commands: Commands, options: CommonOptions) -> None:
    catalog = commands.add_parser("catalog", parents=[options.data_dir], help="manage the SQL reference catalog")
    catalog_commands = catalog.add_subparsers(dest="catalog_command", required=True, metavar="ACTION")
    load = catalog_commands.add_parser(
        "load",
        parents=[options.data_dir],
        help="load a TESS Input Catalog subset (CSV or FITS) into the reference_stars table",
        description="Columns picid, ra, dec (required), vmag, tmag, gaia_id, twomass_id (common spellings "
        "accepted). Rows whose picid is already loaded are replaced. The database is DATABASE_URL, "
        "else DATA_DIR/stamps.sqlite.",
    )
    load.add_argument("file", type=Path, metavar="FILE", help="a .csv or .fits table")
    load.add_argument("--database-url", default=options.settings.database_url, help="default: $DATABASE_URL")
    load.add_argument("--schema", default=None, help="PostgreSQL schema (default: the database's default)")
    load.set_defaults(func=cmd_catalog_load)


def cmd_catalog_load(args: argparse.Namespace) -> int:
    from panoptes_network.adapters.backends import sql_catalog

    settings = Settings(data_dir=args.data_dir, database_url=args.database_url, database_schema=args.schema)
    catalog = sql_catalog(settings)
    count = catalog.load_file(args.file)
    print(f"{count} star(s) from {args.file} loaded into reference_stars ({catalog.database})")
    return 0
