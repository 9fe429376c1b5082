"""Hypothesis strategies shared by the property tests of the Redis store and of the
offline features: the same kinds of vitals events drive both equality proofs."""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st


def _vital(**bounds: float) -> st.SearchStrategy[float | None]:
    return st.one_of(st.none(), st.floats(**bounds))  # type: ignore[arg-type]


@st.composite
def observation_fields(draw: st.DrawFn) -> dict[str, Any]:
    """The measurement fields of one `VitalsObservation`: any may be absent (at least one
    vital is present), `supplemental_o2` stated or not, either SpO2 scale."""
    fields = {
        "heart_rate": draw(_vital(min_value=20, max_value=250)),
        "respiratory_rate": draw(_vital(min_value=0, max_value=80)),
        "spo2": draw(_vital(min_value=40, max_value=100)),
        "temperature": draw(_vital(min_value=25, max_value=45)),
        "systolic_bp": draw(_vital(min_value=20, max_value=300)),
        "diastolic_bp": draw(_vital(min_value=20, max_value=300)),
        "consciousness": draw(st.sampled_from([None, "A", "C", "V", "P", "U"])),
    }
    if all(v is None for v in fields.values()):
        fields["heart_rate"] = 80.0
    present: dict[str, Any] = {k: v for k, v in fields.items() if v is not None}
    if draw(st.booleans()):
        present["supplemental_o2"] = draw(st.booleans())
    present["spo2_scale"] = draw(st.sampled_from([1, 2]))
    return present
