"""Containment of this package's own faults: the host never sees them."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TypeVar

_logger = logging.getLogger("opentelemetry_instrumentation_mcp")
_reported: set[str] = set()

RAISE_INTERNAL_ERRORS = False
"""Set by this package's test suite, so that a bug of ours fails a test instead of being logged."""

T = TypeVar("T")


def report(where: str, exc: BaseException) -> None:
    """Log an internal fault once per place, or raise it under the test suite."""
    if RAISE_INTERNAL_ERRORS:
        raise exc
    if where not in _reported:
        _reported.add(where)
        _logger.warning("mcp instrumentation failed in %s; the MCP call goes on unaffected", where, exc_info=exc)


def guarded(where: str, fn: Callable[[], T], default: T) -> T:
    """Run `fn`; on any exception of ours, report it and return `default`."""
    try:
        return fn()
    except Exception as exc:  # noqa: BLE001 - we contain every fault of ours
        report(where, exc)
        return default
