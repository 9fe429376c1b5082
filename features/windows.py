"""The rolling-feature vocabulary of CONTRACTS.md, in the one order every producer uses.

The Lua script returns values in exactly this order (vital, then window, then stat), so
the Python side zips names with values instead of shipping 168 names per call.
"""

from __future__ import annotations

VITALS = ("hr", "rr", "spo2", "temp", "sbp", "dbp", "map", "shock_index")
WINDOWS = (("1h", 1), ("6h", 6), ("24h", 24))
STATS = ("last", "mean", "min", "max", "std", "count", "slope")

FEATURE_NAMES: tuple[str, ...] = tuple(
    f"{vital}_{stat}_{window}" for vital in VITALS for window, _ in WINDOWS for stat in STATS
)

HOUR_US = 3_600_000_000
RETENTION_US = 24 * HOUR_US
"""Samples older than `as_of - 24h` can never enter a window again, so they are trimmed."""

# Per-sample fields stored in Redis, in this order (see KEYS.md).
SAMPLE_FIELDS = (*VITALS, "spo2_scale", "supplemental_o2", "consciousness")
