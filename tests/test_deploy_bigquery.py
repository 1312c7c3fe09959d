"""``bin/deploy infra``'s BigQuery dataset and external tables over the Parquet products, against
the fake gcloud and bq: planned only when missing, a table only once it has a file, the DDL
naming the same tables as ``panoptes-network query`` over the buckets, and run by bq for real.
(The gcloud reads go through the real Cloud SDK's parser in test_deploy_gcloud_syntax.py; bq
cannot be checked offline: it asks for an account before it parses its flags.)"""

from __future__ import annotations

import shlex

from fixtures_deploy import PROJECT, REGION, deploy
from panoptes_network.core.parquet_tables import PARQUET_TABLES
from panoptes_network.deploy.bigquery_tables import DATASET

PROCESSED = "panoptes-processed-images"


def bq_lines(out: str) -> list[list[str]]:
    return [shlex.split(line)[1:] for line in out.splitlines() if line.startswith("bq ")]


def files_read(suffix: str) -> str:
    return f"storage objects list gs://{PROCESSED}/**{suffix} --project={PROJECT} --limit=1 --format=value(name)"


def table_read(name: str) -> str:
    return f"alpha bq tables describe {name} --dataset={DATASET} --project={PROJECT} --format=value(id)"


def test_an_empty_project_gets_the_dataset_in_its_region_and_no_table_yet(gcloud, capsys) -> None:
    status, _, out = deploy(capsys, "infra", "--dry-run")
    [dataset] = bq_lines(out)
    assert status == 0 and gcloud.bq_calls() == [], "a dry run runs nothing"
    assert dataset[:4] == [f"--project_id={PROJECT}", f"--location={REGION}", "query", "--nouse_legacy_sql"]
    assert dataset[4].startswith(f"CREATE SCHEMA IF NOT EXISTS `{PROJECT}.{DATASET}` OPTIONS (location = '{REGION}'")
    for table in PARQUET_TABLES:
        assert f"# BigQuery table {table.name}: no gs://{PROCESSED}/**{table.suffix} yet" in out


def test_a_table_is_planned_once_its_files_exist_and_never_twice(gcloud, capsys) -> None:
    with_files = [t for t in PARQUET_TABLES if t.name != "lightcurves"]
    for table in with_files:
        gcloud.state["exists"][files_read(table.suffix)] = "PAN001/abcdef/20240101T000000/x\n"
    gcloud.save()
    status, _, out = deploy(capsys, "infra", "--dry-run")
    statements = [args[4] for args in bq_lines(out)]
    assert status == 0 and len(statements) == 1 + len(with_files)
    for table, statement in zip(with_files, statements[1:]):
        uri = f"gs://{PROCESSED}/*{table.suffix}"
        assert statement.startswith(f"CREATE EXTERNAL TABLE IF NOT EXISTS `{PROJECT}.{DATASET}.{table.name}` OPTIONS")
        assert f"format = 'PARQUET', uris = ['{uri}']" in statement and uri.count("*") == 1
    assert "# BigQuery table lightcurves: no" in out
    gcloud.state["exists"][f"alpha bq datasets describe {DATASET} --project={PROJECT} --format=value(id)"] = "x\n"
    for table in with_files:
        gcloud.state["exists"][table_read(table.name)] = f"{PROJECT}:{DATASET}.{table.name}\n"
    gcloud.save()
    status, _, out = deploy(capsys, "infra", "--dry-run")
    assert status == 0 and bq_lines(out) == []
    assert "# infra, BigQuery tables over the Parquet products: no changes" in out


def test_a_real_run_runs_the_ddl_with_bq(gcloud, capsys) -> None:
    gcloud.state["exists"][files_read("-sources.parquet")] = "x\n"
    gcloud.save()
    deploy(capsys, "infra")
    calls = gcloud.bq_calls()
    assert [call[4].split(" ")[0:3] for call in calls] == [["CREATE", "SCHEMA", "IF"], ["CREATE", "EXTERNAL", "TABLE"]]
    assert f"`{PROJECT}.{DATASET}.sources`" in calls[1][4]
