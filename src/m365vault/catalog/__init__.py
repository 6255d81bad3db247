"""The item-version catalog: every version of every backed-up item, with the time it was first
seen and the time it stopped existing; point-in-time, show-deleted and all-versions queries.

Tables are declared in `m365vault.db` (schema lives with the migrations); the logic lives here.
"""
