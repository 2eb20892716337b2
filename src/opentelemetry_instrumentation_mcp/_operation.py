"""One MCP operation as telemetry: its span's parent, name, attributes, outcome and end.

Everything here is written once for both SDK generations; the `_v1` and `_v2` modules only describe
messages (`Message`) and report outcomes.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping, Sequence
from contextvars import Token
from timeit import default_timer
from types import TracebackType
from typing import Any

import anyio
from opentelemetry import context as context_api
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.instrumentation.utils import is_instrumentation_enabled
from opentelemetry.semconv._incubating.attributes.gen_ai_attributes import (
    GEN_AI_OPERATION_NAME,
    GEN_AI_PROMPT_NAME,
    GEN_AI_TOOL_CALL_ARGUMENTS,
    GEN_AI_TOOL_CALL_RESULT,
    GEN_AI_TOOL_NAME,
    GenAiOperationNameValues,
)
from opentelemetry.semconv._incubating.attributes.jsonrpc_attributes import JSONRPC_REQUEST_ID
from opentelemetry.semconv._incubating.attributes.mcp_attributes import (
    MCP_METHOD_NAME,
    MCP_PROTOCOL_VERSION,
    MCP_RESOURCE_URI,
    MCP_SESSION_ID,
)
from opentelemetry.semconv._incubating.attributes.rpc_attributes import RPC_RESPONSE_STATUS_CODE
from opentelemetry.semconv.attributes.error_attributes import ERROR_TYPE
from opentelemetry.semconv.attributes.network_attributes import NETWORK_TRANSPORT, NetworkTransportValues
from opentelemetry.trace import Link, Span, SpanKind, StatusCode, Tracer
from opentelemetry.util.types import AttributeValue

from opentelemetry_instrumentation_mcp._config import Options
from opentelemetry_instrumentation_mcp._content import as_data, as_json, prompt_variables
from opentelemetry_instrumentation_mcp._guard import guarded, report
from opentelemetry_instrumentation_mcp._message import Message
from opentelemetry_instrumentation_mcp._metrics import Metrics
from opentelemetry_instrumentation_mcp._propagation import client_parent, server_parent
from opentelemetry_instrumentation_mcp._session import SessionState, session_state
from opentelemetry_instrumentation_mcp._transport import Attributes

CALLER_FAULT_CODES = frozenset({-32700, -32600, -32601, -32602, -32002})
"""JSON-RPC codes that are the caller's fault: not an error on the server's span."""
TOOL_ERROR = "tool_error"
CANCELLED = "cancelled"
"""The event on the span of a cancelled operation."""
_EXECUTE_TOOL = GenAiOperationNameValues.EXECUTE_TOOL.value
_RESOURCE_METHODS = frozenset(
    {"resources/read", "resources/subscribe", "resources/unsubscribe", "notifications/resources/updated"}
)

Wrapper = Callable[[Any, Any, tuple[Any, ...], dict[str, Any]], Any]
ErrorCode = Callable[[BaseException], "tuple[int, str] | None"]
"""Maps an exception raised by the SDK to the JSON-RPC error it is answered with, if it is one."""


def described(message: Message) -> tuple[str, Attributes]:
    """A message's span name, `{mcp.method.name} {target}` (the tool or prompt name is the target, a resource URI
    never is), and the span attributes it determines before it is handled."""
    method, name = message.method, message.name
    attributes: Attributes = {MCP_METHOD_NAME: method}
    if message.request_id is not None:
        attributes[JSONRPC_REQUEST_ID] = str(message.request_id)
    span_name = method
    if method == "tools/call":
        attributes[GEN_AI_OPERATION_NAME] = _EXECUTE_TOOL
        if isinstance(name, str):
            attributes[GEN_AI_TOOL_NAME] = name
            span_name = f"{method} {name}"
    elif method == "prompts/get" and isinstance(name, str):
        attributes[GEN_AI_PROMPT_NAME] = name
        span_name = f"{method} {name}"
    elif method in _RESOURCE_METHODS and message.uri is not None:
        attributes[MCP_RESOURCE_URI] = str(message.uri)
    if message.protocol_version:
        attributes[MCP_PROTOCOL_VERSION] = message.protocol_version
    transport = message.transport
    session_id = transport.session_id or (message.session.session_id if message.session else None)
    if session_id:
        attributes[MCP_SESSION_ID] = session_id
    if transport.attributes:
        attributes.update(transport.attributes)
    return span_name, attributes


class Operation:
    """The span of one MCP operation on one side, what is known of its outcome, and its duration metric.

    A context manager: the span is active inside and ends on the way out. Faults of ours are reported and the
    operation proceeds untraced; the SDK's own exceptions pass through unchanged after they are recorded. With
    nothing to record it has no message, no span and no metrics, and only passes its context on.
    """

    __slots__ = (
        "_attributes",
        "_cancelled",
        "_error_code",
        "_message",
        "_metrics",
        "_server",
        "_started",
        "_telemetry",
        "_token",
        "context",
        "recording",
        "span",
    )

    def __init__(
        self,
        telemetry: Telemetry,
        message: Message | None,
        span: Span,
        context: Context,
        attributes: Attributes,
        *,
        server: bool,
        metrics: Metrics | None,
        error_code: ErrorCode,
    ) -> None:
        self._telemetry = telemetry
        self._message = message
        self.span = span
        self.context = context
        self._attributes = attributes
        self._server = server
        self._metrics = metrics
        self._error_code = error_code
        self._started = default_timer() if metrics is not None else 0.0
        self._cancelled = False
        self._token: Token[Context] | None = None
        self.recording = span.is_recording()
        """Whether the span records (asked once: a sampled-out span gets nothing more)."""

    def __enter__(self) -> Operation:
        # a client's operation with nothing to record keeps the context it is in: nothing to attach
        if self.context is not context_api.get_current():
            self._token = context_api.attach(self.context)
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        steps = _SERVER_STEPS if self._server else _CLIENT_STEPS
        try:
            if self._token is not None:
                context_api.detach(self._token)
            if exc is not None:
                self.exception(exc)
        except Exception as error:  # noqa: BLE001
            report(steps[1], error)
        try:
            self.end()
        except Exception as error:  # noqa: BLE001
            report(steps[2], error)

    def _set(self, key: str, value: AttributeValue) -> None:
        self._attributes[key] = value
        if self.recording:
            self.span.set_attribute(key, value)

    def set_request_id(self, request_id: object) -> None:
        """The JSON-RPC id the SDK gave the request as it sent it."""
        if isinstance(request_id, (str, int)) and not isinstance(request_id, bool):
            self._set(JSONRPC_REQUEST_ID, str(request_id))

    def set_protocol_version(self, version: object) -> None:
        """Record the negotiated protocol version, known only once `initialize` is answered."""
        if isinstance(version, str) and version:
            self._set(MCP_PROTOCOL_VERSION, version)

    def error_response(self, code: object, message: object) -> None:
        """The operation was answered with a JSON-RPC error."""
        if not isinstance(code, int):
            return
        code_text = str(code)
        self._set(RPC_RESPONSE_STATUS_CODE, code_text)
        if self._server and code in CALLER_FAULT_CODES:
            return
        self.failed(code_text, message if isinstance(message, str) else None)

    def tool_error(self) -> None:
        """A `tools/call` was answered with a result that has `isError: true`."""
        self.failed(TOOL_ERROR)

    def failed(self, error_type: str, description: str | None = None) -> None:
        """The operation failed: `error.type` and an ERROR status."""
        self._set(ERROR_TYPE, error_type)
        if self.recording:
            self.span.set_status(StatusCode.ERROR, description)

    def cancelled(self) -> None:
        """The operation was cancelled (by the client, the caller, or the connection's end): not a failure of the
        peer, as gRPC's CANCELLED is not; the span gets a `cancelled` event and no error."""
        if not self._cancelled and self.recording:
            self.span.add_event(CANCELLED)
        self._cancelled = True

    def exception(self, exc: BaseException) -> None:
        """The SDK raised `exc` out of the operation: a cancellation, a JSON-RPC error, or a failure of the
        exception's class."""
        if isinstance(exc, anyio.get_cancelled_exc_class()):
            self.cancelled()
            return
        answered = self._error_code(exc)
        if answered is not None:
            self.error_response(*answered)
            return
        if self.recording:
            self.span.record_exception(exc)
        self.failed(type(exc).__qualname__, str(exc) or None)

    def result(self, result: object) -> None:
        """The operation's result, as the peer sees it: for opt-in content capture and the response hook."""
        if self.recording and self._message is not None and self._telemetry.reads_results:
            self._telemetry.finished(self, self._message, result)

    def end(self) -> None:
        self.span.end()
        if self._metrics is not None:
            self._metrics.operation(self._server, default_timer() - self._started, self._attributes)


class Telemetry:
    """Starts the spans of MCP operations with the configured tracer, meter and options."""

    def __init__(
        self,
        tracer: Tracer,
        metrics: Metrics,
        options: Options,
        recording: Callable[[], bool],
        measuring: Callable[[], bool],
    ) -> None:
        self._tracer = tracer
        self.metrics = metrics
        self._options = options
        self.recording = recording
        """Whether an SDK provider records spans or metrics; without one, operations only pass context on."""
        self._measuring = measuring
        """Whether an SDK meter provider records metrics."""
        self._reads_messages = options.capture_content or options.request_hook is not None
        self.reads_results = options.capture_content or options.response_hook is not None
        """Whether a recorded operation's result is read (opt-in content, the response hook)."""
        self.active = True
        """False once uninstrumented: wrappers the SDK still holds (mcp 2.x caches bound handlers) go quiet."""

    def enabled(self) -> bool:
        """Whether to trace now: instrumented, and not inside `suppress_instrumentation()`."""
        return self.active and is_instrumentation_enabled()

    def handling(self, method: str, describe: Callable[[], Message], error_code: ErrorCode) -> Operation | Untraced:
        """The SERVER operation of an inbound message, parented (or linked) as `server_parent` decides."""
        try:
            if method in self._options.excluded_methods:
                return UNTRACED
            message = describe()
            parent, links = server_parent(message, context_api.get_current(), self._options.incoming_context)
            if not self.recording():
                return self._passing(parent, server=True, error_code=error_code)
            return self._start(message, parent, SpanKind.SERVER, links, error_code)
        except Exception as error:  # noqa: BLE001
            report(_SERVER_STEPS[0], error)
            return UNTRACED

    def sending(
        self, method: str, describe: Callable[[], Message], meta: object, error_code: ErrorCode
    ) -> Operation | Untraced:
        """The CLIENT operation of an outbound message whose `params._meta` is `meta`, parented by `client_parent`
        (described only if it is recorded). An excluded method, or one with nothing to record, gets no span and
        only passes its parent's context on."""
        try:
            parent = client_parent(context_api.get_current(), meta)
            if method in self._options.excluded_methods or not self.recording():
                return self._passing(parent, server=False, error_code=error_code)
            return self._start(describe(), parent, SpanKind.CLIENT, (), error_code)
        except Exception as error:  # noqa: BLE001
            report(_CLIENT_STEPS[0], error)
            return UNTRACED

    def _passing(self, context: Context, *, server: bool, error_code: ErrorCode) -> Operation:
        """With nothing to record, an operation only passes its parent's context on: what a no-op span does."""
        return Operation(
            self, None, trace.INVALID_SPAN, context, {}, server=server, metrics=None, error_code=error_code
        )

    def _start(
        self, message: Message, parent: Context, kind: SpanKind, links: Sequence[Link], error_code: ErrorCode
    ) -> Operation:
        name, attributes = described(message)
        span = self._tracer.start_span(name, parent, kind, attributes, links, record_exception=False)
        context = trace.set_span_in_context(span, parent)
        metrics = self.metrics if self._measuring() else None
        server = kind is SpanKind.SERVER
        operation = Operation(
            self, message, span, context, attributes, server=server, metrics=metrics, error_code=error_code
        )
        if operation.recording and self._reads_messages:
            self._started(span, message)
        return operation

    def _started(self, span: Span, message: Message) -> None:
        options = self._options
        if options.capture_content:
            if message.method == "tools/call" and message.arguments is not None:
                span.set_attribute(GEN_AI_TOOL_CALL_ARGUMENTS, as_json(message.arguments, options.content_max_length))
            elif message.method == "prompts/get":
                span.set_attributes(prompt_variables(as_data(message.arguments), options.content_max_length))
        if options.request_hook is not None:
            hook = options.request_hook
            guarded("the request hook", lambda: hook(span, message.method, as_data(message.params)), None)

    def session_wrappers(self, ended: Callable[[Any, object], None]) -> tuple[Wrapper, Wrapper]:
        """wrapt wrappers of a session's `__aenter__` and `__aexit__`, timing it; `ended(session, error)` records."""

        async def entered(wrapped: Any, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
            result = await wrapped(*args, **kwargs)
            if self.enabled():
                guarded("starting a session", lambda: self.session_started(session_state(instance)), None)
            return result

        async def exited(wrapped: Any, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
            try:
                return await wrapped(*args, **kwargs)
            finally:
                error = args[1] if len(args) > 1 else kwargs.get("exc_val")
                guarded("ending a session", lambda: ended(instance, error), None)

        return entered, exited

    def session_started(self, state: SessionState) -> None:
        state.started = default_timer()

    def session_ended(
        self, state: SessionState, *, server: bool, network: Mapping[str, AttributeValue], error: object
    ) -> None:
        """Record a session's duration. On the server a session is one that was initialized; stateless HTTP,
        whose every request makes a session of its own in the SDK without a session id, has none."""
        if state.started is None:
            return
        seconds, state.started = default_timer() - state.started, None
        stateless = network.get(NETWORK_TRANSPORT) == NetworkTransportValues.TCP.value and not state.session_id
        if server and (stateless or not state.initialized):
            return
        attributes: Attributes = dict(network)
        if state.protocol_version:
            attributes[MCP_PROTOCOL_VERSION] = state.protocol_version
        if isinstance(error, BaseException) and not isinstance(error, asyncio.CancelledError):
            attributes[ERROR_TYPE] = type(error).__qualname__
        self.metrics.session(server, seconds, attributes)

    def finished(self, operation: Operation, message: Message, result: object) -> None:
        """An operation's result arrived: opt-in content, the response hook."""
        span, options = operation.span, self._options
        if options.capture_content and message.method == "tools/call":
            span.set_attribute(GEN_AI_TOOL_CALL_RESULT, as_json(result, options.content_max_length))
        if options.response_hook is not None:
            hook = options.response_hook
            guarded("the response hook", lambda: hook(span, message.method, as_data(result)), None)


_SERVER_STEPS = ("starting a server span", "recording a server span's outcome", "ending a server span")
_CLIENT_STEPS = ("starting a client span", "recording a client span's outcome", "ending a client span")


class Untraced:
    """In place of an operation that could not start (a fault of ours, reported): the message goes untraced."""

    __slots__ = ()

    def __enter__(self) -> None:
        return None

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        return None


UNTRACED = Untraced()
