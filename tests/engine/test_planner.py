"""Job scope -> objects: every job item kind, selected and excluded, deterministic and deduplicated."""

from __future__ import annotations

import pytest

from m365vault.engine.planner import (
    GroupItem,
    JobItem,
    JobScope,
    PartialOrganizationItem,
    PersonalSitesItem,
    SiteItem,
    UserItem,
    plan_backup,
)
from m365vault.engine.ports import ObjectKind, TenantGroup, TenantSite, TenantUser
from m365vault.engine.testing import FakeTenant

MB, AR, GM, OD, PS, SI = (
    ObjectKind.MAILBOX,
    ObjectKind.ARCHIVE_MAILBOX,
    ObjectKind.GROUP_MAILBOX,
    ObjectKind.ONEDRIVE,
    ObjectKind.PERSONAL_SITE,
    ObjectKind.SITE,
)


def tenant() -> FakeTenant:
    """adele: mailbox, archive, OneDrive, personal site; bob: mailbox only; carol: OneDrive only.
    Group sales (members adele, bob) has a mailbox and the team site; group quiet has neither."""
    t = FakeTenant()
    t.add_user(TenantUser("adele", "adele@contoso.com", True, True, True, "ps-adele"))
    t.add_user(TenantUser("bob", "bob@contoso.com", True, False, False, None))
    t.add_user(TenantUser("carol", "carol@contoso.com", False, False, True, None))
    t.add_group(TenantGroup("sales", "Sales", True, "site-sales"), members=["adele", "bob"])
    t.add_group(TenantGroup("quiet", "Quiet", False, None), members=["carol"])
    t.add_site(TenantSite("site-root", "https://contoso.sharepoint.com"))
    t.add_site(TenantSite("site-sales", "https://contoso.sharepoint.com/sites/sales"))
    t.add_site(TenantSite("ps-adele", "https://contoso-my.sharepoint.com/personal/adele", is_personal=True))
    return t


MEMBER_MAILBOXES = GroupItem(
    "sales", members=True, member_archive_mailbox=False, member_onedrive=False, member_site=False
)

EVERYTHING = [
    (MB, "adele"),
    (MB, "bob"),
    (AR, "adele"),
    (GM, "sales"),
    (OD, "adele"),
    (OD, "carol"),
    (PS, "ps-adele"),
    (SI, "site-root"),
    (SI, "site-sales"),
]


async def plan(entire: bool, selected: list[JobItem] = (), excluded: list[JobItem] = ()):  # type: ignore[assignment]
    result = await plan_backup(JobScope(entire, list(selected), list(excluded)), tenant())
    return [(obj.kind, obj.id) for obj in result.objects], list(result.warnings)


async def test_entire_organization_covers_every_service_in_a_stable_order() -> None:
    objects, warnings = await plan(True)
    assert objects == EVERYTHING
    assert warnings == []
    again, _ = await plan(True)
    assert again == objects


SELECTED = [
    ("user mailbox", [UserItem("adele", mailbox=True)], [(MB, "adele")], []),
    ("user archive", [UserItem("adele", archive_mailbox=True)], [(AR, "adele")], []),
    ("user onedrive", [UserItem("adele", onedrive=True)], [(OD, "adele")], []),
    ("user personal site", [UserItem("adele", personal_site=True)], [(PS, "ps-adele")], []),
    (
        "user all flags",
        [UserItem("adele", True, True, True, True)],
        [(MB, "adele"), (AR, "adele"), (OD, "adele"), (PS, "ps-adele")],
        [],
    ),
    (
        "user service missing",
        [UserItem("bob", mailbox=True, onedrive=True, archive_mailbox=True)],
        [(MB, "bob")],
        ["User bob@contoso.com has no archive mailbox", "User bob@contoso.com has no OneDrive"],
    ),
    ("user not found", [UserItem("zed", mailbox=True)], [], ["User zed was not found in the organization"]),
    ("group mailbox", [GroupItem("sales", mailbox=True)], [(GM, "sales")], []),
    ("group site", [GroupItem("sales", group_site=True)], [(SI, "site-sales")], []),
    (
        "group members, all services",
        [GroupItem("sales", members=True)],
        [(MB, "adele"), (MB, "bob"), (AR, "adele"), (OD, "adele"), (PS, "ps-adele")],
        [],
    ),
    (
        "group members, mailboxes only",
        [
            GroupItem(
                "sales", members=True, member_archive_mailbox=False, member_onedrive=False, member_site=False
            )
        ],
        [(MB, "adele"), (MB, "bob")],
        [],
    ),
    (
        "group without mailbox or site",
        [GroupItem("quiet", mailbox=True, group_site=True)],
        [],
        ["Group Quiet has no mailbox", "Group Quiet has no site"],
    ),
    (
        "group not found",
        [GroupItem("nope", mailbox=True)],
        [],
        ["Group nope was not found in the organization"],
    ),
    ("site", [SiteItem("site-root")], [(SI, "site-root")], []),
    ("personal site as a site", [SiteItem("ps-adele")], [(PS, "ps-adele")], []),
    ("site not found", [SiteItem("gone")], [], ["Site gone was not found in the organization"]),
    ("personal sites", [PersonalSitesItem()], [(PS, "ps-adele")], []),
    (
        "partial organization: mailboxes",
        [PartialOrganizationItem(mailbox=True)],
        [(MB, "adele"), (MB, "bob"), (GM, "sales")],
        [],
    ),
    ("partial organization: archives", [PartialOrganizationItem(archive_mailbox=True)], [(AR, "adele")], []),
    (
        "partial organization: onedrive",
        [PartialOrganizationItem(onedrive=True)],
        [(OD, "adele"), (OD, "carol")],
        [],
    ),
    (
        "partial organization: sites",
        [PartialOrganizationItem(sites=True)],
        [(SI, "site-root"), (SI, "site-sales")],
        [],
    ),
    (
        "overlapping items are one object each",
        [
            GroupItem("sales", members=True, group_site=True),
            UserItem("adele", mailbox=True),
            SiteItem("site-sales"),
            PersonalSitesItem(),
        ],
        [(MB, "adele"), (MB, "bob"), (AR, "adele"), (OD, "adele"), (PS, "ps-adele"), (SI, "site-sales")],
        [],
    ),
]


@pytest.mark.parametrize(
    ("selected", "expected", "warnings"), [c[1:] for c in SELECTED], ids=[c[0] for c in SELECTED]
)
async def test_selected_items(selected: list[JobItem], expected: list, warnings: list[str]) -> None:
    objects, got_warnings = await plan(False, selected)
    assert objects == expected
    assert got_warnings == warnings


EXCLUDED = [
    ("user, one service", [UserItem("adele", onedrive=True)], [o for o in EVERYTHING if o != (OD, "adele")]),
    (
        "user, no flag: every service",
        [UserItem("adele")],
        [(MB, "bob"), (GM, "sales"), (OD, "carol"), (SI, "site-root"), (SI, "site-sales")],
    ),
    ("unknown user: nothing", [UserItem("zed", mailbox=True)], EVERYTHING),
    ("group mailbox", [GroupItem("sales", mailbox=True)], [o for o in EVERYTHING if o != (GM, "sales")]),
    (
        "group, no flag: its mailbox and site",
        [GroupItem("sales")],
        [o for o in EVERYTHING if o not in {(GM, "sales"), (SI, "site-sales")}],
    ),
    (
        "group members' mailboxes",
        [
            GroupItem(
                "sales", members=True, member_archive_mailbox=False, member_onedrive=False, member_site=False
            )
        ],
        [o for o in EVERYTHING if o not in {(MB, "adele"), (MB, "bob")}],
    ),
    ("site", [SiteItem("site-root")], [o for o in EVERYTHING if o != (SI, "site-root")]),
    ("personal sites", [PersonalSitesItem()], [o for o in EVERYTHING if o[0] is not PS]),
    (
        "partial organization: mailboxes",
        [PartialOrganizationItem(mailbox=True)],
        [o for o in EVERYTHING if o[0] not in {MB, GM}],
    ),
    (
        "partial organization: archives and OneDrive",
        [PartialOrganizationItem(archive_mailbox=True, onedrive=True)],
        [o for o in EVERYTHING if o[0] not in {AR, OD}],
    ),
    (
        "partial organization: sites",
        [PartialOrganizationItem(sites=True)],
        [o for o in EVERYTHING if o[0] is not SI],
    ),
    ("partial organization, no flag", [PartialOrganizationItem()], [(PS, "ps-adele")]),
]


@pytest.mark.parametrize(("excluded", "expected"), [c[1:] for c in EXCLUDED], ids=[c[0] for c in EXCLUDED])
async def test_excluded_items_from_the_entire_organization(excluded: list[JobItem], expected: list) -> None:
    objects, _ = await plan(True, excluded=excluded)
    assert objects == expected


async def test_exclusions_apply_to_selected_items_too() -> None:
    objects, _ = await plan(
        False,
        selected=[GroupItem("sales", members=True, mailbox=True, group_site=True)],
        excluded=[UserItem("bob"), SiteItem("site-sales")],
    )
    assert objects == [(MB, "adele"), (AR, "adele"), (GM, "sales"), (OD, "adele"), (PS, "ps-adele")]


async def test_directory_errors_propagate() -> None:
    t = tenant()
    t.directory_error = ConnectionError("graph down")
    with pytest.raises(ConnectionError):
        await plan_backup(JobScope(True), t)
