"""The neutral description of one MCP message: what both SDK generations hand to the telemetry."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from opentelemetry.context import Context
from opentelemetry.util.types import AttributeValue

from opentelemetry_instrumentation_mcp._session import SessionState


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
class Message:
    """One MCP request or notification, as sent or received.

    Values that come off the wire (`meta`, `name`, `uri`) are kept as the peer sent them, of any type: only
    the telemetry decides what of them is usable.
    """

    method: str
    request_id: object = None
    """The JSON-RPC id; None for a notification."""
    meta: object = None
    """`params._meta` as a mapping of JSON values (None when absent)."""
    name: object = None
    """`params.name`: the tool of `tools/call`, the prompt of `prompts/get`."""
    uri: object = None
    """`params.uri` of resource requests and notifications."""
    arguments: object = None
    """`params.arguments` of `tools/call` and `prompts/get` (recorded only when content capture is on)."""
    params: object = None
    """The params as the SDK holds them (a dict, or a pydantic model on 1.x), for the request hook."""
    protocol_version: str | None = None
    transport: Transport = NO_TRANSPORT
    session: SessionState | None = None
    """The state of the session the message belongs to; None where the protocol has no session."""
