"""The Cloud SQL (PostgreSQL) DDL of the plate-solver's tables, from their one definition.

The plate-solver creates missing tables itself at first use (``sql_tables.ready_tables``);
this prints the same statements, idempotent (``IF NOT EXISTS``), for review or for ``psql``.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

from ..sql_tables import define_tables


def postgresql_ddl(schema: str | None = None) -> str:
    """``CREATE TABLE`` and ``CREATE INDEX`` statements, one per paragraph, each ending in ``;``."""
    dialect = postgresql.dialect()
    statements = []
    for table in define_tables(schema).sorted_tables:
        statements.append(str(sa.schema.CreateTable(table, if_not_exists=True).compile(dialect=dialect)).strip())
        for index in sorted(table.indexes, key=lambda i: str(i.name)):
            statements.append(str(sa.schema.CreateIndex(index, if_not_exists=True).compile(dialect=dialect)).strip())
    return "".join(f"{statement};\n\n" for statement in statements).rstrip() + "\n"
