"""The providers: whether anything records (with no SDK tracer or meter provider, given or global, only context is
passed on), and flushing them when a server ends."""

from __future__ import annotations

from collections.abc import Callable
from time import monotonic

import anyio
from opentelemetry import metrics, trace
from opentelemetry.metrics import Meter, NoOpMeter
from opentelemetry.trace import NoOpTracer, ProxyTracer, Tracer

from opentelemetry_instrumentation_mcp._guard import guarded
from opentelemetry_instrumentation_mcp._otel_private import (
    global_providers_unset,
    is_meter_proxy,
    resolved_meter,
    resolved_tracer,
)


def _traces(tracer: Tracer) -> bool:
    return not isinstance(resolved_tracer(tracer), NoOpTracer)


def _measures(meter: Meter) -> bool:
    real = resolved_meter(meter)
    return real is not None and not isinstance(real, NoOpMeter)


def _checked_until_true(records: Callable[[], bool], *, proxied: bool, traces: bool) -> Callable[[], bool]:
    """Wrap the check `records` so that it is asked only until it first says yes: a provider, once set, stays set.

    While it says no and the answer rests on the API's proxies alone (`proxied`), the wrapper says no without asking
    as long as the API's global meter provider, and with `traces` its global tracer provider too, is unset."""
    configured = False

    def check() -> bool:
        nonlocal configured
        if configured:
            return True
        if proxied and global_providers_unset(traces=traces):
            return False
        configured = records()
        return configured

    return check


def provider_checks(tracer: Tracer, meter: Meter) -> tuple[Callable[[], bool], Callable[[], bool]]:
    """Two checks, asked per message, so cheap: whether `tracer` or `meter` records, and whether `meter` does."""
    meter_proxy = is_meter_proxy(meter)
    records = _checked_until_true(
        lambda: _traces(tracer) or _measures(meter),
        proxied=meter_proxy and isinstance(tracer, ProxyTracer),
        traces=True,
    )
    return records, _checked_until_true(lambda: _measures(meter), proxied=meter_proxy, traces=False)


FLUSH_SECONDS = 5.0
"""How long a server's end may wait for its telemetry to be exported, all providers together."""


def provider_flush(tracer_provider: object, meter_provider: object) -> Callable[[], None]:
    """A function that flushes the tracer and meter providers in use (those given to `instrument()`, else the
    global ones) within `FLUSH_SECONDS`."""

    def flush() -> None:
        deadline = monotonic() + FLUSH_SECONDS
        for provider in (
            tracer_provider or trace.get_tracer_provider(),
            meter_provider or metrics.get_meter_provider(),
        ):
            force_flush = getattr(provider, "force_flush", None)
            remaining = int((deadline - monotonic()) * 1000)
            if callable(force_flush) and remaining > 0:
                force_flush(timeout_millis=remaining)

    return flush


async def flush_in_worker_thread(flush: Callable[[], None]) -> None:
    """Run `flush` in a worker thread (an exporter may block), to its end even while the caller is cancelled."""
    with anyio.CancelScope(shield=True):
        await anyio.to_thread.run_sync(guarded, "flushing the providers", flush, None)
