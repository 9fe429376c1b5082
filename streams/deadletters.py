"""Build `DeadLetter`s: what failed, why, and the original bytes for replay."""

from __future__ import annotations

import base64
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TypeVar

from pydantic import BaseModel, ValidationError

from streams.events import DeadLetter, DeadLetterError

M = TypeVar("M", bound=BaseModel)


@dataclass(frozen=True, slots=True)
class RawRecord:
    """One Kafka record as consumed, before any parsing."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    timestamp_ms: int | None = None


class Rejected(Exception):
    """An input that can never be processed; `kind` is the short reason label."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


def parse_record(record: RawRecord, schema: type[M], max_bytes: int) -> M:
    """Validate one record against its topic's schema; raises `Rejected` or
    `ValidationError`, which become a dead letter with the reason."""
    raw = record.value
    if raw is None:
        raise Rejected("empty", "record has no value (tombstone)")
    if len(raw) > max_bytes:
        raise Rejected("too_large", f"value is {len(raw)} bytes, over the {max_bytes} limit")
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise Rejected(
            "not_utf8", f"value is not UTF-8: {exc.reason} at byte {exc.start}"
        ) from None
    return schema.model_validate_json(raw)


def describe(exc: Exception) -> tuple[str, str]:
    """(type, one-line message) for an exception raised while parsing an input."""
    if isinstance(exc, Rejected):
        return exc.kind, str(exc)
    if isinstance(exc, ValidationError):
        errors = exc.errors(include_url=False, include_input=False)
        if errors and errors[0]["type"] == "json_invalid":
            return "invalid_json", errors[0]["msg"]
        parts = [f"{'.'.join(str(p) for p in e['loc']) or 'event'}: {e['msg']}" for e in errors[:5]]
        more = f" (+{len(errors) - 5} more)" if len(errors) > 5 else ""
        return "validation", "; ".join(parts) + more
    return type(exc).__name__, str(exc)[:500]


def _text(raw: bytes | None) -> str | dict[str, str]:
    if raw is None:
        return ""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return {"base64": base64.b64encode(raw).decode("ascii")}


def dead_letter(record: RawRecord, exc: Exception) -> DeadLetter:
    kind, message = describe(exc)
    key = _text(record.key)
    return DeadLetter(
        received_at=datetime.now(UTC),
        topic=record.topic,
        partition=record.partition,
        offset=record.offset,
        key=key if isinstance(key, str) and record.key is not None else None,
        error=DeadLetterError(type=kind, message=message),
        payload=_text(record.value),
    )
