"""``bin/deploy infra``'s BigQuery side: a dataset of external tables over the archive's Parquet
products in the buckets (``core.parquet_tables``: the tables ``panoptes-network query`` gives on
one data dir), so the same SQL runs over every observation without loading anything.

gcloud has no command for external tables (``gcloud alpha bq tables create`` makes native
tables and views only, ``gcloud alpha bq datasets create`` has no location, and an external
table's dataset must be in its bucket's region), so the creations are BigQuery DDL run by ``bq``
(the Cloud SDK's own tool); the reads that decide them are gcloud's, as everywhere else.
BigQuery reads a Parquet file to learn a table's columns, so a table is created once its
first file exists: a later ``infra`` run adds it (the lightcurves, say, after that step ran).
"""

from __future__ import annotations

import shlex

from panoptes_network.core.parquet_tables import PARQUET_TABLES, ParquetTable
from panoptes_network.deploy.cloud_names import CloudNames
from panoptes_network.deploy.gcloud_runner import Change, Gcloud

DATASET = "panoptes_archive"


def table_uri(table: ParquetTable, names: CloudNames) -> str:
    """Every object of the table's bucket whose name ends with its suffix (BigQuery allows one
    ``*``, which matches across folders)."""
    return f"gs://{names.buckets[table.bucket]}/*{table.suffix}"


def sql_text(text: str) -> str:
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def bq_query(names: CloudNames, statement: str) -> tuple[str, ...]:
    return (f"--project_id={names.project}", f"--location={names.region}", "query", "--nouse_legacy_sql", statement)


def create_dataset(names: CloudNames) -> Change:
    statement = (
        f"CREATE SCHEMA IF NOT EXISTS `{names.project}.{DATASET}` OPTIONS "
        f"(location = {sql_text(names.region)}, description = {sql_text('PANOPTES: the Parquet products as tables')})"
    )
    return Change(f"BigQuery dataset {DATASET} in {names.region}", bq_query(names, statement), program="bq")


def create_table(table: ParquetTable, names: CloudNames) -> Change:
    statement = (
        f"CREATE EXTERNAL TABLE IF NOT EXISTS `{names.project}.{DATASET}.{table.name}` OPTIONS "
        f"(format = 'PARQUET', uris = [{sql_text(table_uri(table, names))}], description = {sql_text(table.description)})"
    )
    return Change(f"BigQuery external table {DATASET}.{table.name}", bq_query(names, statement), program="bq")


def plan_archive_tables(names: CloudNames, gcloud: Gcloud) -> list[Change]:
    """The dataset and the tables that are missing (reads only); a table with no file yet is
    left for a later run, and said so."""
    p = f"--project={names.project}"
    changes = []
    if not gcloud.exists(("alpha", "bq", "datasets", "describe", DATASET, p, "--format=value(id)")):
        changes.append(create_dataset(names))
    for table in PARQUET_TABLES:
        describe = ("alpha", "bq", "tables", "describe", table.name, f"--dataset={DATASET}", p, "--format=value(id)")
        uri = table_uri(table, names).replace("/*", "/**", 1)  # gcloud's recursive wildcard
        # both reads on every run, so a run that finds everything made checks what the first checked
        listing = shlex.split(f"storage objects list {uri} {p} --limit=1 --format=value(name)")
        has_files = gcloud.exists(listing)
        if gcloud.exists(describe):
            continue
        if not has_files:
            print(f"# BigQuery table {table.name}: no {uri} yet; run infra again once there is one", file=gcloud.out)
            continue
        changes.append(create_table(table, names))
    return changes
