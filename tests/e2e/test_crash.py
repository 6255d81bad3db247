"""A server killed with SIGKILL in the middle of a backup: at restart the session is closed as
Failed with a log item saying why, the next run loses nothing, and the repository checks clean."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from datetime import datetime

import pytest

from tests.e2e.conftest import Product, _product
from tests.e2e.tenant_state import catalog_state, differences, tenant_state
from tests.support.product import M365VAULT, last_session, wait_for, wait_new_session, wait_session_end

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def crash_product(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Product]:
    yield from _product(tmp_path_factory.mktemp("crash"))


def test_kill_mid_run_then_restart_closes_the_session_and_the_next_run_loses_nothing(
    crash_product: Product,
) -> None:
    product = crash_product
    job_id = product.job["id"]
    product.emulator_config(latencyMs=150)
    assert product.action("start").status_code == 200

    def some_committed() -> bool:
        session = last_session(product.api, job_id)
        return bool(
            session
            and session["status"] == "Running"
            and (session.get("statistics") or {}).get("processedObjects")
        )

    wait_for(some_committed, 60, "pages committed by the first run")
    killed = last_session(product.api, job_id)
    assert killed is not None
    product.server.kill()
    product.emulator_config(latencyMs=0)
    product.server.restart()
    product.server._token = None
    with product.server.api() as api:
        product.api = api
        session = api.get(f"/v3/JobSessions/{killed['id']}").json()
        assert session["status"] == "Failed" and session["endTime"]
        titles = [
            i["title"]
            for i in api.get(f"/v3/JobSessions/{killed['id']}/LogItems?limit=500").json()["results"]
        ]
        assert titles[-1].startswith("[Failed]") and "server stopped" in titles[-1], titles[-3:]
        assert api.get(f"/v3/Jobs/{job_id}").json()["lastStatus"] == "Failed"

        assert product.action("start").status_code == 200
        wait_new_session(api, job_id, killed["id"])
        after = wait_session_end(api, job_id)
        assert after["status"] == "Success", after
        # Incremental: what the killed run committed is not read again.
        with product.emulator.graph() as graph:
            state = tenant_state(graph)
        at = datetime.fromisoformat(after["endTime"].replace("Z", "+00:00"))
        assert not differences(state, catalog_state(product.db, at))
    check = subprocess.run(
        [M365VAULT, "repo", "check", "--read-data", "--data-dir", str(product.server.data_dir)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert check.returncode == 0, check.stdout + check.stderr
    stats = subprocess.run(
        [M365VAULT, "repo", "stats", "--json", "--data-dir", str(product.server.data_dir),
         "--repository", "Default Backup Repository"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert stats.returncode == 0 and '"packs"' in stats.stdout, stats.stdout + stats.stderr
