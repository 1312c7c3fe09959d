"""Where the plate-solver's postage stamps go: one interface, implemented over SQL.

A stamp row is a mapping of the ``stamps`` columns (``sql_tables``), its ``pixels`` a float32
array of ``stamp_height`` x ``stamp_width``; how the pixels are encoded is the store's business.
Implementation: ``sql_stamp_store.SqlStampStore`` (PostgreSQL in the cloud, SQLite embedded).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol

StampRow = Mapping[str, Any]


class StampStore(Protocol):
    """The stamp rows of each image, replaced as a whole."""

    @property
    def database(self) -> str:
        """What kind of database holds them (``sqlite``, ``postgresql``), for the step record."""
        ...

    def replace(self, image_id: str, rows: Sequence[StampRow]) -> int:
        """Replace every row of ``image_id`` with ``rows`` in one transaction; return the count.

        Readers see the old set or the new one, never both; two replacements of one image take turns."""
        ...

    def rows(self, image_id: str) -> list[dict[str, Any]]:
        """The stored rows of one image, by ``source_id``, pixels as float32 arrays."""
        ...

    def count(self, image_id: str) -> int:
        """How many rows the image has."""
        ...
