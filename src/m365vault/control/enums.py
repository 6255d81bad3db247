"""The domain's vocabularies. Values are the PascalCase spellings v3 emits; lookup by any case."""

from __future__ import annotations

from m365vault.case_insensitive import CaseInsensitiveEnum
from m365vault.engine.schedule_policy import DailyType, PeriodicallyEvery, ScheduleType

__all__ = [  # the job schedule's vocabulary is the engine's, re-exported here with the rest
    "BackupType",
    "CaseInsensitiveEnum",
    "DailyType",
    "DayOfWeek",
    "JobItemType",
    "JobStatus",
    "MonthlyDayNumber",
    "OrganizationType",
    "PeriodicallyEvery",
    "ProxyStatus",
    "Region",
    "RestoreSessionState",
    "RestoreSessionType",
    "RetentionFrequencyType",
    "RetentionPeriodType",
    "RetentionType",
    "ScheduleType",
    "ThrottlingUnit",
    "YearlyRetentionPeriod",
]


class OrganizationType(CaseInsensitiveEnum):
    Office365 = "Office365"
    OnPremises = "OnPremises"
    Hybrid = "Hybrid"


class Region(CaseInsensitiveEnum):
    Worldwide = "Worldwide"
    USgovCommunity = "USgovCommunity"
    Germany = "Germany"
    China = "China"
    USgovDefence = "USgovDefence"


# Later servers renamed two regions; accept their spellings too.
Region._aliases = {"usgovernment": "USgovCommunity", "usdefence": "USgovDefence"}  # type: ignore[attr-defined]


class BackupType(CaseInsensitiveEnum):
    EntireOrganization = "EntireOrganization"
    SelectedItems = "SelectedItems"


class JobStatus(CaseInsensitiveEnum):
    Stopped = "Stopped"
    Running = "Running"
    Success = "Success"
    Warning = "Warning"
    Failed = "Failed"
    NotConfigured = "NotConfigured"
    Disconnected = "Disconnected"
    Queued = "Queued"


class JobItemType(CaseInsensitiveEnum):
    User = "User"
    Group = "Group"
    Site = "Site"
    PartialOrganization = "PartialOrganization"
    PersonalSites = "PersonalSites"


class RestoreSessionType(CaseInsensitiveEnum):
    Vex = "Vex"
    Veod = "Veod"
    Vesp = "Vesp"


class RestoreSessionState(CaseInsensitiveEnum):
    Starting = "Starting"
    Working = "Working"
    Stopping = "Stopping"
    Stopped = "Stopped"


class ProxyStatus(CaseInsensitiveEnum):
    Online = "Online"
    Offline = "Offline"


class ThrottlingUnit(CaseInsensitiveEnum):
    Mbps = "Mbps"
    MBs = "MBs"
    KBs = "KBs"


class RetentionType(CaseInsensitiveEnum):
    ItemLevel = "ItemLevel"
    SnapshotBased = "SnapshotBased"


class RetentionPeriodType(CaseInsensitiveEnum):
    Daily = "Daily"
    Monthly = "Monthly"
    Yearly = "Yearly"


class YearlyRetentionPeriod(CaseInsensitiveEnum):
    Year1 = "Year1"
    Years2 = "Years2"
    Years3 = "Years3"
    Years5 = "Years5"
    Years7 = "Years7"
    Years10 = "Years10"
    Years25 = "Years25"
    Keep = "Keep"


class RetentionFrequencyType(CaseInsensitiveEnum):
    Daily = "Daily"
    Monthly = "Monthly"


class MonthlyDayNumber(CaseInsensitiveEnum):
    First = "First"
    Second = "Second"
    Third = "Third"
    Fourth = "Fourth"
    Last = "Last"


class DayOfWeek(CaseInsensitiveEnum):
    Sunday = "Sunday"
    Monday = "Monday"
    Tuesday = "Tuesday"
    Wednesday = "Wednesday"
    Thursday = "Thursday"
    Friday = "Friday"
    Saturday = "Saturday"
