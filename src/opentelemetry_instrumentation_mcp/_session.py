"""What the instrumentation keeps per MCP session, held by the SDK's own session object.

The state lives and dies with the session: no global map that could grow or leak.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from opentelemetry.context import Context
from opentelemetry.util.types import AttributeValue

if TYPE_CHECKING:
    from opentelemetry_instrumentation_mcp._transport import ClientTransport

_ATTRIBUTE = "_opentelemetry_mcp_session"


@dataclass(slots=True)
class SessionState:
    """Facts of one session learned from earlier messages."""

    protocol_version: str | None = None
    initialized: bool = False
    """Whether an `initialize` was answered: only then is a server's connection a session (for its metric)."""
    context: Context | None = None
    """The trace context the client sent with `initialize`: the parent of messages that carry none."""
    session_id: str | None = None
    network: Mapping[str, AttributeValue] = field(default_factory=dict)
    """The `network.*` attributes of the session's transport, for messages that arrive without them."""
    client: ClientTransport | None = None
    """The transport of a client session, taken from the one its task opened last."""
    started: float | None = None
    """When the session started (a `timeit.default_timer()` reading), for its duration metric."""


def session_state(session: object) -> SessionState:
    """The state kept on `session`, created on first use."""
    state = getattr(session, _ATTRIBUTE, None)
    if not isinstance(state, SessionState):
        state = SessionState()
        setattr(session, _ATTRIBUTE, state)
    return state


def share_state(owner: object, state: SessionState) -> None:
    """Make `owner` (a dispatcher, a dispatch context) hold `state`: what it sends belongs to that session."""
    setattr(owner, _ATTRIBUTE, state)
