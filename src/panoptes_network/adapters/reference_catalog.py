"""Reference stars for a field: the interface the plate-solver matches against.

Implementations, chosen by ``PANOPTES_REFERENCE_CATALOG`` (``adapters/backends.py``):

- ``tycho2_index_catalog.Tycho2IndexCatalog`` (``tycho2``): the Tycho-2 stars inside the
  installed astrometry.net index files, read by the ``query-starkd`` program. Nothing to load:
  the default for embedded runs and tests.
- ``sql_catalog.SqlCatalog`` (``sql``): the SQL table ``reference_stars`` (a TESS Input Catalog
  subset in Cloud SQL), filled by ``panoptes-network catalog load FILE``.
"""

from __future__ import annotations

from typing import Protocol

from panoptes_network.science.catalog_stars import CatalogStars


class ReferenceCatalog(Protocol):
    @property
    def name(self) -> str:
        """The catalog's name in stamp rows and records (``tycho2``, ``tic``)."""
        ...

    def cone(self, ra: float, dec: float, radius_deg: float, mag_range: tuple[float, float]) -> CatalogStars:
        """Stars within ``radius_deg`` of (ra, dec) and inside ``mag_range`` (bright, faint), in
        an order that does not change between calls."""
        ...
