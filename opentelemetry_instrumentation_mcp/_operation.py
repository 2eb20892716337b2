"""One MCP operation, on either side, whichever SDK generation: its span's start and parent, its outcome, its end
and its duration metric. Adapters describe messages, results and errors; they never start or end a span."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from contextvars import Token
from dataclasses import dataclass, field
from timeit import default_timer
from types import TracebackType
from typing import Any, NamedTuple

import anyio
from opentelemetry import context as context_api
from opentelemetry.context import Context
from opentelemetry.metrics import Histogram
from opentelemetry.trace import INVALID_SPAN, Span, SpanKind, StatusCode, Tracer
from opentelemetry.util.types import AttributeValue

from opentelemetry_instrumentation_mcp._config import Options
from opentelemetry_instrumentation_mcp._content import Content
from opentelemetry_instrumentation_mcp._conventions import (
    ADDRESS_KEYS,
    CALLER_FAULT_CODES,
    CANCELLED,
    ERROR_TYPE,
    JSONRPC_REQUEST_ID,
    MCP_PROTOCOL_VERSION,
    OPERATION_KEYS,
    RPC_RESPONSE_STATUS_CODE,
    TOOL_ERROR,
    Durations,
    describe_span,
    is_tool_execution_span,
)
from opentelemetry_instrumentation_mcp._guard import report
from opentelemetry_instrumentation_mcp._message import Attributes, Message, SessionState
from opentelemetry_instrumentation_mcp._otel_private import (
    SPAN_KEY,
    attach,
    current_context,
    detach,
    instrumentation_suppressed,
)
from opentelemetry_instrumentation_mcp._propagation import (
    carrier_for,
    choose_client_parent,
    choose_server_parent,
    has_no_context_to_pass,
    would_send_no_context,
)
from opentelemetry_instrumentation_mcp._providers import ProviderCheck


class JsonRpcError(NamedTuple):
    """A JSON-RPC error answer: its code and message."""

    code: int
    message: str


ErrorReader = Callable[[BaseException], "JsonRpcError | None"]
"""The JSON-RPC error an exception the SDK raised stands for, if it stands for one (each generation has its own)."""


def carried_error_reader(error_class: type[BaseException], local_failures: frozenset[int]) -> ErrorReader:
    """An `ErrorReader` of the SDK's exception class that carries a JSON-RPC error as its `error` (`code`,
    `message`); codes of `local_failures`, errors the SDK raises itself (a timeout, a closed connection), count as
    exceptions."""

    def read(exc: BaseException) -> JsonRpcError | None:
        if isinstance(exc, error_class):
            error = exc.error  # type: ignore[attr-defined]
            if error.code not in local_failures:
                return JsonRpcError(error.code, error.message)
        return None

    return read


FieldReader = Callable[[object], Mapping[str, Any]]
"""The top-level fields of a result as the SDK holds it (a dict on 2.x, a pydantic model on 1.x)."""

_MAX_DURATION_KEY_ORDERS = 256


@dataclass(frozen=True, slots=True)
class Side:
    """What an operation needs beyond its message, by side: the side that sends a message or the one that handles
    it, with the SDK generation's way of reading what the SDK raises and answers there."""

    name: str
    """`server` or `client`, as fault reports name the side's steps."""
    duration: Histogram
    duration_keys: frozenset[str]
    """The attributes the duration metric may carry."""
    caller_faults: frozenset[int]
    """JSON-RPC error codes that are not this side's failure."""
    read_error: ErrorReader
    read_fields: FieldReader
    duration_key_orders: dict[tuple[str, ...], tuple[str, ...]] = field(default_factory=dict)
    """The keys the duration metric takes from an operation's attributes, sorted, by the attributes' keys in order:
    the sort, the intersection and the comprehension they would take per record cost about 9 thousand instructions
    on Python 3.11, the lookup and a loop under 5."""

    def duration_keys_of(self, shape: tuple[str, ...]) -> tuple[str, ...]:
        """The keys of attributes whose keys are `shape` that the duration metric carries, sorted (every point's
        attributes in one order), remembered. The attributes' keys are this package's own, so their orders are few;
        should they not be, the memory starts over."""
        orders = self.duration_key_orders
        if len(orders) >= _MAX_DURATION_KEY_ORDERS:
            orders.clear()
        keys = orders[shape] = tuple(sorted(self.duration_keys.intersection(shape)))
        return keys


_new = object.__new__


class Operation:
    """The span of one MCP operation on one side, what is known of its outcome, and its duration metric.

    A context manager around the SDK's handling or sending of the message: the operation's context is current
    inside; on the way out an exception is recorded (the SDK's own exceptions pass through unchanged), the span
    ends and the duration is recorded. It is this one type whatever is recorded: with nothing to record, its span
    is OpenTelemetry's invalid span, it records nothing and only passes its parent's context on; after a fault of
    ours it passes nothing on either. Faults of ours are reported, never raised into the host.

    A CLIENT operation may run on a span it does not own: an agent framework's tool-execution span, which already
    says what the operation does. It adds the MCP attributes that span lacks, never overwriting its owner's (nor
    `server.address`/`server.port`, which name the LLM's provider there), sets no status, adds no events, and leaves
    the span for its owner to end; the duration metric is recorded all the same.
    """

    __slots__ = (
        "_attributes",
        "_borrowed",
        "_cancelled",
        "_content",
        "_duration",
        "_message",
        "_side",
        "_start_time",
        "_token",
        "context",
        "recording",
        "span",
    )

    _side: Side
    _borrowed: bool
    _message: Message | None
    span: Span
    context: Context | None
    _attributes: Attributes
    _duration: Histogram | None
    _content: Content | None
    _start_time: float
    _cancelled: bool
    _token: Token[Context] | None
    recording: bool

    @classmethod
    def of(
        cls,
        side: Side,
        message: Message | None,
        span: Span,
        context: Context | None,
        attributes: Attributes,
        *,
        measured: bool = False,
        content: Content | None = None,
        borrowed: bool = False,
    ) -> Operation:
        """The operation, made without calling the class (see `Message.of`)."""
        self = _new(cls)
        self._side = side
        self._borrowed = borrowed
        self._message = message
        self.span = span
        self.context = context
        """The context the operation runs in and passes on; None when it passes nothing on."""
        self._attributes = attributes
        self._duration = side.duration if measured else None
        self._content = content
        self._start_time = default_timer() if measured else 0.0
        self._cancelled = False
        self.recording = span.is_recording()
        """Whether the span records (asked once: a sampled-out span gets nothing more)."""
        return self

    def __enter__(self) -> Operation:
        context = self.context
        # an operation that starts no span of its own, in the context it already runs in, has nothing to attach
        self._token = attach(context) if context is not None and context is not current_context() else None
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        token = self._token
        if token is not None:
            try:
                detach(token)
            except Exception:  # noqa: BLE001 - left in another context (a coroutine closed elsewhere)
                context_api.detach(token)  # which logs it, as it did before `detach` skipped the API
        try:
            if exc is not None:
                self.record_exception(exc)
        except Exception as error:  # noqa: BLE001 - a fault of ours never reaches the host
            report(f"recording a {self._side.name} span's outcome", error)
        try:
            if not self._borrowed:
                self.span.end()
            if self._duration is not None:
                recorded = self._attributes
                shape = tuple(recorded)
                keys = self._side.duration_key_orders.get(shape)
                if keys is None:
                    keys = self._side.duration_keys_of(shape)
                attributes: Attributes = {}
                for key in keys:  # a loop, not a comprehension: one function call less per record
                    attributes[key] = recorded[key]
                # in the operation's own context: an exemplar leads to the span it measured
                self._duration.record(default_timer() - self._start_time, attributes, self.context)
        except Exception as error:  # noqa: BLE001
            report(f"ending a {self._side.name} span", error)

    def carrier(self) -> dict[str, object] | None:
        """What the propagators send for this operation (`traceparent`...); None when there is nothing to send."""
        return None if self.context is None else carrier_for(self.context)

    def _set(self, key: str, value: AttributeValue) -> None:
        self._attributes[key] = value
        # on a borrowed span: only what its owner did not set, and no address (it names the owner's peer there)
        if self.recording and (
            not self._borrowed
            or (key not in ADDRESS_KEYS and key not in (getattr(self.span, "attributes", None) or {}))
        ):
            self.span.set_attribute(key, value)

    def record_request_id(self, request_id: object) -> None:
        """The JSON-RPC id the SDK gave the request as it sent it."""
        if isinstance(request_id, (str, int)) and not isinstance(request_id, bool):
            self._set(JSONRPC_REQUEST_ID, str(request_id))

    def record_result(self, result: object) -> None:
        """The result the operation's request was answered with, as the SDK holds it: for content capture and the
        response hook, the protocol version `initialize` negotiated, a tool's `isError`."""
        message = self._message
        if message is None:
            return
        try:
            method = message.method
            if self.recording and self._content is not None:
                self._content.record_result(self.span, method, result, capture=not self._borrowed)
            if method == "initialize":
                self._record_initialized(self._side.read_fields(result).get("protocolVersion"), message.session)
            elif method == "tools/call":
                # a dict (mcp 2.x) is read as it is, without the reader's call
                fields = result if type(result) is dict else self._side.read_fields(result)
                if fields.get("isError") is True:
                    self.record_failure(TOOL_ERROR)
        except Exception as error:  # noqa: BLE001
            report("recording a result", error)

    def _record_initialized(self, version: object, session: SessionState | None) -> None:
        if isinstance(version, int) and not isinstance(version, bool):
            version = str(version)
        if not isinstance(version, str) or not version:
            return
        if session is not None:
            session.protocol_version, session.initialized = version, True
        self._set(MCP_PROTOCOL_VERSION, version)

    def record_error_response(self, code: object, message: object) -> None:
        """The operation was answered with a JSON-RPC error: a failure unless it is the caller's fault, as the
        side sees it."""
        if not isinstance(code, int):
            return
        code_text = str(code)
        self._set(RPC_RESPONSE_STATUS_CODE, code_text)
        if code not in self._side.caller_faults:
            self.record_failure(code_text, message if isinstance(message, str) else None)

    def record_failure(self, error_type: str, description: str | None = None) -> None:
        """The operation failed: `error.type` and an ERROR status."""
        self._set(ERROR_TYPE, error_type)
        if self.recording and not self._borrowed:
            self.span.set_status(StatusCode.ERROR, description)

    def record_cancelled(self) -> None:
        """The operation was cancelled (by the client, the caller, or the connection's end): not a failure of the
        peer, as gRPC's CANCELLED is not; the span gets a `cancelled` event and no error."""
        if not self._cancelled and self.recording and not self._borrowed:
            self.span.add_event(CANCELLED)
        self._cancelled = True

    def record_exception(self, exc: BaseException) -> None:
        """The SDK raised `exc` out of the operation: a cancellation, a JSON-RPC error, or a failure of the
        exception's class."""
        if isinstance(exc, anyio.get_cancelled_exc_class()):
            self.record_cancelled()
            return
        error = self._side.read_error(exc)
        if error is not None:
            self.record_error_response(error.code, error.message)
            return
        if self.recording and not self._borrowed:
            self.span.record_exception(exc)
        self.record_failure(type(exc).__qualname__, str(exc) or None)


class Sides(NamedTuple):
    server: Side
    client: Side


def create_sides(
    durations: Durations, read_fields: FieldReader, read_received_error: ErrorReader, read_sent_error: ErrorReader
) -> Sides:
    """The two sides, with their duration histograms and the SDK generation's ways of reading its values."""
    return Sides(
        server=Side(
            "server",
            durations.server_operation,
            OPERATION_KEYS,
            CALLER_FAULT_CODES,
            read_received_error,
            read_fields,
        ),
        client=Side(
            "client",
            durations.client_operation,
            OPERATION_KEYS | ADDRESS_KEYS,
            frozenset(),
            read_sent_error,
            read_fields,
        ),
    )


class Operations:
    """Starts the operations of MCP messages with the configured tracer, metrics and options, and tells which
    messages get one."""

    def __init__(
        self,
        tracer: Tracer,
        sides: Sides,
        options: Options,
        recording: ProviderCheck,
        measuring: ProviderCheck,
    ) -> None:
        self._tracer = tracer
        self._server = sides.server
        self._client = sides.client
        self._policy = options.incoming_context
        self._excluded = options.excluded_methods
        self._enrich_tool_spans = options.enrich_tool_spans
        self._recording = recording
        """Whether an SDK provider records spans or metrics; without one, operations only pass context on."""
        self._measuring = measuring
        """Whether an SDK meter provider records metrics."""
        content = Content(options)
        self._content = content if content.reads_requests or content.reads_results else None
        self.active = True
        """False once uninstrumented: wrappers the SDK still holds (mcp 2.x caches bound handlers) go quiet."""

    def records(self) -> bool:
        """Whether an SDK provider records spans or metrics."""
        return self._recording.known or self._recording.ask()

    def enabled(self) -> bool:
        """Whether to trace now: instrumented, and not inside `suppress_instrumentation()`."""
        return self.active and not instrumentation_suppressed()

    def traces_received(self, method: str, meta: object, http_request: object, session: SessionState) -> bool:
        """Whether a received message gets an operation: its method is not excluded, there is something to record
        or a context to pass on to its handling, and instrumentation is not suppressed."""
        if method in self._excluded:
            return False
        if not (self._recording.known or self._recording.ask()) and has_no_context_to_pass(
            method, meta, http_request, session
        ):
            return False
        return not instrumentation_suppressed()

    def traces_sent(self, meta: object) -> bool:
        """Whether a message being sent with `params._meta` `meta` gets an operation: there is something to record
        or a context to send, and instrumentation is not suppressed."""
        if not (self._recording.known or self._recording.ask()) and would_send_no_context(meta):
            return False
        return not instrumentation_suppressed()

    def start_server(self, message: Message) -> Operation:
        """Start the SERVER operation of a received message, its parent (or links) as `choose_server_parent`
        decides."""
        side = self._server
        try:
            parent, links = choose_server_parent(message, current_context(), self._policy)
            if not (self._recording.known or self._recording.ask()):
                return Operation.of(side, message, INVALID_SPAN, parent, {})
            name, attributes = describe_span(message)
            span = self._tracer.start_span(name, parent, SpanKind.SERVER, attributes, links, record_exception=False)
            return self._operation_for(side, message, span, parent, attributes)
        except Exception as error:  # noqa: BLE001
            report("starting a server span", error)
            return Operation.of(side, None, INVALID_SPAN, None, {})

    def start_client(self, message: Message) -> Operation:
        """Start the CLIENT operation of a message being sent, its parent as `choose_client_parent` decides. An
        excluded method, or one with nothing to record, gets no span and only passes its parent's context on."""
        side = self._client
        try:
            current = current_context()
            current_span = current.get(SPAN_KEY)  # `trace.get_current_span(current)`, with fewer calls
            if current_span is None or not isinstance(current_span, Span):
                current_span = INVALID_SPAN
            parent = choose_client_parent(current, current_span, message.meta)
            if message.method in self._excluded or not (self._recording.known or self._recording.ask()):
                return Operation.of(side, message, INVALID_SPAN, parent, {})
            # a span of the tool's execution is current (a context from `_meta` holds no such span)
            if (
                message.method == "tools/call"
                and self._enrich_tool_spans
                and parent is current
                and current_span is not INVALID_SPAN
                and is_tool_execution_span(current_span, message.name)
            ):
                return self._operation_on_tool_span(side, message, current_span, parent)
            name, attributes = describe_span(message)
            span = self._tracer.start_span(name, parent, SpanKind.CLIENT, attributes, record_exception=False)
            return self._operation_for(side, message, span, parent, attributes)
        except Exception as error:  # noqa: BLE001
            report("starting a client span", error)
            return Operation.of(side, None, INVALID_SPAN, None, {})

    def _operation_on_tool_span(self, side: Side, message: Message, span: Span, context: Context) -> Operation:
        """The CLIENT operation of a `tools/call` on the agent framework's span of that tool's execution, instead of
        a span of its own (the conventions: where a GenAI instrumentation already traces the tool execution, the MCP
        attributes go on its span). Its content is the framework's to record; the request hook is called."""
        _, attributes = describe_span(message)
        operation = Operation.of(
            side,
            message,
            span,
            context,
            {},
            measured=self._measuring.known or self._measuring.ask(),
            content=self._content,
            borrowed=True,
        )
        for key, value in attributes.items():
            operation._set(key, value)
        content = self._content
        if content is not None and content.reads_requests and operation.recording:
            content.record_request(span, message, capture=False)
        return operation

    def _operation_for(
        self, side: Side, message: Message, span: Span, parent: Context, attributes: Attributes
    ) -> Operation:
        """The operation of a span just started; its opt-in content and request hook go on it at once."""
        content = self._content
        operation = Operation.of(
            side,
            message,
            span,
            Context({**parent, SPAN_KEY: span}),  # `trace.set_span_in_context(span, parent)`, without its two calls
            attributes,
            measured=self._measuring.known or self._measuring.ask(),
            content=content,
        )
        if content is not None and content.reads_requests and operation.recording:
            content.record_request(span, message)
        return operation
