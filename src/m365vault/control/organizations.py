"""Organizations: Microsoft 365 tenants added with application-only (Azure AD app) credentials.

Credentials are sealed with the server key before they reach the database and are only opened to
hand them to the connector. When no `TenantVerifier` is wired, adding or editing an organization
stores the credentials WITHOUT checking them against the tenant (the connector issue wires it).
"""

from __future__ import annotations

import base64
import binascii
import uuid
from dataclasses import dataclass, field, replace
from datetime import timedelta
from urllib.parse import urlsplit

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.serialization import pkcs12
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from m365vault.control.enums import OrganizationType, Region
from m365vault.control.errors import InvalidRequest, NotAvailable, NotFound
from m365vault.control.ports import TenantCredentials, TenantPage
from m365vault.control.services import Services, in_thread
from m365vault.db.config_tables import BackupRepository, Job, LicensedUser, Organization


@dataclass(frozen=True)
class OnlineSettingsInput:
    use_application_only_auth: bool | None = None
    office_organization_name: str | None = None
    application_id: uuid.UUID | None = None
    application_secret: str | None = field(default=None, repr=False)
    application_certificate: str | None = field(default=None, repr=False)  # base64 PFX
    application_certificate_password: str | None = field(default=None, repr=False)
    account: str | None = None  # basic / MFA auth: not supported
    password: str | None = field(default=None, repr=False)


@dataclass(frozen=True)
class OrganizationInput:
    """A new organization, or the changed parts of one (None = not given)."""

    type: OrganizationType | None = None
    region: Region | None = None
    is_exchange_online: bool | None = None
    is_sharepoint_online: bool | None = None
    exchange: OnlineSettingsInput | None = None
    sharepoint: OnlineSettingsInput | None = None
    graph_endpoint: str | None = None
    authority_endpoint: str | None = None


@dataclass(frozen=True)
class _AppCredentials:
    name: str
    application_id: uuid.UUID
    secret: str | None = field(repr=False)
    pfx: bytes | None = field(repr=False)
    pfx_password: str | None = field(repr=False)
    thumbprint: str | None


@dataclass(frozen=True)
class LicensingInformation:
    licensed_users: int
    new_users: int


NEW_USER_PERIOD = timedelta(days=30)


def _purpose(org_id: uuid.UUID, what: str) -> str:
    return f"organization:{org_id}:{what}"


def _check_endpoint(value: str | None, field: str) -> str | None:
    if value is None or value == "":
        return None
    parts = urlsplit(value)
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise InvalidRequest(f"'{field}' must be an absolute http(s) URL.")
    return value.rstrip("/")


def _certificate(pfx_b64: str, password: str | None) -> tuple[bytes, str]:
    """Decode and open a PFX; return its bytes and the SHA-1 thumbprint of its certificate."""
    try:
        pfx = base64.b64decode(pfx_b64, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise InvalidRequest("'applicationCertificate' must be a base64-encoded PFX file.") from exc
    try:
        _key, cert, _extra = pkcs12.load_key_and_certificates(pfx, password.encode() if password else None)
    except (ValueError, TypeError) as exc:
        raise InvalidRequest("The application certificate cannot be opened with the given password.") from exc
    if cert is None or _key is None:
        raise InvalidRequest("The application certificate must contain a certificate and its private key.")
    return pfx, cert.fingerprint(hashes.SHA1()).hex().upper()


def _app_credentials(settings: list[OnlineSettingsInput]) -> _AppCredentials | None:
    """Merge the Exchange and SharePoint blocks: one Azure AD app serves both (our choice)."""
    names = {s.office_organization_name.strip().lower() for s in settings if s.office_organization_name}
    app_ids = {s.application_id for s in settings if s.application_id}
    for s in settings:
        if s.use_application_only_auth is False or (s.account and not s.application_id):
            raise InvalidRequest(
                "Only application-only authentication is supported: set 'useApplicationOnlyAuth' to true "
                "and give 'officeOrganizationName', 'applicationId' and 'applicationSecret' "
                "or 'applicationCertificate'."
            )
    if len(names) > 1 or len(app_ids) > 1:
        raise InvalidRequest(
            "exchangeOnlineSettings and sharePointOnlineSettings must name the same organization "
            "and application."
        )
    if (
        not names
        and not app_ids
        and not any(s.application_secret or s.application_certificate for s in settings)
    ):
        return None
    if not names:
        raise InvalidRequest("'officeOrganizationName' is required.")
    if not app_ids:
        raise InvalidRequest("'applicationId' is required.")
    secret = next((s.application_secret for s in settings if s.application_secret), None)
    cert_input = next((s for s in settings if s.application_certificate), None)
    if secret and cert_input:
        raise InvalidRequest("Give either 'applicationSecret' or 'applicationCertificate', not both.")
    pfx = thumbprint = pfx_password = None
    if cert_input is not None and cert_input.application_certificate:
        pfx_password = cert_input.application_certificate_password
        pfx, thumbprint = _certificate(cert_input.application_certificate, pfx_password)
    return _AppCredentials(names.pop(), app_ids.pop(), secret, pfx, pfx_password, thumbprint)


class Organizations:
    def __init__(self, services: Services) -> None:
        self._s = services

    def all(self) -> list[Organization]:
        with self._s.unit_of_work() as db:
            return list(db.scalars(select(Organization).order_by(Organization.name_key)))

    def get(self, org_id: uuid.UUID) -> Organization:
        with self._s.unit_of_work() as db:
            org = db.get(Organization, org_id)
            if org is None:
                raise NotFound(f"Organization with id '{org_id}' was not found.")
            return org

    async def add(self, spec: OrganizationInput) -> Organization:
        org_type = spec.type or OrganizationType.Office365
        if org_type is not OrganizationType.Office365:
            raise InvalidRequest("Only Office 365 organizations are supported.")
        settings = [s for s in (spec.exchange, spec.sharepoint) if s is not None]
        app = _app_credentials(settings)
        if app is None:
            raise InvalidRequest(
                "exchangeOnlineSettings or sharePointOnlineSettings with an application is required."
            )
        if not app.secret and not app.pfx:
            raise InvalidRequest("'applicationSecret' or 'applicationCertificate' is required.")
        exchange = (
            spec.is_exchange_online if spec.is_exchange_online is not None else spec.exchange is not None
        )
        sharepoint = (
            spec.is_sharepoint_online
            if spec.is_sharepoint_online is not None
            else spec.sharepoint is not None
        )
        if not exchange and not sharepoint:
            raise InvalidRequest("At least one of 'isExchangeOnline' and 'isSharePointOnline' must be true.")
        org_id = uuid.uuid4()
        org = Organization(
            id=org_id,
            name=app.name,
            name_key=app.name,
            type=org_type.value,
            region=(spec.region or Region.Worldwide).value,
            is_exchange_online=exchange,
            is_sharepoint_online=sharepoint,
            graph_endpoint=_check_endpoint(spec.graph_endpoint, "graphEndpoint"),
            authority_endpoint=_check_endpoint(spec.authority_endpoint, "authorityEndpoint"),
            created_at=self._s.clock(),
        )
        self._apply_credentials(org, app)
        await in_thread(lambda: self._check_new_name(org.name_key))  # before asking the tenant
        await self._verify(org)
        return await in_thread(lambda: self._insert(org))

    def _check_new_name(self, name_key: str) -> None:
        with self._s.unit_of_work() as db:
            if db.scalar(select(Organization.id).where(Organization.name_key == name_key)) is not None:
                raise InvalidRequest(f"Organization '{name_key}' has already been added.")

    def _insert(self, org: Organization) -> Organization:
        try:
            with self._s.unit_of_work() as db:
                db.add(org)
        except IntegrityError as exc:
            raise InvalidRequest(f"Organization '{org.name}' has already been added.") from exc
        return org

    async def edit(self, org_id: uuid.UUID, spec: OrganizationInput) -> Organization:
        org = await in_thread(lambda: self.get(org_id))
        if spec.type is not None and spec.type is not OrganizationType.Office365:
            raise InvalidRequest("Only Office 365 organizations are supported.")
        # Fill the blocks' missing credentials from the stored ones, so that a PUT may omit secrets.
        stored = OnlineSettingsInput(office_organization_name=org.name, application_id=org.application_id)
        settings = [_merge(s, stored) for s in (spec.exchange, spec.sharepoint) if s is not None]
        app = _app_credentials(settings)
        if app is not None:
            changed_app = app.application_id != org.application_id or app.name != org.name_key
            if changed_app and not app.secret and not app.pfx:
                raise InvalidRequest(
                    "A new application or organization name needs 'applicationSecret' "
                    "or 'applicationCertificate'."
                )
            if app.name != org.name_key:
                org.name = org.name_key = app.name
            org.application_id = app.application_id
            if app.secret or app.pfx:
                self._apply_credentials(org, app)
        if spec.region is not None:
            org.region = spec.region.value
        if spec.is_exchange_online is not None:
            org.is_exchange_online = spec.is_exchange_online
        if spec.is_sharepoint_online is not None:
            org.is_sharepoint_online = spec.is_sharepoint_online
        if not org.is_exchange_online and not org.is_sharepoint_online:
            raise InvalidRequest("At least one of 'isExchangeOnline' and 'isSharePointOnline' must be true.")
        if spec.graph_endpoint is not None:
            org.graph_endpoint = _check_endpoint(spec.graph_endpoint, "graphEndpoint")
        if spec.authority_endpoint is not None:
            org.authority_endpoint = _check_endpoint(spec.authority_endpoint, "authorityEndpoint")
        await self._verify(org)
        return await in_thread(lambda: self._update(org))

    def _update(self, org: Organization) -> Organization:
        try:
            with self._s.unit_of_work() as db:
                db.merge(org)
        except IntegrityError as exc:
            raise InvalidRequest(f"Organization '{org.name}' has already been added.") from exc
        return org

    def delete(self, org_id: uuid.UUID) -> None:
        with self._s.unit_of_work() as db:
            org = db.get(Organization, org_id)
            if org is None:
                raise NotFound(f"Organization with id '{org_id}' was not found.")
            jobs = db.scalar(select(func.count()).select_from(Job).where(Job.organization_id == org_id))
            if jobs:
                raise InvalidRequest(
                    f"Organization '{org.name}' cannot be removed: {jobs} backup job(s) use it. "
                    "Remove them first."
                )
            db.delete(org)

    def used_repositories(self, org_id: uuid.UUID) -> list[BackupRepository]:
        self.get(org_id)
        with self._s.unit_of_work() as db:
            ids = select(Job.repository_id).where(Job.organization_id == org_id)
            return list(
                db.scalars(
                    select(BackupRepository)
                    .where(BackupRepository.id.in_(ids))
                    .order_by(BackupRepository.name_key)
                )
            )

    def licensing(self, org_id: uuid.UUID) -> LicensingInformation:
        self.get(org_id)
        since = self._s.clock() - NEW_USER_PERIOD
        with self._s.unit_of_work() as db:
            base = (
                select(func.count()).select_from(LicensedUser).where(LicensedUser.organization_id == org_id)
            )
            total = db.scalar(base) or 0
            new = db.scalar(base.where(LicensedUser.first_backup_time >= since)) or 0
        return LicensingInformation(licensed_users=total, new_users=new)

    def credentials(self, org_id: uuid.UUID) -> TenantCredentials:
        """The plaintext credentials of one organization, for the connector."""
        return self._credentials(self.get(org_id))

    async def tenant_objects(
        self, org_id: uuid.UUID, kind: str, offset: int, limit: int, parent_id: str | None = None
    ) -> TenantPage:
        creds = await in_thread(lambda: self.credentials(org_id))  # unknown organization: 404 first
        directory = self._s.tenant_directory
        if directory is None:
            raise NotAvailable(
                "Tenant listings are not available: the Microsoft 365 connector is not configured."
            )
        return await directory.list_objects(creds, kind, offset, limit, parent_id)

    # ------------------------------------------------------------ helpers
    def _apply_credentials(self, org: Organization, app: _AppCredentials) -> None:
        box = self._s.secrets
        org.application_id = app.application_id
        org.application_secret_sealed = (
            box.seal(app.secret, _purpose(org.id, "application_secret")) if app.secret else None
        )
        org.certificate_sealed = (
            box.seal(base64.b64encode(app.pfx).decode(), _purpose(org.id, "certificate")) if app.pfx else None
        )
        org.certificate_password_sealed = (
            box.seal(app.pfx_password, _purpose(org.id, "certificate_password")) if app.pfx_password else None
        )
        org.certificate_thumbprint = app.thumbprint

    def _credentials(self, org: Organization) -> TenantCredentials:
        box = self._s.secrets
        secret = pfx = password = None
        if org.application_secret_sealed:
            secret = box.open(org.application_secret_sealed, _purpose(org.id, "application_secret"))
        if org.certificate_sealed:
            pfx = base64.b64decode(box.open(org.certificate_sealed, _purpose(org.id, "certificate")))
        if org.certificate_password_sealed:
            password = box.open(org.certificate_password_sealed, _purpose(org.id, "certificate_password"))
        return TenantCredentials(
            organization_name=org.name,
            region=org.region,
            application_id=org.application_id,
            application_secret=secret,
            certificate_pfx=pfx,
            certificate_password=password,
            graph_endpoint=org.graph_endpoint,
            authority_endpoint=org.authority_endpoint,
            exchange_online=org.is_exchange_online,
            sharepoint_online=org.is_sharepoint_online,
        )

    async def _verify(self, org: Organization) -> None:
        verifier = self._s.tenant_verifier
        if verifier is None:
            # Explicitly unverified: no connector is wired into this server (see module docstring).
            return
        refusal = await verifier.verify(self._credentials(org))
        if refusal is not None:
            raise InvalidRequest(f"The organization's credentials were refused: {refusal}")


def _merge(given: OnlineSettingsInput, stored: OnlineSettingsInput) -> OnlineSettingsInput:
    return replace(
        given,
        office_organization_name=given.office_organization_name or stored.office_organization_name,
        application_id=given.application_id or stored.application_id,
    )
