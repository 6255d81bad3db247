"""A Graph-compatible Microsoft 365 tenant for tests, benchmarks and the demo.

RULE: imports nothing else of m365vault, and nothing but the CLI and tests imports it. It is
built from shared/reference/graph-protocol.md, independently of the connector, so that a
misunderstanding of Graph cannot hide in shared code.
"""
