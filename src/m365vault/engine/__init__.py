"""Backup runs: planner (job scope -> one task per mailbox / drive / site), task queue,
proxy workers and the scheduler.

Modules:
    ports          the narrow interfaces the engine needs (tenant directory, change source,
                   content saver, version recorder, session reporter) and the values crossing them
    planner        job scope (backupType, SelectedItems, ExcludedItems) -> sorted, deduplicated objects
    queue          task queue protocol and the in-process implementation
    object_backup  one object's backup: delta pages -> content -> flush -> versions + token
    worker         proxy workers (threadsNumber loops) taking tasks from the queue
    run            one job session: plan, dispatch, retries, progress, statistics, log, final status
    service        BackupEngine: the queue, the workers and the active runs, as control/ holds them
    flushing       group commit of repository flushes shared by concurrent workers
    statistics     counters and the v3 session statistics derived from them
    testing        in-memory ports with fault injection, for tests of the engine and its adapters

Invariant: content reaches the repository and is flushed, then the catalog records the versions,
gone-marks and the delta token in one transaction; never the reverse. A stop abandons only the
page not yet recorded. The engine imports no connector, repository, catalog or database module:
adapters implement `ports` on top of them.
"""
