"""The providers: whether anything records (with no SDK tracer or meter provider, given or global, only context is
passed on), and flushing them when a server ends."""

from __future__ import annotations

import threading
from collections.abc import Awaitable, Callable
from time import monotonic

import anyio
from opentelemetry import metrics, trace
from opentelemetry.metrics import Meter, NoOpMeter
from opentelemetry.trace import NoOpTracer, ProxyTracer, Tracer

from opentelemetry_instrumentation_mcp._guard import guarded
from opentelemetry_instrumentation_mcp._otel_private import (
    is_meter_proxy,
    resolved_meter,
    resolved_tracer,
    unless_global_providers_unset,
)


def _traces(tracer: Tracer) -> bool:
    return not isinstance(resolved_tracer(tracer), NoOpTracer)


def _measures(meter: Meter) -> bool:
    real = resolved_meter(meter)
    return real is not None and not isinstance(real, NoOpMeter)


class ProviderCheck:
    """Whether a provider records, asked per message until it first says yes: a provider, once set, stays set. Read
    `known` first; call `ask()` only while it is False (a function in a slot: one frame, no bound method).

    While the answer rests on the API's proxies alone (`proxied`), `ask()` says no without asking as long as the
    API's global meter provider, and with `traces` its global tracer provider too, is unset."""

    __slots__ = ("ask", "known")

    def __init__(self, records: Callable[[], bool], *, proxied: bool, traces: bool) -> None:
        self.known = False
        """True once the check has said yes."""

        def ask() -> bool:
            self.known = records()
            return self.known

        self.ask: Callable[[], bool] = unless_global_providers_unset(ask, traces=traces) if proxied else ask
        """Whether the provider records now."""


def provider_checks(tracer: Tracer, meter: Meter) -> tuple[ProviderCheck, ProviderCheck]:
    """Two checks, asked per message, so cheap: whether `tracer` or `meter` records, and whether `meter` does."""
    meter_proxy = is_meter_proxy(meter)
    records = ProviderCheck(
        lambda: _traces(tracer) or _measures(meter),
        proxied=meter_proxy and isinstance(tracer, ProxyTracer),
        traces=True,
    )
    return records, ProviderCheck(lambda: _measures(meter), proxied=meter_proxy, traces=False)


FLUSH_PATIENCE = 0.9
"""How long a server's end waits for the providers' flush. A flush that takes longer has an exporter that cannot reach
its backend and retries for longer (the SDK's own shutdown at exit waits for it anyway): the server ends without
waiting further, so that its exit takes at most this much longer than the SDK alone makes it take."""


def provider_flush(tracer_provider: object, meter_provider: object) -> Callable[[], Awaitable[None]]:
    """A function that flushes the tracer and meter providers in use (those given to `instrument()`, else the global
    ones), one after the other, each in a daemon thread of its own (an exporter may block), for at most
    `FLUSH_PATIENCE` in all, even while the caller is cancelled. A flush not done by then goes on, for the SDK's
    shutdown to wait for or the process's end to stop, and the next is not started: its exporter would most likely
    be stuck too, and the SDK's shutdown would then export the same data again."""

    async def flush() -> None:
        providers = (tracer_provider or trace.get_tracer_provider(), meter_provider or metrics.get_meter_provider())
        deadline = monotonic() + FLUSH_PATIENCE
        with anyio.CancelScope(shield=True):
            for provider in providers:
                force_flush = getattr(provider, "force_flush", None)
                if not callable(force_flush):
                    continue
                finished = _start_in_daemon_thread(force_flush)
                if not await anyio.to_thread.run_sync(finished.wait, max(0.0, deadline - monotonic())):
                    return

    return flush


def _start_in_daemon_thread(function: Callable[[], object]) -> threading.Event:
    """Start `function` in a daemon thread of its own; the event is set when it has finished."""
    finished = threading.Event()

    def run() -> None:
        guarded("flushing the providers", function, None)
        finished.set()

    threading.Thread(target=run, name="mcp-opentelemetry flush", daemon=True).start()
    return finished
