"""Job scope -> the objects to back up, one task each.

The scope is the job's backupType plus its SelectedItems and ExcludedItems (reference §6.4),
given here as plain dataclasses (the API layer parses the wire's lenient JSON into them).
The plan is deterministic (sorted) and deduplicated: a site reached through a group, a Site item
and PersonalSites is one object.

Choices where v3 is silent:
- EntireOrganization covers every user mailbox, archive mailbox, OneDrive and personal site, every
  group mailbox and every site.
- PartialOrganization's `sites` covers non-personal sites; personal sites come only through
  PersonalSites, a User's `personalSite` or EntireOrganization; its `mailbox` covers group
  mailboxes too.
- An excluded item with no service flag set excludes every service of that item.
- A selected object that no longer exists, or a selected service the user does not have, is a
  plan warning (the run ends Warning); EntireOrganization skips missing services silently.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from m365vault.engine.ports import (
    BackupObject,
    ObjectKind,
    TenantDirectory,
    TenantGroup,
    TenantSite,
    TenantUser,
)

# ---------------------------------------------------------------- job items


@dataclass(frozen=True)
class UserItem:
    user_id: str
    mailbox: bool = False
    archive_mailbox: bool = False
    onedrive: bool = False
    personal_site: bool = False

    def any_flag(self) -> bool:
        return self.mailbox or self.archive_mailbox or self.onedrive or self.personal_site


@dataclass(frozen=True)
class GroupItem:
    """`members` expands the group's members; the member_* flags choose their services (all by
    default, so a v3 body with only `members: true` backs up everything of every member)."""

    group_id: str
    members: bool = False
    mailbox: bool = False
    group_site: bool = False
    member_mailbox: bool = True
    member_archive_mailbox: bool = True
    member_onedrive: bool = True
    member_site: bool = True

    def any_flag(self) -> bool:
        return self.members or self.mailbox or self.group_site


@dataclass(frozen=True)
class SiteItem:
    site_id: str


@dataclass(frozen=True)
class PersonalSitesItem:
    pass


@dataclass(frozen=True)
class PartialOrganizationItem:
    mailbox: bool = False
    archive_mailbox: bool = False
    onedrive: bool = False
    sites: bool = False

    def kinds(self) -> frozenset[ObjectKind]:
        chosen: set[ObjectKind] = set()
        if self.mailbox:
            chosen |= {ObjectKind.MAILBOX, ObjectKind.GROUP_MAILBOX}
        if self.archive_mailbox:
            chosen.add(ObjectKind.ARCHIVE_MAILBOX)
        if self.onedrive:
            chosen.add(ObjectKind.ONEDRIVE)
        if self.sites:
            chosen.add(ObjectKind.SITE)
        return frozenset(chosen)


JobItem = UserItem | GroupItem | SiteItem | PersonalSitesItem | PartialOrganizationItem


@dataclass(frozen=True)
class JobScope:
    entire_organization: bool
    selected: Sequence[JobItem] = ()
    excluded: Sequence[JobItem] = ()


@dataclass(frozen=True)
class Plan:
    objects: tuple[BackupObject, ...]
    warnings: tuple[str, ...] = field(default=())


# ---------------------------------------------------------------- planning

_KIND_ORDER = {kind: index for index, kind in enumerate(ObjectKind)}


def _sort_key(obj: BackupObject) -> tuple[int, str, str]:
    return (_KIND_ORDER[obj.kind], obj.name.casefold(), obj.id)


class _Collector:
    """Objects keyed by (kind, id), first name wins; warnings in order."""

    def __init__(self) -> None:
        self.objects: dict[tuple[str, str], BackupObject] = {}
        self.warnings: list[str] = []

    def add(self, obj: BackupObject) -> None:
        self.objects.setdefault(obj.key, obj)

    def warn(self, text: str) -> None:
        if text not in self.warnings:
            self.warnings.append(text)


def _user_objects(
    user: TenantUser,
    *,
    mailbox: bool,
    archive: bool,
    onedrive: bool,
    personal_site: bool,
    out: _Collector,
    explicit: bool,
) -> None:
    def missing(service: str) -> None:
        if explicit:
            out.warn(f"User {user.name} has no {service}")

    if mailbox:
        if user.has_mailbox:
            out.add(BackupObject(ObjectKind.MAILBOX, user.id, user.name))
        else:
            missing("mailbox")
    if archive:
        if user.has_archive_mailbox:
            out.add(BackupObject(ObjectKind.ARCHIVE_MAILBOX, user.id, user.name, archive_id=user.archive_id))
        elif user.archive_problem:  # one warning per distinct reason, not one per user
            out.warn(f"Archive mailboxes could not be looked up: {user.archive_problem}")
        else:
            missing("archive mailbox")
    if onedrive:
        if user.has_onedrive:
            drive = (user.onedrive,) if user.onedrive else None
            out.add(BackupObject(ObjectKind.ONEDRIVE, user.id, user.name, collections=drive))
        else:
            missing("OneDrive")
    if personal_site:
        if user.personal_site_id:
            out.add(BackupObject(ObjectKind.PERSONAL_SITE, user.personal_site_id, user.name))
        else:
            missing("personal site")


def _site_object(site: TenantSite) -> BackupObject:
    kind = ObjectKind.PERSONAL_SITE if site.is_personal else ObjectKind.SITE
    return BackupObject(kind, site.id, site.name)


async def _group_objects(
    group: TenantGroup, item: GroupItem, directory: TenantDirectory, out: _Collector, explicit: bool
) -> None:
    if item.mailbox:
        if group.has_mailbox:
            out.add(BackupObject(ObjectKind.GROUP_MAILBOX, group.id, group.name))
        elif explicit:
            out.warn(f"Group {group.name} has no mailbox")
    if item.group_site:
        if group.site_id:
            site = await directory.site(group.site_id)
            out.add(_site_object(site) if site else BackupObject(ObjectKind.SITE, group.site_id, group.name))
        elif explicit:
            out.warn(f"Group {group.name} has no site")
    if item.members:
        async for member in directory.group_members(group.id):
            _user_objects(
                member,
                mailbox=item.member_mailbox,
                archive=item.member_archive_mailbox,
                onedrive=item.member_onedrive,
                personal_site=item.member_site,
                out=out,
                explicit=False,  # a member without a OneDrive is normal, not a warning
            )


async def _whole_organization(
    directory: TenantDirectory, kinds: frozenset[ObjectKind], out: _Collector
) -> None:
    user_kinds = {ObjectKind.MAILBOX, ObjectKind.ARCHIVE_MAILBOX, ObjectKind.ONEDRIVE}
    if kinds & user_kinds:
        async for user in directory.users():
            _user_objects(
                user,
                mailbox=ObjectKind.MAILBOX in kinds,
                archive=ObjectKind.ARCHIVE_MAILBOX in kinds,
                onedrive=ObjectKind.ONEDRIVE in kinds,
                personal_site=False,  # personal sites come from the site listing below
                out=out,
                explicit=False,
            )
    if ObjectKind.GROUP_MAILBOX in kinds:
        async for group in directory.groups():
            if group.has_mailbox:
                out.add(BackupObject(ObjectKind.GROUP_MAILBOX, group.id, group.name))
    if kinds & {ObjectKind.SITE, ObjectKind.PERSONAL_SITE}:
        async for site in directory.sites():
            obj = _site_object(site)
            if obj.kind in kinds:
                out.add(obj)


async def _selected(item: JobItem, directory: TenantDirectory, out: _Collector) -> None:
    if isinstance(item, UserItem):
        user = await directory.user(item.user_id)
        if user is None:
            out.warn(f"User {item.user_id} was not found in the organization")
            return
        _user_objects(
            user,
            mailbox=item.mailbox,
            archive=item.archive_mailbox,
            onedrive=item.onedrive,
            personal_site=item.personal_site,
            out=out,
            explicit=True,
        )
    elif isinstance(item, GroupItem):
        group = await directory.group(item.group_id)
        if group is None:
            out.warn(f"Group {item.group_id} was not found in the organization")
            return
        await _group_objects(group, item, directory, out, explicit=True)
    elif isinstance(item, SiteItem):
        site = await directory.site(item.site_id)
        if site is None:
            out.warn(f"Site {item.site_id} was not found in the organization")
            return
        out.add(_site_object(site))
    elif isinstance(item, PersonalSitesItem):
        await _whole_organization(directory, frozenset({ObjectKind.PERSONAL_SITE}), out)
    else:
        await _whole_organization(directory, item.kinds(), out)


_ALL_KINDS = frozenset(ObjectKind)


async def _excluded(
    item: JobItem, directory: TenantDirectory
) -> tuple[set[tuple[str, str]], frozenset[ObjectKind]]:
    """Keys and whole kinds an excluded item removes from the plan."""
    keys: set[tuple[str, str]] = set()
    if isinstance(item, UserItem):
        every = not item.any_flag()
        ours = _Collector()
        user = await directory.user(item.user_id) or TenantUser(
            item.user_id, item.user_id, has_archive_mailbox=True
        )
        _user_objects(
            user,
            mailbox=every or item.mailbox,
            archive=every or item.archive_mailbox,
            onedrive=every or item.onedrive,
            personal_site=every or item.personal_site,
            out=ours,
            explicit=False,
        )
        keys |= set(ours.objects)
        return keys, frozenset()
    if isinstance(item, GroupItem):
        every = not item.any_flag()
        group = await directory.group(item.group_id)
        if group is None:
            return {(ObjectKind.GROUP_MAILBOX.value, item.group_id)}, frozenset()
        flags = GroupItem(
            group.id,
            members=item.members,
            mailbox=every or item.mailbox,
            group_site=every or item.group_site,
            member_mailbox=item.member_mailbox,
            member_archive_mailbox=item.member_archive_mailbox,
            member_onedrive=item.member_onedrive,
            member_site=item.member_site,
        )
        ours = _Collector()
        await _group_objects(group, flags, directory, ours, explicit=False)
        return set(ours.objects), frozenset()
    if isinstance(item, SiteItem):
        site_keys = {(ObjectKind.SITE.value, item.site_id), (ObjectKind.PERSONAL_SITE.value, item.site_id)}
        return site_keys, frozenset()
    if isinstance(item, PersonalSitesItem):
        return keys, frozenset({ObjectKind.PERSONAL_SITE})
    kinds = item.kinds()
    return keys, kinds or (_ALL_KINDS - {ObjectKind.PERSONAL_SITE})


async def plan_backup(scope: JobScope, directory: TenantDirectory) -> Plan:
    """The objects a run of this scope backs up, sorted by kind, name and id.

    Directory errors propagate: a run that cannot enumerate its organization cannot start.
    """
    out = _Collector()
    if scope.entire_organization:
        await _whole_organization(directory, _ALL_KINDS, out)
    else:
        for item in scope.selected:
            await _selected(item, directory, out)
    excluded_keys: set[tuple[str, str]] = set()
    excluded_kinds: set[ObjectKind] = set()
    for item in scope.excluded:
        keys, kinds = await _excluded(item, directory)
        excluded_keys |= keys
        excluded_kinds |= kinds
    kept = _without(out.objects.values(), excluded_keys, excluded_kinds)
    return Plan(tuple(sorted(kept, key=_sort_key)), tuple(out.warnings))


def _without(
    objects: Iterable[BackupObject], keys: set[tuple[str, str]], kinds: set[ObjectKind]
) -> list[BackupObject]:
    return [obj for obj in objects if obj.key not in keys and obj.kind not in kinds]
