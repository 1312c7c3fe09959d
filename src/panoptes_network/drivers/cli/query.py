"""``panoptes-network query``: SQL (DuckDB) over the data dir's Parquet products."""

from __future__ import annotations

import argparse
import json
import sys

from panoptes_network.core.parquet_tables import PARQUET_TABLES
from panoptes_network.drivers.cli.shared import (
    Commands,
    CommonOptions,
    local_settings,
    paragraph,
    print_error,
    print_table,
)

TABLES_HELP = "\n".join(f"  {t.name:<12} {t.description}" for t in PARQUET_TABLES)


def add_parser(commands: Commands, options: CommonOptions) -> None:
    query = commands.add_parser(
        "query",
        parents=[options.data_dir],
        help="run SQL (DuckDB) over the data dir's Parquet products",
        description=paragraph(
            "Run one SQL statement (DuckDB's dialect) over the Parquet products of every "
            "observation in the data dir, as these views (each with a sequence_id column); the same "
            "tables exist in BigQuery over the buckets (bin/deploy infra), for the whole archive."
        )
        + "\n\n"
        + TABLES_HELP,
        epilog="examples:\n"
        "  panoptes-network query --tables\n"
        '  panoptes-network query "SELECT sequence_id, count(*) AS frames, median(fwhm) FROM quality GROUP BY 1"\n'
        '  panoptes-network query --json "SELECT image_id, catalog_id, flux FROM sources WHERE catalog_mag < 8"\n',
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    query.add_argument("sql", nargs="?", metavar="SQL", help="the statement (quote it for the shell)")
    query.add_argument("--tables", action="store_true", help="list the views, their files and columns")
    query.add_argument("--json", action="store_true", help="one JSON object per row")
    query.set_defaults(func=cmd_query)


def cmd_query(args: argparse.Namespace) -> int:
    import duckdb

    from panoptes_network.drivers.parquet_query import open_views

    if not args.sql and not args.tables:
        print_error("give a SQL statement, or --tables to see what there is to query")
        return 2
    connection, views = open_views(args.data_dir, local_settings(args.data_dir))
    if args.tables:
        for view in views:
            if not view.files:
                print(f"{view.table.name}: no files yet under {args.data_dir}/ ({view.table.description})")
                continue
            columns = connection.execute(f"DESCRIBE {view.table.name}").fetchall()
            print(f"{view.table.name}: {view.files} files; " + ", ".join(f"{c[0]} {c[1]}" for c in columns))
        if not args.sql:
            return 0
    try:
        cursor = connection.execute(args.sql)
        headers = tuple(column[0] for column in cursor.description or ())
        rows = cursor.fetchall()
    except duckdb.Error as exc:
        missing = [v.table.name for v in views if not v.files]
        hint = f" (no files yet for: {', '.join(missing)})" if missing else ""
        print_error(f"{str(exc).splitlines()[0]}{hint}")
        return 2
    if args.json:
        for values in rows:
            print(json.dumps(dict(zip(headers, values)), default=str))
    else:
        print_table([tuple(map(str, values)) for values in rows], headers, sys.stdout)
    return 0
