"""Trace context in and out: read from `params._meta` and HTTP headers, written into `params._meta`, and the
choice of a span's parent.

Carriers are peer input: any `_meta` key may hold a number, a list, an object or `null`, and a value may be
huge. Only `str` values of sane length are ever handed to a propagator, and extraction never raises.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from enum import Enum
from typing import Any

from opentelemetry import propagate, trace
from opentelemetry.context import Context
from opentelemetry.propagators.textmap import Getter, TextMapPropagator
from opentelemetry.trace import Link, Span

from opentelemetry_instrumentation_mcp._message import Message, SessionState
from opentelemetry_instrumentation_mcp._otel_private import SPAN_KEY, current_context

_MAX_VALUE_LENGTH = {"traceparent": 512, "tracestate": 512, "baggage": 8192}
"""Longer values count as absent (W3C caps tracestate at 512 characters and baggage at 8192 bytes)."""
_DEFAULT_MAX_LENGTH = 512
_ABSENT = object()


class IncomingContext(Enum):
    """What a server does with the trace context its clients send."""

    PARENT = "parent"
    """The client's context is the parent of the server's span (default)."""
    LINK = "link"
    """The server's span starts a new trace, linked to the client's context."""
    IGNORE = "ignore"
    """The server's span starts a new trace; the client's context is not used at all."""


class _StringGetter(Getter[Mapping[str, Any]]):
    """Reads `str` values only, by the carrier's own key lookup: exact for `_meta` (the MCP specification keys
    it case-sensitively), case-insensitive for HTTP headers."""

    def get(self, carrier: Mapping[str, Any], key: str) -> list[str] | None:
        value = carrier.get(key)
        if isinstance(value, str) and len(value) <= _MAX_VALUE_LENGTH.get(key, _DEFAULT_MAX_LENGTH):
            return [value]
        return None

    def keys(self, carrier: Mapping[str, Any]) -> list[str]:
        return [key for key in carrier if isinstance(key, str)]


_GETTER = _StringGetter()


def extract(carrier: object, base: Context) -> Context | None:
    """Read the span context a carrier (`_meta`, HTTP headers) holds into `base`; None when it holds no valid one."""
    if not carrier or (type(carrier) is not dict and not isinstance(carrier, Mapping)):  # an ABC's isinstance is slow
        return None
    try:
        extracted = propagate.extract(carrier, context=base, getter=_GETTER)
    except Exception:  # noqa: BLE001 - a propagator that chokes on peer input means "absent"
        return None
    span = extracted.get(SPAN_KEY)
    if span is base.get(SPAN_KEY) or not isinstance(span, Span) or not span.get_span_context().is_valid:
        return None
    return extracted


def extract_from_meta(meta: object, base: Context) -> Context | None:
    """Read the span context a message's `_meta` carries into `base`; None when it carries no valid one.

    Its own keys first. When they hold none, a `headers` object within `_meta` is read the same way: the carrier of
    the tracing guide this package serves (`{"_meta": {"headers": {"traceparent": ...}}}`), which clients written
    against it send. Nothing is ever injected there.
    """
    own = extract(meta, base)
    if own is not None or not isinstance(meta, Mapping):
        return own
    return extract(meta.get("headers"), base)


def carrier_for(context: Context) -> dict[str, object] | None:
    """The fields the propagators write for `context` (`traceparent`, `tracestate`, `baggage`...); None if none."""
    fields: dict[str, object] = {}
    propagate.inject(fields, context=context)
    return fields or None


_nothing_to_send: tuple[TextMapPropagator, Context] | None = None
"""The propagators and the context they last found nothing to send for: the common case of an untraced caller,
whose context object stays the same from one message to the next."""


def would_send_no_context(meta: object) -> bool:
    """Whether a message whose `_meta` is `meta`, sent with no span of ours, would carry no context at all: none
    given by hand, none in the current context for the propagators to write."""
    global _nothing_to_send  # noqa: PLW0603 - a one-entry cache, replaced whole
    if meta is not None:
        return False
    textmap, current = propagate.get_global_textmap(), current_context()
    last = _nothing_to_send
    if last is not None and last[0] is textmap and last[1] is current:
        return True
    if carrier_for(current) is not None:
        return False
    _nothing_to_send = textmap, current
    return True


def has_no_context_to_pass(method: str, meta: object, http_request: object, session: SessionState) -> bool:
    """Whether an inbound message has no context to pass on to its handling (with no span of ours): none in its
    `_meta`, no HTTP request's, none its session was set up with, and it is not the `initialize` that sets one."""
    return not meta and http_request is None and session.context is None and method != "initialize"


_written: tuple[TextMapPropagator, frozenset[str], frozenset[bytes]] | None = None
"""The propagators last asked for the keys they write, those keys, and the same as ASGI header names."""


def _fields_written_by(textmap: TextMapPropagator) -> tuple[TextMapPropagator, frozenset[str], frozenset[bytes]]:
    """`textmap`, the keys it writes, and those keys as an ASGI scope names headers (lowercase bytes); read once per
    propagator (a composite builds the set anew on every read)."""
    global _written  # noqa: PLW0603 - a one-entry cache, replaced whole
    last = _written
    if last is not None and last[0] is textmap:
        return last
    fields = frozenset(textmap.fields)
    _written = last = textmap, fields, frozenset(field.lower().encode("latin-1", "replace") for field in fields)
    return last


def _written_fields(textmap: TextMapPropagator) -> frozenset[str]:
    """The keys `textmap` writes."""
    return _fields_written_by(textmap)[1]


def extract_from_http_headers(headers: object, raw_headers: object) -> Context | None:
    """Read the span context an HTTP request's `headers` hold; None when they hold no valid one.

    `raw_headers` is the ASGI scope's list of (name, value) pairs behind them. Where no name in it is one the
    propagators write, `headers` are not read: a missing key costs a Starlette `Headers` lookup a scan of every
    header and an exception, once per key, on every request of an untraced client."""
    if type(raw_headers) is list:
        names = _fields_written_by(propagate.get_global_textmap())[2]
        try:
            if names.isdisjoint(dict(raw_headers)):
                return None
        except (TypeError, ValueError):  # not pairs of hashables: read the headers themselves
            pass
    return extract(headers, Context())


def inject_into_params(params: object, fields: Mapping[str, object]) -> object:
    """A copy of a message's `params` whose `_meta` carries `fields` (the CLIENT span's context).

    The injection rule: `fields` replace whatever the caller, a framework or a proxy put under the keys the
    propagators write, so the server's span is always the child of this CLIENT span; every other `_meta` key stays.

    Absent `params` or `_meta` are created. A `params` or `_meta` that is not an object is returned as written:
    the peer sees exactly what the caller sent, so the instrumentation changes no message's meaning.
    """
    if params is None:
        return {"_meta": dict(fields)}
    if not isinstance(params, Mapping):
        return params
    meta = params.get("_meta", _ABSENT)
    if meta is _ABSENT:
        return {**params, "_meta": dict(fields)}
    if not isinstance(meta, Mapping):
        return params
    written = _written_fields(propagate.get_global_textmap())
    own = {key: value for key, value in meta.items() if key not in written}
    return {**params, "_meta": {**own, **fields}}


def inject_into_meta(meta: dict[str, Any], context: Context) -> None:
    """Write `context`'s fields into `meta`, a request's `_meta` that only the sender holds (the SDK's own copy), by
    the injection rule of `inject_into_params`."""
    textmap = propagate.get_global_textmap()
    if meta:
        for key in _written_fields(textmap):
            meta.pop(key, None)
    textmap.inject(meta, context=context)  # as `propagate.inject` does, with the propagators already in hand


def choose_client_parent(current: Context, current_span: Span, meta: object) -> Context:
    """Choose the parent of a CLIENT span: the current context (whose span is `current_span`) if it holds a valid
    span, else a valid context the outgoing `_meta` was given by hand (so that it is continued rather than replaced
    by a new trace)."""
    if not meta or current_span.get_span_context().is_valid:
        return current
    return extract_from_meta(meta, current) or current


def has_span(context: Context) -> bool:
    """Whether a valid span (local or remote) is current in `context`."""
    return trace.get_current_span(context).get_span_context().is_valid


def _link(context: Context) -> Link:
    return Link(trace.get_current_span(context).get_span_context())


def _trace_id(context: Context) -> int:
    return trace.get_current_span(context).get_span_context().trace_id


def choose_server_parent(message: Message, ambient: Context, policy: IncomingContext) -> tuple[Context, Sequence[Link]]:
    """Choose the parent and links of a SERVER span, by the precedence of sources.

    1. the message's own `_meta` context (see `extract_from_meta`), the transport's context (the HTTP server span,
       else the HTTP request's headers) a link;
    2. the context the HTTP request that carried the message sent in its headers: the freshest word on who is
       calling; the HTTP server span of an ASGI instrumentation is the parent where it continues that context;
    3. the context the client sent when the session was set up (an HTTP server span of a new trace is a link);
    4. an HTTP server span of a new trace, else the ambient context, or a new root.

    A session's context is remembered from its `initialize` request here.
    """
    if policy is IncomingContext.IGNORE:
        return Context(), ()
    own = extract_from_meta(message.meta, ambient)
    session = message.session
    transport = message.transport
    if message.method == "initialize" and session is not None:
        session.context = own or transport.sent_context
    http, header = transport.context, transport.sent_context
    links: list[Link] = []
    if own is not None:
        chosen, links = own, [_link(http)] if http is not None else []
    elif header is not None:
        chosen = http if http is not None and _trace_id(http) == _trace_id(header) else header
    elif session is not None and session.context is not None:
        chosen, links = session.context, [_link(http)] if http is not None else []
    elif http is not None:
        chosen = http
    else:
        return ambient, ()
    if policy is IncomingContext.LINK:
        return Context(), [_link(chosen), *links]
    return chosen, links
