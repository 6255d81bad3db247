"""Explore views over the catalog and the restore / save / export / send operations."""
