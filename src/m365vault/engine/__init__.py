"""Backup runs: planner (job scope -> one task per mailbox / drive / site), task queue,
proxy workers and the scheduler.

Invariant: content reaches the repository, then the catalog records the version, then the delta
token is saved; never the reverse.
"""
