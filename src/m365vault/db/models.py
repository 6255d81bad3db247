"""Every table of the database, imported here so Base.metadata knows them all.

Configuration tables live in `config_tables`, catalog tables in `catalog_tables`.
"""

from __future__ import annotations

from m365vault.db import (
    catalog_tables,  # noqa: F401  (registers the catalog tables)
    config_tables,  # noqa: F401  (configuration tables)
)
from m365vault.db.base import Base

__all__ = ["Base"]
