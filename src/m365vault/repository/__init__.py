"""The storage engine: chunking, content ids, compression, encryption, pack files, index, check.

Knows nothing of Microsoft 365. The on-disk format is specified in docs/repository-format.md.
"""
