"""POST /v3/Token and the bearer check, against the real server."""

from __future__ import annotations

import subprocess
from datetime import timedelta
from email.utils import parsedate_to_datetime

import pytest
from sqlalchemy import select

from m365vault.db.config_tables import ApiToken, User
from tests.api.conftest import ADMIN_PASSWORD, ADMIN_USER, M365VAULT, RunningServer, unique


def test_password_grant_gives_an_owin_style_pair(server: RunningServer) -> None:
    with server.client() as c:
        r = c.post(
            "/v3/Token",
            content=f"grant_type=password&username={ADMIN_USER.upper()}&password={ADMIN_PASSWORD}",
            headers={"Content-Type": "application/x-www-form-urlencoded", "Accept": "application/json"},
        )
    assert r.status_code == 200, r.text
    body = r.json()
    assert set(body) == {
        "access_token",
        "token_type",
        "expires_in",
        "refresh_token",
        "userName",
        ".issued",
        ".expires",
    }
    assert body["token_type"] == "bearer" and body["expires_in"] == 3600
    assert body["userName"] == ADMIN_USER
    issued, expires = parsedate_to_datetime(body[".issued"]), parsedate_to_datetime(body[".expires"])
    assert body[".issued"].endswith(" GMT") and expires - issued == timedelta(minutes=60)
    assert body["access_token"] != body["refresh_token"] and len(body["access_token"]) >= 40
    assert r.headers["cache-control"] == "no-store"


@pytest.mark.parametrize("path", ["/v3/token", "/V3/TOKEN", "/v3/Token/"])
def test_json_body_and_any_path_case(server: RunningServer, path: str) -> None:
    with server.client() as c:
        r = c.post(path, json={"grant_type": "password", "username": ADMIN_USER, "password": ADMIN_PASSWORD})
    assert r.status_code == 200, r.text
    with server.client(r.json()["access_token"]) as c:
        assert c.get("/v3/Jobs").status_code == 200


def test_refresh_replaces_both_tokens(server: RunningServer) -> None:
    first = server.login()
    with server.client() as c:
        r = c.post("/v3/Token", data={"grant_type": "refresh_token", "refresh_token": first["refresh_token"]})
        assert r.status_code == 200, r.text
        second = r.json()
        assert second["access_token"] != first["access_token"]
        # The old pair is gone: its refresh token is refused, its access token too.
        again = c.post(
            "/v3/Token", data={"grant_type": "refresh_token", "refresh_token": first["refresh_token"]}
        )
        assert again.status_code == 400 and again.json()["error"] == "invalid_grant"
    with server.client(first["access_token"]) as c:
        assert c.get("/v3/Jobs").status_code == 401
    with server.client(second["access_token"]) as c:
        assert c.get("/v3/Jobs").status_code == 200


@pytest.mark.parametrize(
    ("form", "error"),
    [
        ({"grant_type": "password", "username": ADMIN_USER, "password": "wrong-password"}, "invalid_grant"),
        ({"grant_type": "password", "username": "nobody-here", "password": "x"}, "invalid_grant"),
        ({"grant_type": "client_credentials"}, "unsupported_grant_type"),
        ({"grant_type": "password", "username": ADMIN_USER}, "invalid_request"),
        ({"grant_type": "refresh_token"}, "invalid_request"),
    ],
)
def test_token_errors_are_oauth_shaped(server: RunningServer, form: dict[str, str], error: str) -> None:
    with server.client() as c:
        r = c.post("/v3/Token", data=form)
    assert r.status_code == 400
    assert r.json()["error"] == error and r.json()["error_description"]


def test_non_object_token_body_is_400(server: RunningServer) -> None:
    with server.client() as c:
        r = c.post("/v3/Token", content=b"[1,2", headers={"Content-Type": "application/json"})
    assert r.status_code == 400 and r.json()["error"] == "invalid_request"


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer not-a-token"},
        {"Authorization": "Basic dXNlcjpwYXNz"},
        {"Authorization": "Bearer"},
    ],
)
@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/v3/Jobs"),
        ("GET", "/v3/organizations"),
        ("POST", "/v3/Jobs/3396ba22-21b1-4666-a631-0edfc12a59cd/Action"),
        ("GET", "/v3/RestoreSessions"),
        ("PUT", "/v3/ExclusionSettings"),
        ("GET", "/v3/no/such/route"),
    ],
)
def test_missing_or_unknown_bearer_is_401(
    server: RunningServer, headers: dict[str, str], method: str, path: str
) -> None:
    with server.client() as c:
        r = c.request(method, path, headers=headers, content=b"{not json")
    assert r.status_code == 401
    assert r.json() == {"message": "Authorization has been denied for this request."}
    assert r.headers["www-authenticate"] == "Bearer"


def test_health_and_swagger_need_no_token(server: RunningServer) -> None:
    with server.client() as c:
        assert c.get("/health").status_code == 200
        spec = c.get("/swagger/v3/swagger.json").json()
        assert "/v3/Jobs/{jobId}/Action" in spec["paths"]
        assert "/v3/Token" in spec["paths"] and spec["paths"]["/v3/Token"]["post"]["security"] == []
        assert spec["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"
        assert not any("422" in op["responses"] for ops in spec["paths"].values() for op in ops.values())
        ui = c.get("/swagger")
        assert ui.status_code == 200 and "swagger-ui" in ui.text
        # The UI's assets come from this server, not a CDN: the page works offline.
        assert "cdn." not in ui.text
        bundle = c.get("/swagger/assets/swagger-ui-bundle.js")
        assert bundle.status_code == 200 and "SwaggerUIBundle" in bundle.text


def test_tokens_and_passwords_are_stored_only_as_hashes(server: RunningServer) -> None:
    tokens = server.login()
    with server.engine.begin() as db:
        hashes = set(db.scalars(select(ApiToken.token_hash)))
        password_hash = db.scalar(select(User.password_hash).where(User.name_key == ADMIN_USER))
    assert tokens["access_token"] not in hashes and tokens["refresh_token"] not in hashes
    assert password_hash is not None and password_hash.startswith("$argon2id$")
    assert ADMIN_PASSWORD not in password_hash


def test_repeated_failures_lock_the_account(server: RunningServer) -> None:
    # A fresh account, added with the admin CLI against the running server's database.
    name, password = unique("locked"), "Right-Password-1"
    subprocess.run(
        [
            M365VAULT,
            "admin",
            "add",
            name,
            "--data-dir",
            str(server.data_dir),
            "--db",
            server.db_url,
            "--password",
            password,
        ],
        check=True,
        capture_output=True,
    )
    server.login(name, password)
    with server.client() as c:
        for _ in range(5):
            r = c.post("/v3/Token", data={"grant_type": "password", "username": name, "password": "guess"})
            assert r.status_code == 400
        # Locked now: even the right password is refused, with a retry hint.
        r = c.post("/v3/Token", data={"grant_type": "password", "username": name, "password": password})
        assert r.status_code == 429
        assert int(r.headers["retry-after"]) > 0 and r.json()["error"] == "invalid_grant"
    # Other accounts are unaffected.
    server.login()


def test_unreadable_form_is_400(server: RunningServer) -> None:
    with server.client() as c:
        r = c.post(
            "/v3/Token", content=b"--x\r\nbroken", headers={"Content-Type": "multipart/form-data; boundary=x"}
        )
    assert r.status_code == 400
