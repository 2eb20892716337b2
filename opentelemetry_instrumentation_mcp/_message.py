"""The neutral description of one MCP message: what both SDK generations hand to the telemetry."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from opentelemetry.util.types import AttributeValue


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
    protocol_version: str | None = None
    transport: Mapping[str, AttributeValue] = field(default_factory=dict)
    """`network.*`, `client.*` and `server.*` attributes of the transport that carried the message."""
