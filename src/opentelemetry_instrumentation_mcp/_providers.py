"""Whether anything records: with no SDK tracer or meter provider, given or global, only context is passed on."""

from __future__ import annotations

from collections.abc import Callable

from opentelemetry.metrics import Meter, NoOpMeter
from opentelemetry.metrics._internal import _ProxyMeter
from opentelemetry.trace import NoOpTracer, ProxyTracer, Tracer


def _traces(tracer: Tracer) -> bool:
    # a proxy (no global provider at `instrument()`) resolves to the global provider's tracer once there is one
    real = tracer._tracer if isinstance(tracer, ProxyTracer) else tracer
    return not isinstance(real, NoOpTracer)


def _measures(meter: Meter) -> bool:
    # a proxy meter is handed the global provider's meter when one is set
    real = meter._real_meter if isinstance(meter, _ProxyMeter) else meter
    return real is not None and not isinstance(real, NoOpMeter)


def recording(tracer: Tracer, meter: Meter) -> Callable[[], bool]:
    """A check of whether `tracer` or `meter` records, which stays yes once it is.

    Asked per operation, so it must be cheap: the proxies' own state is read, not the global providers (whose
    getters look the environment up on every call until one is set).
    """
    configured = False

    def check() -> bool:
        nonlocal configured
        if not configured:
            configured = _traces(tracer) or _measures(meter)
        return configured

    return check
