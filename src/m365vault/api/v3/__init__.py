"""Routes of the Veeam Backup for Microsoft 365 REST API, version 3."""
