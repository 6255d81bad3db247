"""Adapters that join the engine's ports (and control's ports) to the real parts.

    connector   the Graph connector as control's TenantVerifier / TenantDirectory and the
                engine's planning TenantDirectory; one GraphClient per tenant app
    source      the connector's delta readers and content as the engine's ChangeSource
    storage     the repository as ContentSaver and RepositoryInitialiser; open repositories
    recorder    the catalog as VersionRecorder (pages + token in one transaction)
    reporter    the job session tables as SessionReporter; restart recovery
    runner      control's BackupRunner on the BackupEngine: sessions, job and organization state

Only the composition root (`m365vault.bootstrap`) builds these.
"""
