"""What a run measures, and how the v3 session `statistics` are derived from it.

Workers measure, per page, the bytes read, the time spent waiting on the source (delta pages and
content streams) and the time spent waiting on the target (repository save and flush, catalog
commit). The run sums them and derives, with E the run's elapsed time, S and T the summed source
and target waits:

- processingRateBytesPS = bytes / E, processingRateItemsPS = items / E;
- readRateBytesPS = bytes / (E * S / (S + T)): the elapsed time is split between reading and
  writing in proportion to the waits, and each side's rate is the bytes over its share. Both
  rates are therefore at least the processing rate, as in v3's own examples;
- bottleneck: the side with the larger summed wait (NA until bytes have moved);
- processedObjects: items processed (new or changed versions plus removals). The v3 example has
  `progress` 1 with `processedObjects` 1193 ≈ 20 items/s x 59 s, so it counts items, not mailboxes.
"""

from __future__ import annotations

from dataclasses import dataclass

from m365vault.engine.ports import Bottleneck, SessionStatistics


@dataclass(frozen=True)
class Counts:
    """Work done on one page, one object or one run."""

    versions: int = 0  # new or changed versions recorded
    removed: int = 0  # items marked gone
    unchanged: int = 0  # returned by the source but already recorded (replays, resyncs)
    skipped: int = 0  # unreadable items left out (ItemUnreadable)
    bytes: int = 0  # content bytes read from the source
    source_seconds: float = 0.0
    target_seconds: float = 0.0

    @property
    def items(self) -> int:
        return self.versions + self.removed

    def __add__(self, other: Counts) -> Counts:
        return Counts(
            versions=self.versions + other.versions,
            removed=self.removed + other.removed,
            unchanged=self.unchanged + other.unchanged,
            skipped=self.skipped + other.skipped,
            bytes=self.bytes + other.bytes,
            source_seconds=self.source_seconds + other.source_seconds,
            target_seconds=self.target_seconds + other.target_seconds,
        )


def session_statistics(total: Counts, elapsed_seconds: float) -> SessionStatistics:
    elapsed = max(elapsed_seconds, 1e-6)
    waits = total.source_seconds + total.target_seconds

    def side_rate(side_seconds: float) -> int:
        if total.bytes == 0 or side_seconds <= 0:
            return 0
        return int(total.bytes / (elapsed * side_seconds / waits))

    if total.bytes == 0 or waits <= 0:
        bottleneck = Bottleneck.NA
    elif total.source_seconds >= total.target_seconds:
        bottleneck = Bottleneck.SOURCE
    else:
        bottleneck = Bottleneck.TARGET
    return SessionStatistics(
        processing_rate_bytes_ps=int(total.bytes / elapsed),
        processing_rate_items_ps=int(total.items / elapsed),
        read_rate_bytes_ps=side_rate(total.source_seconds),
        write_rate_bytes_ps=side_rate(total.target_seconds),
        transferred_data_bytes=total.bytes,
        processed_objects=total.items,
        bottleneck=bottleneck,
    )


def human_bytes(count: int) -> str:
    """1536 -> '1.5 KB', for log item titles."""
    value = float(count)
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if value < 1024 or unit == "TB":
            return f"{int(value)} B" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")
