"""One real emulator process (plain HTTP) per test session, and Graph clients for it."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from tests.support.emulator import CLIENT_ID, SCOPE, SECRET, TENANT, start_emulator
from tests.support.emulator import Emulator as Emu

__all__ = ["CLIENT_ID", "SCOPE", "SECRET", "TENANT", "Emu", "drain", "start_emulator"]


@pytest.fixture(scope="session")
def emu(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Emu]:
    e = start_emulator(tmp_path_factory.mktemp("emulator") / "state")
    try:
        yield e
    finally:
        e.process.terminate()


@pytest.fixture
def graph(emu: Emu) -> Iterator[httpx.Client]:
    with emu.client() as c:
        yield c


@pytest.fixture(scope="session")
def mailbox_user(emu: Emu) -> dict:
    with emu.client() as c:
        users = c.get("/users", params={"$select": "id,userPrincipalName,mail,userType"}).json()["value"]
    return next(u for u in users if u["mail"] and u["userType"] == "Member")


def drain(
    client: httpx.Client, url: str, headers: dict[str, str] | None = None, params: dict | None = None
) -> tuple[list[dict], str, int]:
    """Follow nextLinks to the deltaLink: (items, deltaLink, pages)."""
    items: list[dict] = []
    pages = 0
    r = client.get(url, headers=headers, params=params)
    while True:
        assert r.status_code == 200, r.text
        body = r.json()
        pages += 1
        items.extend(body["value"])
        if "@odata.nextLink" in body:
            assert "@odata.deltaLink" not in body
            r = client.get(body["@odata.nextLink"], headers=headers)
            continue
        return items, body["@odata.deltaLink"], pages
