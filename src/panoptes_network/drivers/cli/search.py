"""``panoptes-network search``: find observations, in the local data dir or a deployed explorer."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from panoptes_network.drivers.cli.shared import (
    Commands,
    CommonOptions,
    add_archive_options,
    open_archive,
    paragraph,
    print_error,
    print_table,
)
from panoptes_network.explorer.search_filters import DEFAULT_LIMIT, MAX_LIMIT, PARAMETERS, BadQuery, SearchFilters

# The filters as options (``min_frames`` -> ``--min-frames``); limit and cursor are ours to drive.
FILTERS = [name for name in PARAMETERS if name not in ("limit", "cursor")]
COLUMNS = ("OBSERVATION", "STATUS", "START", "FRAMES", "USABLE", "FIELD", "RA", "DEC")


def add_parser(commands: Commands, options: CommonOptions) -> None:
    search = commands.add_parser(
        "search",
        parents=[options.data_dir],
        help="find observations by unit, date, target name or coordinates, status, frames",
        description=paragraph(
            "Find observations, newest first: in the data dir's records, or with --url in a "
            "deployed data explorer (its JSON API; the same filters and answers). Prints a table, or "
            "with --json one observation summary per line."
        ),
        epilog="examples:\n"
        "  panoptes-network search --target 'kic 8462'\n"
        "  panoptes-network search --ra 302.5 --dec 47.9 --radius 2 --since 2024-01-01\n"
        "  panoptes-network search --unit PAN001 --status processed --min-frames 50 --limit 500\n"
        "  panoptes-network search --url https://explorer.example.org --target wasp --json\n",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    for name in FILTERS:
        search.add_argument(f"--{name.replace('_', '-')}", dest=name, metavar=name.upper(), help=PARAMETERS[name])
    search.add_argument(
        "--limit", type=int, default=DEFAULT_LIMIT, help="at most this many observations (default: %(default)s)"
    )
    add_archive_options(search)
    search.add_argument("--json", action="store_true", help="one observation summary per line, as JSON")
    search.set_defaults(func=cmd_search)


def cmd_search(args: argparse.Namespace) -> int:
    params = {name: str(getattr(args, name)) for name in FILTERS if getattr(args, name) is not None}
    try:
        SearchFilters.parse({**params, "limit": str(max(args.limit, 1))})  # a bad filter fails here, before any request
        if args.limit < 1:
            raise BadQuery(f"--limit {args.limit} is not a positive number")
        client = open_archive(args)
        if client is None:
            return 2
        found: list[dict[str, Any]] = []
        cursor: str | None = None
        while len(found) < args.limit:
            page_size = min(args.limit - len(found), MAX_LIMIT)
            page = client.search({**params, "limit": str(page_size), **({"cursor": cursor} if cursor else {})})
            found += page["items"]
            cursor = page["next_cursor"]
            if cursor is None:
                break
    except BadQuery as exc:
        print_error(exc.message)
        return 2
    if args.json:
        for item in found:
            print(json.dumps(item, sort_keys=True))
    else:
        print_table([row(item) for item in found], COLUMNS, sys.stdout)
    if cursor is not None:
        print(f"more observations match: raise --limit (now {args.limit}) to see them", file=sys.stderr)
    return 0


def degrees(value: Any) -> str:
    return f"{value:.4f}" if isinstance(value, int | float) else "-"


def row(item: dict[str, Any]) -> tuple[str, ...]:
    field = item.get("field") or {}
    return (
        str(item["sequence_id"]),
        str(item.get("status") or "-"),
        str(item.get("start_time") or "-"),
        str(item.get("frame_count") or 0),
        str(item.get("usable_frames") if item.get("usable_frames") is not None else "-"),
        str(field.get("name") or "-"),
        degrees(field.get("ra")),
        degrees(field.get("dec")),
    )
