"""Helpers the test suites share: free ports, temporary PostgreSQL databases, SeaweedFS, and
child processes started and stopped by PID."""
