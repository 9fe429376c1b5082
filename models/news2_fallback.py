"""The vitals score used until a trained vitals model is installed.

A logistic curve over the NEWS2 total, centred on the RCP "urgent response" threshold
of 5 (p = 0.5) and reaching 0.86 at the "emergency" threshold of 7. It ranks patients
exactly as NEWS2 does; it is a placeholder, not a calibrated probability, and
`model_versions["vitals"]` says so on every score.
"""

from __future__ import annotations

import math

VERSION = "news2-fallback-1"
_CENTRE = 5.0
_SLOPE = 0.9


def probability(news2_total: int) -> float:
    return 1.0 / (1.0 + math.exp(-_SLOPE * (news2_total - _CENTRE)))
