"""Benchmarks: each prints its figures and its ratio against a peer or a physical limit measured
in the same run. Run one with `.venv/bin/python -m bench.<name>`; `make bench` runs them all."""
