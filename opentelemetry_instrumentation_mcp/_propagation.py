"""Trace context in `params._meta`, read and written with the configured propagators.

`_meta` is JSON from a peer: any key may hold a number, a list, an object or `null`, and a value may be
huge. Only `str` values of sane length are ever handed to a propagator, and extraction never raises.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from opentelemetry import context as context_api
from opentelemetry import propagate, trace
from opentelemetry.context import Context
from opentelemetry.propagators.textmap import Getter

_MAX_VALUE_LENGTH = {"traceparent": 512, "tracestate": 512, "baggage": 8192}
"""Longer values count as absent (W3C caps tracestate at 512 characters and baggage at 8192 bytes)."""
_DEFAULT_MAX_LENGTH = 512


class _MetaGetter(Getter[Mapping[str, Any]]):
    """Reads `str` values only, by exact (case-sensitive) key, as the MCP specification keys `_meta`."""

    def get(self, carrier: Mapping[str, Any], key: str) -> list[str] | None:
        value = carrier.get(key)
        if isinstance(value, str) and len(value) <= _MAX_VALUE_LENGTH.get(key, _DEFAULT_MAX_LENGTH):
            return [value]
        return None

    def keys(self, carrier: Mapping[str, Any]) -> list[str]:
        return [key for key in carrier if isinstance(key, str)]


_GETTER = _MetaGetter()


def extract_meta(meta: object, base: Context | None = None) -> Context | None:
    """`base` (default: the current context) with the span context carried by a `_meta` object.

    None when `_meta` carries no valid span context: the caller then falls back to its next source.
    """
    if not isinstance(meta, Mapping) or not meta:
        return None
    if base is None:
        base = context_api.get_current()
    try:
        extracted = propagate.extract(meta, context=base, getter=_GETTER)
    except Exception:  # noqa: BLE001 - a propagator that chokes on peer input means "absent"
        return None
    span = trace.get_current_span(extracted)
    if span is trace.get_current_span(base) or not span.get_span_context().is_valid:
        return None
    return extracted
