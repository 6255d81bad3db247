"""The server's malloc settings (cli/malloc.py) are applied where the C library is glibc."""

from __future__ import annotations

import platform

import pytest

from m365vault.cli.malloc import bound_malloc


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="mallopt is glibc's")
def test_glibc_accepts_the_bounded_malloc_settings() -> None:
    assert bound_malloc() is True
