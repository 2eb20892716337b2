"""The neutral description of an MCP message and of the session it belongs to.

Each SDK generation's adapter reads the SDK's objects into these; everything else in the package reads only
these. Session state hangs off the SDK's own per-session objects, so it lives and dies with the session: no
global map that could grow or leak.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from opentelemetry.context import Context
from opentelemetry.util.types import AttributeValue

Attributes = dict[str, AttributeValue]


@dataclass(frozen=True, slots=True)
class Transport:
    """What the transport that carried a message tells about it."""

    attributes: Mapping[str, AttributeValue] = field(default_factory=dict)
    """`network.*`, `client.*` and `server.*` attributes."""
    context: Context | None = None
    """The transport-level trace context: the HTTP server span's, else the one the HTTP headers carry."""
    sent_context: Context | None = None
    """The context the HTTP request's headers carry: what the client itself sent at the transport level."""
    session_id: str | None = None
    """The transport's session id (streamable HTTP `Mcp-Session-Id`, SSE `session_id`), never invented."""


NO_TRANSPORT = Transport()


@dataclass(slots=True)
class ClientTransport:
    """The transport a client session talks over."""

    attributes: Attributes
    http: Any = None
    """The SDK's `StreamableHTTPTransport`, which learns the session id from the server's answer."""

    def transport(self) -> Transport:
        if self.http is None:
            return Transport(self.attributes)
        session_id = getattr(self.http, "session_id", None)
        return Transport(self.attributes, session_id=session_id if isinstance(session_id, str) else None)


@dataclass(slots=True)
class SessionState:
    """What earlier messages of one session told: the facts later messages and the session's metric need."""

    protocol_version: str | None = None
    initialized: bool = False
    """Whether an `initialize` was answered: only then is a server's connection a session (for its metric)."""
    context: Context | None = None
    """The trace context the client sent with `initialize`: the parent of messages that carry none."""
    session_id: str | None = None
    network: Mapping[str, AttributeValue] = field(default_factory=dict)
    """The `network.*` attributes of the session's transport, for messages that arrive without them."""
    peer: object = None
    """The HTTP version and client address of the request the session's peer attributes were read from."""
    peer_attributes: Attributes = field(default_factory=dict)
    """The network and client attributes of the session's HTTP requests, while its peer stays the same."""
    client: ClientTransport | None = None
    """The transport of a client session, taken from the one its task opened last."""
    start_time: float | None = None
    """When the session started (a `timeit.default_timer()` reading), for its duration metric."""


_STATE_ATTRIBUTE = "_opentelemetry_mcp_session"


def session_state(owner: object) -> SessionState:
    """The state kept on a session's SDK object (`owner`), created on first use."""
    state = getattr(owner, _STATE_ATTRIBUTE, None)
    if not isinstance(state, SessionState):
        state = SessionState()
        setattr(owner, _STATE_ATTRIBUTE, state)
    return state


def share_state(owner: object, state: SessionState) -> None:
    """Make `owner` (a dispatcher, a dispatch context) hold `state`: what it sends belongs to that session."""
    setattr(owner, _STATE_ATTRIBUTE, state)


_new = object.__new__


class Message:
    """One MCP request or notification, as sent or received.

    Values that come off the wire (`meta`, `name`, `uri`) are kept as the peer sent them, of any type: only the
    conventions decide what of them is usable.
    """

    __slots__ = (
        "fields",
        "meta",
        "method",
        "name",
        "params",
        "protocol_version",
        "request_id",
        "session",
        "transport",
    )

    method: str
    params: object
    fields: Mapping[str, Any]
    name: object
    request_id: object
    meta: object
    protocol_version: str | None
    transport: Transport
    session: SessionState | None

    @classmethod
    def of(
        cls,
        method: str,
        params: object,
        fields: Mapping[str, Any],
        *,
        request_id: object = None,
        meta: object = None,
        protocol_version: str | None = None,
        transport: Transport = NO_TRANSPORT,
        session: SessionState | None = None,
    ) -> Message:
        """The message, made without calling the class: on Python 3.11 a class called with keywords costs about six
        thousand instructions, twice what this does, and every message makes one."""
        self = _new(cls)
        self.method = method
        self.params = params
        """The params as the SDK holds them (a dict on 2.x, a pydantic model on 1.x), for the request hook."""
        self.fields = fields
        """The top-level fields of the params."""
        self.name = fields.get("name")
        """`params.name`: the tool of `tools/call`, the prompt of `prompts/get`."""
        self.request_id = request_id
        """The JSON-RPC id; None for a notification. A request sent without one from its caller gets it as the send
        starts (`Wrappers.send`), or keeps None where the SDK tells it only as it sends it (`note_request_id`)."""
        self.meta = meta
        """`params._meta` as the peer sent it (None when absent)."""
        self.protocol_version = protocol_version
        self.transport = transport
        self.session = session
        """The state of the session the message belongs to; None where the protocol has no session."""
        return self

    @property
    def uri(self) -> object:
        """`params.uri` of resource requests and notifications."""
        return self.fields.get("uri")

    @property
    def arguments(self) -> object:
        """`params.arguments` of `tools/call` and `prompts/get` (recorded only when content capture is on)."""
        return self.fields.get("arguments")
