"""Use cases shared by the API and the CLI: organizations, jobs and their actions, sessions,
restore sessions. The rules of the seed's job actions live here, once.

Must not: know about HTTP (no status codes, no request objects).
"""
