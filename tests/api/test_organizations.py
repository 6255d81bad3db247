"""/v3/Organizations: shapes, write-only encrypted credentials, rules, sub-resources."""

from __future__ import annotations

import base64
import uuid
from datetime import UTC, datetime, timedelta

import httpx
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import BestAvailableEncryption, pkcs12
from cryptography.x509.oid import NameOID
from sqlalchemy import insert, select

from m365vault.db.config_tables import LicensedUser, Organization
from tests.api.builders import add_job, add_org, default_repository, org_body
from tests.api.conftest import RunningServer


def _pfx(password: bytes) -> tuple[str, str]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "m365vault-test-app")])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now)
        .not_valid_after(now + timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    pfx = pkcs12.serialize_key_and_certificates(b"app", key, cert, None, BestAvailableEncryption(password))
    return base64.b64encode(pfx).decode(), cert.fingerprint(hashes.SHA1()).hex().upper()


def test_add_get_list_with_v3_shape(api: httpx.Client) -> None:
    body = org_body(secret="very-secret-value-1")
    body["graphEndpoint"] = "http://127.0.0.1:9999/graph/"
    r = api.post("/v3/Organizations", json=body)
    assert r.status_code == 201, r.text
    org = r.json()
    name = body["exchangeOnlineSettings"]["officeOrganizationName"]
    assert org["name"] == name and org["type"] == "Office365" and org["region"] == "Worldwide"
    assert (
        org["isExchangeOnline"] is True and org["isSharePointOnline"] is True and org["isBackedup"] is False
    )
    assert org["graphEndpoint"] == "http://127.0.0.1:9999/graph"
    assert org["exchangeOnlineSettings"] == {
        "useApplicationOnlyAuth": True,
        "officeOrganizationName": name,
        "applicationId": body["exchangeOnlineSettings"]["applicationId"],
    }
    assert "firstBackuptime" not in org and "lastBackuptime" not in org  # nulls left out
    assert "very-secret-value-1" not in r.text
    assert org["_links"]["self"]["href"] == f"{api.base_url}/v3/organizations/{org['id']}"
    assert org["_actions"] == {}
    assert api.get(f"/v3/Organizations/{org['id']}").json() == org
    listed = api.get("/v3/Organizations").json()
    assert isinstance(listed, list) and org in listed


def test_secret_is_stored_encrypted(server: RunningServer, api: httpx.Client) -> None:
    org = add_org(api, secret="plain-secret-marker-42")
    with server.engine.begin() as db:
        sealed = db.scalar(
            select(Organization.application_secret_sealed).where(Organization.id == uuid.UUID(org["id"]))
        )
        assert sealed is not None and b"plain-secret-marker-42" not in sealed
    assert b"plain-secret-marker-42" not in (server.data_dir / "server.key").read_bytes()


def test_certificate_credentials(api: httpx.Client) -> None:
    pfx, thumbprint = _pfx(b"pfx-pass")
    body = org_body()
    for block in ("exchangeOnlineSettings", "sharePointOnlineSettings"):
        del body[block]["applicationSecret"]
        body[block]["applicationCertificate"] = pfx
        body[block]["applicationCertificatePassword"] = "pfx-pass"
    r = api.post("/v3/Organizations", json=body)
    assert r.status_code == 201, r.text
    assert r.json()["exchangeOnlineSettings"]["applicationCertificateThumbprint"] == thumbprint
    assert pfx[:40] not in r.text and "pfx-pass" not in r.text
    body = org_body()
    del (
        body["exchangeOnlineSettings"]["applicationSecret"],
        body["sharePointOnlineSettings"]["applicationSecret"],
    )
    body["exchangeOnlineSettings"]["applicationCertificate"] = pfx
    body["exchangeOnlineSettings"]["applicationCertificatePassword"] = "wrong"
    r = api.post("/v3/Organizations", json=body)
    assert r.status_code == 400 and "certificate" in r.json()["message"]


def test_bad_organization_bodies_are_400_and_add_nothing(api: httpx.Client) -> None:
    before = len(api.get("/v3/Organizations").json())
    basic = org_body()
    basic["exchangeOnlineSettings"] = {
        "account": "admin@x.onmicrosoft.com",
        "password": "p",
        "useMfa": "false",
    }
    basic.pop("sharePointOnlineSettings")
    no_secret = org_body()
    for block in ("exchangeOnlineSettings", "sharePointOnlineSettings"):
        del no_secret[block]["applicationSecret"]
    mismatch = org_body()
    mismatch["sharePointOnlineSettings"]["applicationId"] = str(uuid.uuid4())
    cases = [
        ({**org_body(), "type": "OnPremises"}, "Office 365"),
        ({**org_body(), "type": "cloudy"}, "type"),
        ({**org_body(), "region": "Mars"}, "region"),
        ({**org_body(), "isExchangeOnline": "maybe"}, "isExchangeOnline"),
        (basic, "application-only"),
        (no_secret, "applicationSecret"),
        (mismatch, "same organization"),
        ({**org_body(), "graphEndpoint": "ftp://x"}, "graphEndpoint"),
        ({**org_body(), "isExchangeOnline": False, "isSharePointOnline": "false"}, "At least one"),
        ([org_body()], "object"),
    ]
    for body, words in cases:
        r = api.post("/v3/Organizations", json=body)
        assert r.status_code == 400, (body, r.text)
        assert words.lower() in r.json()["message"].lower(), r.json()
    bad_id = org_body()
    bad_id["exchangeOnlineSettings"]["applicationId"] = "not-a-guid"
    r = api.post("/v3/Organizations", json=bad_id)
    assert r.status_code == 400 and "applicationId" in r.json()["message"]
    assert len(api.get("/v3/Organizations").json()) == before


def test_duplicate_name_is_400(api: httpx.Client) -> None:
    org = add_org(api)
    again = org_body(name=org["name"].upper())
    r = api.post("/v3/Organizations", json=again)
    assert r.status_code == 400 and "already" in r.json()["message"]


def test_edit_keeps_stored_secret_and_changes_fields(api: httpx.Client) -> None:
    org = add_org(api)
    r = api.put(
        f"/v3/Organizations/{org['id']}", json={"region": "usgovernment", "isSharePointOnline": "false"}
    )
    assert r.status_code == 200 and r.content == b""
    edited = api.get(f"/v3/Organizations/{org['id']}").json()
    assert edited["region"] == "USgovCommunity" and edited["isSharePointOnline"] is False
    assert "sharePointOnlineSettings" not in edited
    # A different application without new credentials is refused; with them it is accepted.
    other_app = {"exchangeOnlineSettings": {"applicationId": str(uuid.uuid4())}}
    assert api.put(f"/v3/Organizations/{org['id']}", json=other_app).status_code == 400
    other_app["exchangeOnlineSettings"]["applicationSecret"] = "new-secret"
    assert api.put(f"/v3/Organizations/{org['id']}", json=other_app).status_code == 200
    assert (
        api.get(f"/v3/Organizations/{org['id']}").json()["exchangeOnlineSettings"]["applicationId"]
        == (other_app["exchangeOnlineSettings"]["applicationId"])
    )


def test_unknown_organization_is_404(api: httpx.Client) -> None:
    missing = uuid.uuid4()
    for method, path in [
        ("GET", f"/v3/Organizations/{missing}"),
        ("DELETE", f"/v3/Organizations/{missing}"),
        ("GET", f"/v3/Organizations/{missing}/Jobs"),
        ("GET", f"/v3/Organizations/{missing}/UsedRepositories"),
        ("GET", f"/v3/Organizations/{missing}/LicensingInformation"),
        ("GET", f"/v3/Organizations/{missing}/Users"),
    ]:
        r = api.request(method, path)
        assert r.status_code == 404, (method, path, r.text)
        assert str(missing) in r.json()["message"]
    r = api.put(f"/v3/Organizations/{missing}", json={"region": "Worldwide"})
    assert r.status_code == 404
    r = api.post(f"/v3/Organizations/{missing}/Action", json={"explore": {"type": "vex"}})
    assert r.status_code == 404


def test_delete_refused_while_a_job_uses_it(api: httpx.Client) -> None:
    org = add_org(api)
    job = add_job(api, org["id"], default_repository(api)["id"])
    r = api.delete(f"/v3/Organizations/{org['id']}")
    assert r.status_code == 400 and "job" in r.json()["message"]
    assert api.delete(f"/v3/Jobs/{job['id']}").status_code == 200
    r = api.delete(f"/v3/Organizations/{org['id']}")
    assert r.status_code == 200 and r.content == b""
    assert api.get(f"/v3/Organizations/{org['id']}").status_code == 404


def test_used_repositories_and_licensing(server: RunningServer, api: httpx.Client) -> None:
    org = add_org(api)
    assert api.get(f"/v3/Organizations/{org['id']}/UsedRepositories").json() == []
    repo = default_repository(api)
    add_job(api, org["id"], repo["id"])
    used = api.get(f"/v3/Organizations/{org['id']}/usedRepositories").json()
    assert used == [
        {
            "id": repo["id"],
            "name": repo["name"],
            "_links": {"backupRepository": {"href": repo["_links"]["self"]["href"]}},
        }
    ]
    assert api.get(f"/v3/Organizations/{org['id']}/LicensingInformation").json() == {
        "licensedUsers": 0,
        "newUsers": 0,
    }
    now = datetime.now(UTC)
    with server.engine.begin() as db:
        for i, first in enumerate([now - timedelta(days=90), now - timedelta(days=2)]):
            db.execute(
                insert(LicensedUser).values(
                    organization_id=uuid.UUID(org["id"]),
                    user_id=f"user-{i}",
                    name=f"u{i}@x",
                    first_backup_time=first,
                    last_backup_time=now,
                )
            )
    info = api.get(f"/v3/Organizations/{org['id']}/LicensingInformation").json()
    assert info == {"licensedUsers": 2, "newUsers": 1}


def test_explore_organization_opens_a_restore_session(api: httpx.Client) -> None:
    org = add_org(api)
    r = api.post(
        f"/v3/Organizations/{org['id']}/Action",
        json={"Explore": {"Datetime": "2017.06.26 22:07:39", "type": "VEOD", "showDeleted": "true"}},
    )
    assert r.status_code == 201, r.text
    s = r.json()
    assert s["type"] == "Veod" and s["organization"] == org["name"] and s["showDeleted"] is True
    assert s["pointInTime"] == "2017-06-26T22:07:39.0000000Z" and s["showAllVersions"] is False


def test_tenant_listings_need_the_connector(api: httpx.Client) -> None:
    org = add_org(api)
    for kind in ("Users", "Groups", "Sites", "Users/abc/OneDrives"):
        r = api.get(f"/v3/Organizations/{org['id']}/{kind}")
        assert r.status_code == 501 and "connector" in r.json()["message"]
