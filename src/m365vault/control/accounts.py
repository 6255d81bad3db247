"""Administrator accounts, bearer tokens and login throttling.

Passwords are argon2 hashes; tokens are random 256-bit strings stored only as SHA-256 hashes (they
carry full entropy, so a fast hash is enough and lookups stay indexed). Failed logins are counted per
account and per client address; past the limit, logins are refused for a while even with the right
password, so the lock cannot be used to confirm a guess.
"""

from __future__ import annotations

import hashlib
import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from m365vault.control.errors import AuthenticationFailed, InvalidRequest, LoginThrottled, NotFound
from m365vault.control.services import Services
from m365vault.db.config_tables import ApiToken, LoginThrottle, User

ACCESS_TOKEN_LIFETIME = timedelta(minutes=60)
REFRESH_TOKEN_LIFETIME = timedelta(days=14)


@dataclass(frozen=True)
class ThrottlePolicy:
    account_failures: int = 5  # per account within `window`
    address_failures: int = 20  # per client address within `window` (covers many accounts)
    window: timedelta = timedelta(minutes=15)
    lockout: timedelta = timedelta(minutes=15)


@dataclass(frozen=True)
class Principal:
    """The account a request runs as."""

    user_id: uuid.UUID
    name: str


@dataclass(frozen=True)
class IssuedTokens:
    access_token: str
    refresh_token: str
    user_name: str
    issued: datetime
    expires: datetime

    def __repr__(self) -> str:
        return f"IssuedTokens(user_name={self.user_name!r}, expires={self.expires!r})"


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _throttle_key(kind: str, value: str) -> str:
    """The throttle row's key; over-long values (anyone may send any user name) are hashed."""
    key = f"{kind}:{value}"
    return key if len(key) <= 200 else f"{kind}#{hashlib.sha256(value.encode()).hexdigest()}"


def _check_password_rules(password: str) -> None:
    if len(password) < 8:
        raise InvalidRequest("The password must have at least 8 characters.")


class Accounts:
    def __init__(
        self, services: Services, throttle: ThrottlePolicy | None = None, hasher: PasswordHasher | None = None
    ) -> None:
        self._s = services
        self._throttle = throttle or ThrottlePolicy()
        # argon2id with the library's RFC 9106 defaults; tests may pass cheaper parameters.
        self._hasher = hasher or PasswordHasher()
        self._dummy: str | None = None

    @property
    def _dummy_hash(self) -> str:
        """Verified when the user name is unknown, so both paths cost one argon2 verification.
        Made on first use: CLI commands that never log in should not pay for it."""
        if self._dummy is None:
            self._dummy = self._hasher.hash(secrets.token_urlsafe(16))
        return self._dummy

    # ------------------------------------------------------------ accounts (CLI and first start)
    def add(self, name: str, password: str) -> uuid.UUID:
        name = name.strip()
        if not name or len(name) > 256:
            raise InvalidRequest("The user name must have 1 to 256 characters.")
        _check_password_rules(password)
        password_hash = self._hasher.hash(password)
        try:
            with self._s.unit_of_work() as db:
                user = User(
                    name=name,
                    name_key=name.casefold(),
                    password_hash=password_hash,
                    created_at=self._s.clock(),
                )
                db.add(user)
                db.flush()
                return user.id
        except IntegrityError as exc:
            raise InvalidRequest(f"The user '{name}' already exists.") from exc

    def set_password(self, name: str, password: str) -> None:
        _check_password_rules(password)
        password_hash = self._hasher.hash(password)
        with self._s.unit_of_work() as db:
            user = db.scalar(select(User).where(User.name_key == name.strip().casefold()))
            if user is None:
                raise NotFound(f"There is no user '{name}'.")
            user.password_hash = password_hash
            # A new password ends every session of the account.
            db.execute(delete(ApiToken).where(ApiToken.user_id == user.id))

    def names(self) -> list[str]:
        with self._s.unit_of_work() as db:
            return list(db.scalars(select(User.name).order_by(User.name_key)))

    def count(self) -> int:
        return len(self.names())

    # ------------------------------------------------------------ tokens
    def login(self, name: str, password: str, client_address: str) -> IssuedTokens:
        """Password grant. Raises LoginThrottled or AuthenticationFailed."""
        now = self._s.clock()
        keys = [_throttle_key("user", name.strip().casefold()), _throttle_key("addr", client_address)]
        self._refuse_if_locked(keys, now)
        with self._s.unit_of_work() as db:
            user = db.scalar(select(User).where(User.name_key == name.strip().casefold()))
            stored_hash = user.password_hash if user else self._dummy_hash
            user_id, user_name = (user.id, user.name) if user else (None, "")
        # argon2 runs outside any transaction: it is deliberately slow.
        try:
            ok = self._hasher.verify(stored_hash, password) and user_id is not None
        except (VerificationError, InvalidHashError):
            ok = False
        if not ok or user_id is None:
            self._record_failure(keys, now)
            raise AuthenticationFailed("The user name or password is incorrect.")
        with self._s.unit_of_work() as db:
            db.execute(delete(LoginThrottle).where(LoginThrottle.key == keys[0]))
            if self._hasher.check_needs_rehash(stored_hash):
                db.get_one(User, user_id).password_hash = self._hasher.hash(password)
            db.execute(delete(ApiToken).where(ApiToken.expires_at < now))
            return self._issue(db, user_id, user_name, now)

    def refresh(self, refresh_token: str, client_address: str) -> IssuedTokens:
        """Refresh grant: the old pair is revoked and a new pair issued."""
        now = self._s.clock()
        address_key = _throttle_key("addr", client_address)
        self._refuse_if_locked([address_key], now)
        with self._s.unit_of_work() as db:
            row = db.scalar(
                select(ApiToken).where(
                    ApiToken.token_hash == _token_hash(refresh_token), ApiToken.kind == "refresh"
                )
            )
            if row is not None and row.expires_at > now:
                user = db.get_one(User, row.user_id)
                db.execute(delete(ApiToken).where(ApiToken.pair_id == row.pair_id))
                return self._issue(db, user.id, user.name, now)
        self._record_failure([address_key], now)
        raise AuthenticationFailed("The refresh token is invalid or has expired.")

    def authenticate(self, access_token: str) -> Principal:
        """Resolve a bearer token; raises AuthenticationFailed if missing, unknown or expired."""
        if not access_token:
            raise AuthenticationFailed("Authorization has been denied for this request.")
        now = self._s.clock()
        with self._s.unit_of_work() as db:
            row = db.execute(
                select(ApiToken.expires_at, User.id, User.name)
                .join(User, User.id == ApiToken.user_id)
                .where(ApiToken.token_hash == _token_hash(access_token), ApiToken.kind == "access")
            ).first()
        if row is None or row.expires_at <= now:
            raise AuthenticationFailed("Authorization has been denied for this request.")
        return Principal(user_id=row.id, name=row.name)

    def _issue(self, db: Session, user_id: uuid.UUID, user_name: str, now: datetime) -> IssuedTokens:
        pair = uuid.uuid4()
        access, refresh = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
        expires = now + ACCESS_TOKEN_LIFETIME
        db.add(
            ApiToken(
                user_id=user_id,
                kind="access",
                token_hash=_token_hash(access),
                pair_id=pair,
                issued_at=now,
                expires_at=expires,
            )
        )
        db.add(
            ApiToken(
                user_id=user_id,
                kind="refresh",
                token_hash=_token_hash(refresh),
                pair_id=pair,
                issued_at=now,
                expires_at=now + REFRESH_TOKEN_LIFETIME,
            )
        )
        return IssuedTokens(access, refresh, user_name, now, expires)

    # ------------------------------------------------------------ throttling
    def _refuse_if_locked(self, keys: list[str], now: datetime) -> None:
        with self._s.unit_of_work() as db:
            rows = db.scalars(select(LoginThrottle).where(LoginThrottle.key.in_(keys))).all()
        for row in rows:
            if row.locked_until is not None and row.locked_until > now:
                wait = max(1, int((row.locked_until - now).total_seconds()))
                raise LoginThrottled("Too many failed logins. Try again later.", retry_after=wait)

    def _record_failure(self, keys: list[str], now: datetime) -> None:
        for key in keys:
            limit = (
                self._throttle.account_failures
                if key.startswith(("user:", "user#"))
                else self._throttle.address_failures
            )
            # Two failures at once may both try to create the row; the loser retries as an update.
            for _attempt in range(3):
                try:
                    with self._s.unit_of_work() as db:
                        row = db.get(LoginThrottle, key, with_for_update=True)
                        if row is None:
                            row = LoginThrottle(key=key, failures=0, window_start=now)
                            db.add(row)
                        elif now - row.window_start > self._throttle.window:
                            row.failures, row.window_start, row.locked_until = 0, now, None
                        row.failures += 1
                        if row.failures >= limit:
                            row.locked_until = now + self._throttle.lockout
                            row.failures, row.window_start = 0, now
                    break
                except IntegrityError:
                    continue
