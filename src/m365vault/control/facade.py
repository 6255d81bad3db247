"""One object holding every use case, built once per server (or CLI run) from `Services`."""

from __future__ import annotations

from argon2 import PasswordHasher

from m365vault.control.accounts import Accounts, ThrottlePolicy
from m365vault.control.infrastructure import Proxies, Repositories
from m365vault.control.jobs import Jobs
from m365vault.control.organizations import Organizations
from m365vault.control.services import Services
from m365vault.control.sessions import JobSessions, RestoreSessions
from m365vault.control.settings import Settings


class Control:
    def __init__(
        self, services: Services, throttle: ThrottlePolicy | None = None, hasher: PasswordHasher | None = None
    ) -> None:
        self.services = services
        self.accounts = Accounts(services, throttle, hasher)
        self.organizations = Organizations(services)
        self.proxies = Proxies(services)
        self.repositories = Repositories(services)
        self.jobs = Jobs(services)
        self.job_sessions = JobSessions(services)
        self.restore_sessions = RestoreSessions(services)
        self.settings = Settings(services)
