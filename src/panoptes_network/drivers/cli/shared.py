"""What several commands share: their common options, one-line errors, JSON and tables, opening the records."""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import json
import sys
import textwrap
from pathlib import Path
from typing import Any, TypeAlias

from panoptes_network.core import records as documents
from panoptes_network.core.context import Context
from panoptes_network.core.geo_point import GeoPoint
from panoptes_network.core.settings import Settings
from panoptes_network.drivers.archive_client import ArchiveClient
from panoptes_network.drivers.embedded import EmbeddedRunner

Commands: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"


@dataclasses.dataclass(frozen=True)
class CommonOptions:
    """The settings that give options their defaults, and the parent parsers ``--data-dir`` and ``--json``."""

    settings: Settings
    data_dir: argparse.ArgumentParser
    as_json: argparse.ArgumentParser


def common_options(settings: Settings) -> CommonOptions:
    data_dir = argparse.ArgumentParser(add_help=False)
    data_dir.add_argument(
        "--data-dir",
        type=Path,
        default=settings.data_dir,
        help="where buckets (folders) and records (metadata.sqlite) live (default: %(default)s)",
    )
    as_json = argparse.ArgumentParser(add_help=False)
    as_json.add_argument("--json", action="store_true", help="one JSON record per image on stdout")
    return CommonOptions(settings, data_dir, as_json)


def paragraph(text: str) -> str:
    """A long description, wrapped for --help (the raw formatter keeps the examples' lines as they are)."""
    return textwrap.fill(text, 92)


def print_error(message: str) -> None:
    """What the user can fix, as one line on stderr."""
    print(f"panoptes-network: {message}", file=sys.stderr)


def json_default(value: Any) -> Any:
    if isinstance(value, dt.datetime):
        return value.isoformat()
    if isinstance(value, GeoPoint):
        return {"latitude": value.latitude, "longitude": value.longitude}
    raise TypeError(f"{type(value).__name__} is not JSON")


def record_json(record: dict[str, Any]) -> str:
    """One stored record as one line of JSON (times in ISO 8601, places as latitude/longitude)."""
    return json.dumps(record, default=json_default, sort_keys=True)


def print_table(rows: list[tuple[str, ...]], headers: tuple[str, ...], out: Any) -> None:
    widths = [max(len(str(cell)) for cell in column) for column in zip(headers, *rows)]
    for row in (headers, *rows):
        print("  ".join(str(cell).ljust(width) for cell, width in zip(row, widths)).rstrip(), file=out)


def summary_row(record: dict[str, Any]) -> tuple[str, ...]:
    steps = documents.steps(record)
    done = ", ".join(f"{name}:{step.state}" for name, step in steps.items()) or "-"
    errors = [step.error for step in steps.values() if step.error]
    note = record.get("error") or record.get("reason") or (errors[0] if errors else "")
    image = record.get("image_id") or Path(record.get("input", record.get("name", "?"))).name
    return (image, record.get("status", "?"), done, note)


def local_settings(data_dir: Path) -> Settings:
    """The settings of an embedded run: the environment's, with the data directory the user chose."""
    return dataclasses.replace(Settings.from_env(), data_dir=data_dir)


def open_records(args: argparse.Namespace) -> tuple[Context, EmbeddedRunner | None] | None:
    """With --cloud, Cloud Storage, Pub/Sub and Firestore (or the local stack's emulators); else
    the data directory, with an embedded runner to process what gets published. None: no records."""
    from panoptes_network.adapters.backends import cloud_context

    if args.cloud:
        return cloud_context(Settings.from_env()), None
    if not (args.data_dir / "metadata.sqlite").exists():
        print_error(f"no records in {args.data_dir}/ (run 'process' first)")
        return None
    runner = EmbeddedRunner(args.data_dir, local_settings(args.data_dir))
    return runner.context, runner


def add_archive_options(parser: argparse.ArgumentParser) -> None:
    """``--url`` (a deployed explorer) beside ``--data-dir``: where ``search`` and ``download`` read."""
    parser.add_argument(
        "--url",
        metavar="URL",
        help="a deployed data explorer (https://...) instead of the local data dir",
    )


def open_archive(args: argparse.Namespace) -> ArchiveClient | None:
    """The explorer at --url, else the data dir's records and buckets (None, said why: no records)."""
    from panoptes_network.adapters.backends import local_context
    from panoptes_network.drivers.archive_client import LocalArchive, RemoteArchive
    from panoptes_network.explorer.archive import Archive

    if args.url:
        return RemoteArchive(args.url)
    if not (args.data_dir / "metadata.sqlite").exists():
        print_error(f"no records in {args.data_dir}/ (run 'process' first, or give --url)")
        return None
    context = local_context(local_settings(args.data_dir), args.data_dir)[0]
    return LocalArchive(Archive(context))
