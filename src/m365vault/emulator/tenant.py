"""The base tenant: a pure function of (seed, scale), built lazily.

Directory objects (users, groups, sites, drives, lists, folder trees) are few and held in memory.
Items (messages, events, contacts, files, list items) are numbered per collection and generated on
demand from (seed, collection, index), so a `large` tenant costs no memory until it is read.
Mutations never touch this module: they live in the store as journals over this base.
"""

from __future__ import annotations

import functools
import hashlib
import random
from dataclasses import dataclass, field, replace
from pathlib import Path

from m365vault.emulator import ids

BASE_TIME = 1767225600.0  # 2026-01-01T00:00:00Z: generated items are dated before this instant

FIRST = [
    "Adele",
    "Alex",
    "Allan",
    "Diego",
    "Grady",
    "Henrietta",
    "Isaiah",
    "Johanna",
    "Joni",
    "Lee",
    "Lidia",
    "Lynne",
    "Megan",
    "Miriam",
    "Nestor",
    "Patti",
    "Pradeep",
    "Irvin",
    "Christie",
    "Debra",
    "Enrico",
    "Emily",
    "Brian",
    "Cameron",
    "Lena",
    "Omar",
    "Sofia",
    "Yuki",
    "Ravi",
    "Ingrid",
]
LAST = [
    "Vance",
    "Wilber",
    "Young",
    "Sanchez",
    "Archie",
    "Mueller",
    "Henderson",
    "Lauer",
    "Sherman",
    "Gu",
    "Holloway",
    "Robbins",
    "Bowen",
    "Wilson",
    "Patel",
    "Fernandes",
    "Cline",
    "Nakamura",
    "Okafor",
    "Lindqvist",
    "Moreau",
    "Kowalski",
    "Haddad",
    "Reyes",
    "Tanaka",
    "Berg",
]
DEPARTMENTS = ["Finance", "Sales", "Marketing", "Engineering", "Legal", "Operations", "HR", "Research"]


@dataclass(frozen=True)
class ScaleSpec:
    users: int
    messages_per_mailbox: int
    sites: int
    files_per_drive: int
    list_items: int
    events: int
    contacts: int
    big_file_share: float  # share of files over 10 MB
    threads_per_group: int  # group mailbox conversations (one thread each), on average


_MEDIUM = ScaleSpec(
    users=40,
    messages_per_mailbox=250,
    sites=8,
    files_per_drive=40,
    list_items=60,
    events=40,
    contacts=40,
    big_file_share=0.01,
    threads_per_group=8,
)

SCALES = {
    "small": ScaleSpec(
        users=8,
        messages_per_mailbox=60,
        sites=3,
        files_per_drive=10,
        list_items=8,
        events=6,
        contacts=5,
        big_file_share=0.0,
        threads_per_group=3,
    ),
    # A tenth of medium (same mailbox and drive shape, a tenth of the users and sites): the small
    # side of bench_backup's (c) peak-memory ratio.
    "tenth": replace(_MEDIUM, users=4, sites=1),
    "medium": _MEDIUM,
    "large": ScaleSpec(
        users=200,
        messages_per_mailbox=700,
        sites=30,
        files_per_drive=36,
        list_items=300,
        events=150,
        contacts=120,
        big_file_share=0.02,
        threads_per_group=20,
    ),
}


@dataclass(frozen=True)
class User:
    index: int
    id: str
    upn: str
    display_name: str
    given_name: str
    surname: str
    mail: str | None
    user_type: str  # Member | Guest
    account_enabled: bool
    has_mailbox: bool
    has_drive: bool
    department: str
    job_title: str
    purpose: str  # user | shared


@dataclass(frozen=True)
class Group:
    index: int
    id: str
    display_name: str
    mail_nickname: str
    site_index: int


@dataclass(frozen=True)
class Site:
    index: int
    id: str
    name: str
    display_name: str
    web_url: str
    is_root: bool
    is_personal: bool
    owner_user: int | None  # personal sites: the user whose OneDrive this is


@dataclass(frozen=True)
class Drive:
    number: int
    id: str
    name: str
    drive_type: str  # business | documentLibrary
    site_index: int
    owner_user: int | None
    owner_group: int | None
    list_id: str


@dataclass(frozen=True)
class ListDef:
    site_index: int
    id: str
    name: str
    display_name: str
    template: str  # documentLibrary | genericList
    drive_number: int | None


@dataclass(frozen=True)
class MailFolderDef:
    number: int
    well_known: str | None
    display_name: str
    parent: int | None  # folder number; None for msgfolderroot
    hidden: bool
    weight: float  # share of the mailbox's messages


# Folder 0 is msgfolderroot (the parent of top-level folders; not listed itself).
MAIL_FOLDERS: tuple[MailFolderDef, ...] = (
    MailFolderDef(0, "msgfolderroot", "Top of Information Store", None, False, 0.0),
    MailFolderDef(1, "inbox", "Inbox", 0, False, 0.45),
    MailFolderDef(2, "drafts", "Drafts", 0, False, 0.02),
    MailFolderDef(3, "sentitems", "Sent Items", 0, False, 0.18),
    MailFolderDef(4, "deleteditems", "Deleted Items", 0, False, 0.05),
    MailFolderDef(5, "archive", "Archive", 0, False, 0.08),
    MailFolderDef(6, "junkemail", "Junk Email", 0, False, 0.03),
    MailFolderDef(7, "outbox", "Outbox", 0, False, 0.0),
    MailFolderDef(8, None, "Projects", 1, False, 0.07),
    MailFolderDef(9, None, "Contoso Rollout", 8, False, 0.05),
    MailFolderDef(10, None, "Phase 2", 9, False, 0.03),
    MailFolderDef(11, None, "Receipts", 0, False, 0.04),
    MailFolderDef(12, None, "Conversation History", 0, True, 0.0),
)
WELL_KNOWN = {f.well_known: f.number for f in MAIL_FOLDERS if f.well_known}


@dataclass(frozen=True)
class DriveEntry:
    """One base item of a drive: index 0 is the root folder."""

    index: int
    parent: int | None
    name: str
    is_folder: bool
    size: int
    versions: int
    created: float


@dataclass(eq=False)
class Tenant:
    seed: int
    scale: str
    domain: str
    spec: ScaleSpec = field(init=False)
    users: list[User] = field(init=False)
    groups: list[Group] = field(init=False)
    sites: list[Site] = field(init=False)
    drives: list[Drive] = field(init=False)
    lists: list[ListDef] = field(init=False)

    def __post_init__(self) -> None:
        self.spec = SCALES[self.scale]
        self.corpus: list[Path] = []
        self.tenant_id = ids.guid(self.seed, "tenant", self.domain)
        self.short = self.domain.split(".")[0]
        self.sp_host = f"{self.short}.sharepoint.com"
        self._build_users()
        self._build_sites_and_drives()
        self.mailboxes = [u for u in self.users if u.has_mailbox]
        self.user_by_id = {u.id: u for u in self.users}
        self.user_by_upn = {u.upn.lower(): u for u in self.users}
        self.group_by_id = {g.id: g for g in self.groups}
        self.site_by_id = {s.id.lower(): s for s in self.sites}
        self.drive_by_id = {d.id: d for d in self.drives}
        self.list_by_id = {(lst.site_index, lst.id): lst for lst in self.lists}

    def load_corpus(self, directory: Path) -> None:
        """Real messages (e.g. the SpamAssassin corpus) for a share of the mailboxes' mail."""
        self.corpus = sorted(p for p in directory.rglob("*.txt") if p.is_file())
        if not self.corpus:
            raise ValueError(f"no *.txt messages under {directory}")

    # ------------------------------------------------------------------ directory
    def _build_users(self) -> None:
        rng = random.Random(f"{self.seed}:users")
        self.users = []
        taken: set[str] = set()
        n = self.spec.users
        for i in range(n):
            first, last = rng.choice(FIRST), rng.choice(LAST)
            alias = f"{first}.{last}".lower()
            while alias in taken:
                alias = f"{alias}{rng.randint(2, 99)}"
            taken.add(alias)
            guest = i == n - 1
            kind = i % 6
            has_mailbox = not guest and kind != 5
            has_drive = has_mailbox and kind != 4
            upn = f"{alias}_fabrikam.com#EXT#@{self.domain}" if guest else f"{alias}@{self.domain}"
            self.users.append(
                User(
                    index=i,
                    id=ids.guid(self.seed, "user", i),
                    upn=upn,
                    display_name=f"{first} {last}",
                    given_name=first,
                    surname=last,
                    mail=(
                        f"{alias}@fabrikam.com"
                        if guest
                        else (f"{alias}@{self.domain}" if has_mailbox else None)
                    ),
                    user_type="Guest" if guest else "Member",
                    account_enabled=kind != 5 or i % 2 == 0,
                    has_mailbox=has_mailbox,
                    has_drive=has_drive,
                    department=DEPARTMENTS[i % len(DEPARTMENTS)],
                    job_title=rng.choice(
                        ["Analyst", "Engineer", "Manager", "Director", "Consultant", "Assistant"]
                    ),
                    purpose="shared" if kind == 4 else "user",
                )
            )

    def _build_sites_and_drives(self) -> None:
        self.sites, self.drives, self.lists, self.groups = [], [], [], []
        n_groups = max(2, self.spec.sites - 1)
        names = [
            "Marketing",
            "Finance",
            "Engineering",
            "Legal",
            "Sales",
            "Operations",
            "HR",
            "Research",
            "Support",
            "Design",
        ]
        # Site 0: the root site; sites 1..n_groups: group-connected team sites; then personal sites.
        self._add_site(0, "", "Communication site", is_root=True)
        for g in range(n_groups):
            title = f"{names[g % len(names)]}{'' if g < len(names) else g // len(names) + 1}"
            site_index = len(self.sites)
            self._add_site(site_index, title.lower(), title)
            self.groups.append(
                Group(
                    index=g,
                    id=ids.guid(self.seed, "group", g),
                    display_name=title,
                    mail_nickname=title.lower(),
                    site_index=site_index,
                )
            )
        for u in self.users:
            if u.has_drive:
                self._add_personal_site(u)

    def _site_id(self, host: str, index: int) -> str:
        return f"{host},{ids.guid(self.seed, 'sitecoll', index)},{ids.guid(self.seed, 'web', index)}"

    def _add_site(self, index: int, name: str, title: str, is_root: bool = False) -> None:
        url = f"https://{self.sp_host}" + ("" if is_root else f"/sites/{name}")
        self.sites.append(
            Site(
                index=index,
                id=self._site_id(self.sp_host, index),
                name=name or "root",
                display_name=title,
                web_url=url,
                is_root=is_root,
                is_personal=False,
                owner_user=None,
            )
        )
        libraries = ["Documents"] if index % 3 else ["Documents", "Archive"]
        for lib in libraries:
            self._add_drive(
                lib, "documentLibrary", index, None, owner_group=None if is_root or index == 0 else index - 1
            )
        list_id = ids.guid(self.seed, "list", index, "Tasks")
        self.lists.append(ListDef(index, list_id, "Tasks", "Tasks", "genericList", None))

    def _add_personal_site(self, user: User) -> None:
        index = len(self.sites)
        host = f"{self.short}-my.sharepoint.com"
        path = user.upn.replace("@", "_").replace(".", "_")
        self.sites.append(
            Site(
                index=index,
                id=self._site_id(host, index),
                name=path,
                display_name=user.display_name,
                web_url=f"https://{host}/personal/{path}",
                is_root=False,
                is_personal=True,
                owner_user=user.index,
            )
        )
        self._add_drive("OneDrive", "business", index, user.index, None)

    def _add_drive(
        self, name: str, drive_type: str, site: int, user: int | None, owner_group: int | None
    ) -> None:
        number = len(self.drives)
        list_id = ids.guid(self.seed, "list", site, name)
        drive = Drive(
            number=number,
            id=ids.make(self.seed, "b!", 0, number),
            name=name,
            drive_type=drive_type,
            site_index=site,
            owner_user=user,
            owner_group=owner_group,
            list_id=list_id,
        )
        self.drives.append(drive)
        display = "Documents" if name == "OneDrive" else name
        self.lists.append(
            ListDef(
                site,
                list_id,
                name if name != "Documents" else "Shared Documents",
                display,
                "documentLibrary",
                number,
            )
        )

    def user(self, key: str) -> User | None:
        return self.user_by_id.get(key.lower()) or self.user_by_upn.get(key.lower())

    def user_drive(self, user: User) -> Drive | None:
        for d in self.drives:
            if d.owner_user == user.index:
                return d
        return None

    def group_drive(self, group: Group) -> Drive:
        return next(d for d in self.drives if d.site_index == group.site_index)

    def site_drives(self, site: Site) -> list[Drive]:
        return [d for d in self.drives if d.site_index == site.index]

    def site_lists(self, site: Site) -> list[ListDef]:
        return [lst for lst in self.lists if lst.site_index == site.index]

    # ------------------------------------------------------------------ mail
    def folder_message_count(self, user: User, folder: int) -> int:
        if not user.has_mailbox:
            return 0
        rng = random.Random(f"{self.seed}:mbx:{user.index}")
        total = int(self.spec.messages_per_mailbox * rng.uniform(0.8, 1.2))
        if user.purpose == "shared":
            total //= 2
        return int(total * MAIL_FOLDERS[folder].weight)

    def mailbox_message_total(self) -> int:
        return sum(self.folder_message_count(u, f.number) for u in self.users for f in MAIL_FOLDERS)

    # ------------------------------------------------------------------ files
    @functools.lru_cache(maxsize=1024)  # noqa: B019 (the tenant lives as long as the process)
    def drive_entries(self, drive_number: int) -> tuple[DriveEntry, ...]:
        rng = random.Random(f"{self.seed}:drive:{drive_number}")
        n_files = max(3, int(self.spec.files_per_drive * rng.uniform(0.6, 1.4)))
        entries = [DriveEntry(0, None, "root", True, 0, 1, BASE_TIME - 400 * 86400)]
        folder_names = [
            "Reports",
            "Contracts",
            "Photos",
            "Projects",
            "Archive 2024",
            "Drafts",
            "Budget",
            "Presentations",
        ]
        n_folders = min(len(folder_names), 2 + n_files // 12)
        folders = [0]
        for f in range(n_folders):
            parent = rng.choice(folders[: max(1, len(folders))]) if f >= 2 else 0
            entries.append(
                DriveEntry(
                    len(entries),
                    parent,
                    folder_names[f],
                    True,
                    0,
                    1,
                    BASE_TIME - rng.uniform(200, 400) * 86400,
                )
            )
            folders.append(len(entries) - 1)
        kinds = [
            ("docx", 0.3),
            ("xlsx", 0.15),
            ("pdf", 0.2),
            ("pptx", 0.08),
            ("jpg", 0.12),
            ("txt", 0.07),
            ("zip", 0.05),
            ("mp4", 0.03),
        ]
        used: set[tuple[int, str]] = set()
        for i in range(n_files):
            ext = rng.choices([k for k, _ in kinds], [w for _, w in kinds])[0]
            roll = rng.random()
            if roll < self.spec.big_file_share or (drive_number == self.first_library() and i == 0):
                size = rng.randint(10_500_000, 24_000_000)
            elif roll < 0.62:
                size = rng.randint(2_000, 60_000)
            elif roll < 0.92:
                size = rng.randint(60_000, 1_000_000)
            else:
                size = rng.randint(1_000_000, 8_000_000)
            parent = rng.choice(folders)
            name = (
                f"{rng.choice(['Q', 'Plan', 'Notes', 'Invoice', 'Minutes', 'Design', 'Offer'])} {i:03d}.{ext}"
            )
            if (parent, name.lower()) in used:
                continue
            used.add((parent, name.lower()))
            versions = 1 + (rng.random() < 0.35) + (rng.random() < 0.15)
            entries.append(
                DriveEntry(
                    len(entries), parent, name, False, size, versions, BASE_TIME - rng.uniform(1, 200) * 86400
                )
            )
        return tuple(entries)

    def first_library(self) -> int:
        """The drive that always holds a file over 10 MB, even at `small` scale."""
        return next(d.number for d in self.drives if d.drive_type == "documentLibrary" and d.site_index == 1)

    def version_size(self, entry: DriveEntry, version: int) -> int:
        """Older versions differ in size a little, as edited documents do."""
        if version == entry.versions:
            return entry.size
        h = int.from_bytes(hashlib.sha256(f"{entry.index}:{version}".encode()).digest()[:4], "big")
        return max(1, int(entry.size * (0.7 + (h % 300) / 1000)))

    def total_file_bytes(self) -> int:
        return sum(e.size for d in self.drives for e in self.drive_entries(d.number) if not e.is_folder)
