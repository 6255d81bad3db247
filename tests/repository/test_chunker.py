"""The stream chunker cuts exactly where cutting the whole content at once does, in any feeding,
while holding no more than a maximum chunk plus an average one (and the piece being fed)."""

from __future__ import annotations

import random

from hypothesis import given, settings
from hypothesis import strategies as st

from m365vault.repository.chunker import ChunkerParams, StreamChunker, cut_all

PARAMS = ChunkerParams(min_size=1024, avg_size=4096, max_size=16384)


@settings(max_examples=60, deadline=None)
@given(
    size=st.integers(0, 120_000),
    pieces=st.lists(st.integers(1, 9000), min_size=1, max_size=12),
    seed=st.integers(0, 2**31),
    repeated=st.booleans(),
)
def test_streamed_cuts_match_whole_cuts_in_bounded_memory(
    size: int, pieces: list[int], seed: int, repeated: bool
) -> None:
    rng = random.Random(seed)
    # Random bytes cut on content; a run of one byte value is cut only at max_size.
    data = b"x" * size if repeated else rng.randbytes(size)
    expected = [bytes(data[offset : offset + length]) for offset, length in cut_all(PARAMS, 7, data)]
    chunker = StreamChunker(PARAMS, 7)
    got: list[bytes] = []
    at = 0
    for n in range(len(data)):
        if at >= len(data):
            break
        piece = data[at : at + pieces[n % len(pieces)]]
        at += len(piece)
        got.extend(chunker.feed(piece))
        assert len(chunker._buffer) <= PARAMS.max_size + PARAMS.avg_size + len(piece)
    got.extend(chunker.finish())
    assert got == expected
