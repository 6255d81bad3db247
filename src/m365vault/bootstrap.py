"""Composition root: wires real adapters (database, repository backends, Graph connector, clock)
into the use cases. The CLI calls this; tests may wire fakes instead."""
