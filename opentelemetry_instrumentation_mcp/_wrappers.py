"""The wrappers of the SDK's targets, written once for every SDK generation: a message received and handled, a
message sent, a session opened and closed, a client session created.

An adapter (`_mcp1`, `_mcp2`) supplies only what differs between generations: how to read the wrapped call's
message (`Read`), how to hand a message on with its context (`Inject`), and, where the SDK answers a request
otherwise than by returning the result, how to handle it.
"""

from __future__ import annotations

import asyncio
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Iterable, Mapping
from contextvars import ContextVar
from functools import partial
from timeit import default_timer
from typing import Any

from opentelemetry.metrics import Histogram
from opentelemetry.semconv.attributes.network_attributes import NETWORK_TRANSPORT, NetworkTransportValues
from opentelemetry.util.types import AttributeValue

from opentelemetry_instrumentation_mcp._conventions import (
    ADDRESS_KEYS,
    ERROR_TYPE,
    MCP_PROTOCOL_VERSION,
    SESSION_KEYS,
    Durations,
)
from opentelemetry_instrumentation_mcp._guard import guarded, report
from opentelemetry_instrumentation_mcp._message import Attributes, Message, SessionState, session_state
from opentelemetry_instrumentation_mcp._operation import JsonRpcError, Operation, Operations
from opentelemetry_instrumentation_mcp._patching import StandIn, Target, Wrapper
from opentelemetry_instrumentation_mcp._transport import take_client_transport

Args = tuple[Any, ...]
Kwargs = dict[str, Any]
Read = Callable[[Any, Args, Kwargs], "Message | None"]
"""An adapter's reading of a wrapped call `(instance, args, kwargs)`: the message it receives or sends, or None
when the message gets no operation (see `Operations.traces_received` and `traces_sent`, which it asks)."""
Inject = Callable[[Message, Args, Kwargs, Mapping[str, object]], tuple[Args, Kwargs]]
"""An adapter's way of handing a message on: the wrapped call's arguments with `params._meta` carrying the given
fields (`traceparent`...) in place of whatever the propagators write there, the caller's own objects unchanged."""
Handle = Callable[[Message, Any, Args, Kwargs], Awaitable[Any]]
"""The handling of a received message inside its operation: `handle(message, wrapped, args, kwargs)`."""
NextId = Callable[[Any], object]
"""An adapter's reading of the id a sender (the wrapped call's instance) gives the request it is called to send, read
as the send starts: its SDK takes it from a counter before anything else can, so the span starts with it."""

_request_being_sent: ContextVar[Operation | None] = ContextVar("opentelemetry_mcp_request_being_sent", default=None)
"""The recorded CLIENT operation of the request this task is sending, while the SDK has not yet given it an id."""


def note_request_id(request_id: object) -> None:
    """The SDK gave the request this task is sending its id: noted once, so that a request sent from within that
    request's handling in this task (in process) does not pass its own id off as the first one's."""
    operation = _request_being_sent.get()
    if operation is not None and request_id is not None:
        _request_being_sent.set(None)
        try:
            operation.record_request_id(request_id)
        except Exception as error:  # noqa: BLE001 - a fault of ours never reaches the host
            report("noting a request's id", error)


class SessionDurations:
    """Times sessions, by the state kept on the SDK's session objects, for the two session histograms."""

    def __init__(self, durations: Durations) -> None:
        self._server = durations.server_session
        self._client = durations.client_session

    def start(self, state: SessionState) -> None:
        state.start_time = default_timer()

    def end(self, state: SessionState, *, server: bool, network: Mapping[str, AttributeValue], error: object) -> None:
        """Record a session's duration. On the server a session is one that was initialized; stateless HTTP, whose
        every request makes a session of its own in the SDK without a session id, has none."""
        if state.start_time is None:
            return
        seconds, state.start_time = default_timer() - state.start_time, None
        stateless = network.get(NETWORK_TRANSPORT) == NetworkTransportValues.TCP.value and not state.session_id
        if server and (stateless or not state.initialized):
            return
        attributes: Attributes = dict(network)
        if state.protocol_version:
            attributes[MCP_PROTOCOL_VERSION] = state.protocol_version
        if isinstance(error, BaseException) and not isinstance(error, asyncio.CancelledError):
            attributes[ERROR_TYPE] = type(error).__qualname__
        histogram: Histogram = self._server if server else self._client
        keys = SESSION_KEYS if server else SESSION_KEYS | ADDRESS_KEYS
        histogram.record(seconds, {key: value for key, value in attributes.items() if key in keys})


class Wrappers:
    """Makes the wrappers of an SDK generation's targets from its adapter's readers."""

    def __init__(self, operations: Operations, sessions: SessionDurations) -> None:
        self.operations = operations
        self.sessions = sessions

    def receiving(self, read: Read, handle: Handle | None = None) -> StandIn:
        """A wrapper of a step that handles one received message: the handling runs inside the message's SERVER
        operation (`handle`, by default `self.handle`), or as it is when `read` gives no message."""
        return _MessageStep(self.operations, read, handle or self.handle)

    async def handle(self, message: Message, wrapped: Any, args: Args, kwargs: Kwargs) -> Any:
        """Run the SDK's handling of a received message, which returns its result, inside its SERVER operation."""
        with self.operations.start_server(message) as operation:
            result = await wrapped(*args, **kwargs)
            operation.record_result(result)
            return result

    def sending(self, read: Read, inject: Inject | None, *, request: bool, next_id: NextId | None = None) -> StandIn:
        """A wrapper of a step that sends one request (else notification): it is sent inside its CLIENT operation,
        with the operation's context in its `params._meta` (by `inject`; None where the operation's context, current
        while the step runs, is injected by the SDK's own seam or travels as the current one in process), or as it is
        when `read` gives no message. A request the caller gave no id gets the one `next_id` reads, if given; else
        the SDK tells it as it sends it (`note_request_id`)."""
        # positional: a partial's keywords cost a dict per call
        return _MessageStep(self.operations, read, partial(self.send, inject, request, next_id))

    async def send(  # noqa: PLR0917 - `sending` binds the first three by position
        self,
        inject: Inject | None,
        request: bool,
        next_id: NextId | None,
        message: Message,
        wrapped: Any,
        args: Args,
        kwargs: Kwargs,
    ) -> Any:
        """Send a message inside its CLIENT operation, which the message's `params._meta` carries; a request's
        operation starts with the request's id if it can be read before the SDK sends it (an attribute set after the
        start costs the span several thousand instructions), learns it as the SDK sends it otherwise, and learns its
        result."""
        if next_id is not None and message.request_id is None:
            # read here, in the task that is about to send it, with nothing between this and the SDK's taking it
            try:
                message.request_id = next_id(wrapped.__self__)
            except Exception as error:  # noqa: BLE001 - a fault of ours never reaches the host
                report("reading a request's id", error)
        with self.operations.start_client(message) as operation:
            if inject is not None:
                try:
                    carrier = operation.carrier()
                    if carrier is not None:
                        args, kwargs = inject(message, args, kwargs, carrier)
                except Exception as error:  # noqa: BLE001
                    report("injecting trace context", error)
            if not request:
                return await wrapped(*args, **kwargs)
            token = _request_being_sent.set(operation) if operation.recording and message.request_id is None else None
            try:
                result = await wrapped(*args, **kwargs)
            finally:
                if token is not None:
                    # left in another context (a coroutine closed elsewhere), the variable stays set there
                    try:  # noqa: SIM105 - `suppress()` would cost a context manager per request
                        _request_being_sent.reset(token)
                    except ValueError:
                        pass
            operation.record_result(result)
            return result

    def timing_sessions(self, end: Callable[[Any, object], None]) -> tuple[Wrapper, Wrapper]:
        """Wrappers of a session's `__aenter__` and `__aexit__`: the session is timed from its start, and
        `end(session, error)` records it however it ends."""
        operations, sessions = self.operations, self.sessions

        async def entered(wrapped: Any, instance: Any, args: Args, kwargs: Kwargs) -> Any:
            result = await wrapped(*args, **kwargs)
            if operations.enabled():
                guarded("starting a session", lambda: sessions.start(session_state(instance)), None)
            return result

        async def exited(wrapped: Any, instance: Any, args: Args, kwargs: Kwargs) -> Any:
            try:
                return await wrapped(*args, **kwargs)
            finally:
                error = args[1] if len(args) > 1 else kwargs.get("exc_val")
                guarded("ending a session", lambda: end(instance, error), None)

        return entered, exited


class _MessageStep(StandIn):
    """The wrapper of a step that receives or sends one message: the step runs as `run(message, bound step, args,
    kwargs)` when `read` gives a message and the instrumentation is on; as it is otherwise, and after a fault of ours
    in `read`."""

    def __init__(self, operations: Operations, read: Read, run: Handle) -> None:
        self._operations = operations
        self._read = read
        self._run = run

    def stand_in_for(self, method: Any) -> Callable[..., Any]:
        operations, read, run = self._operations, self._read, self._run

        def stand_in(instance: Any, *args: Any, **kwargs: Any) -> Any:
            wrapped = method.__get__(instance)
            if operations.active:
                try:
                    message = read(instance, args, kwargs)
                except Exception as error:  # noqa: BLE001 - a fault of ours never reaches the host
                    report("reading a message", error)
                else:
                    if message is not None:
                        return run(message, wrapped, args, kwargs)
            return wrapped(*args, **kwargs)

        return stand_in


class SdkAdapter(ABC):
    """What an SDK generation supplies: its targets, and how to read its messages, results and errors."""

    def __init__(self, wrappers: Wrappers) -> None:
        self._wrappers = wrappers
        self._operations = wrappers.operations

    @abstractmethod
    def targets(self) -> list[Target]:
        """The generation's patch targets, with the wrappers that read their messages."""

    @staticmethod
    @abstractmethod
    def read_fields(value: object, /) -> Mapping[str, Any]:
        """The top-level fields of a result as the SDK holds it."""

    @staticmethod
    @abstractmethod
    def read_received_error(exc: BaseException, /) -> JsonRpcError | None:
        """The JSON-RPC error the SDK answers a handler's exception with, if it answers one."""

    @staticmethod
    @abstractmethod
    def read_sent_error(exc: BaseException, /) -> JsonRpcError | None:
        """The peer's JSON-RPC error a send raised, if it is one (the SDK's own timeouts and closed connections count
        as exceptions)."""


def noting_client_transport(owners: Callable[[Any], Iterable[object]]) -> Wrapper:
    """A wrapper of `ClientSession.__init__`: the session talks over the transport its task opened last, and so
    does every object `owners(session)` names (what sends the session's messages)."""

    def wrapper(wrapped: Any, instance: Any, args: Args, kwargs: Kwargs) -> None:
        wrapped(*args, **kwargs)
        guarded("noting a session's transport", lambda: _note_client_transport(owners(instance)), None)

    return wrapper


def _note_client_transport(owners: Iterable[object]) -> None:
    opened = take_client_transport()
    for owner in owners:
        session_state(owner).client = opened
