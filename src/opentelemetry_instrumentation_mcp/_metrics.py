"""The four MCP histograms, and the attributes each may carry (never ids or URIs: their cardinality)."""

from __future__ import annotations

from collections.abc import Mapping

from opentelemetry.metrics import Histogram, Meter
from opentelemetry.semconv._incubating.attributes.gen_ai_attributes import (
    GEN_AI_OPERATION_NAME,
    GEN_AI_PROMPT_NAME,
    GEN_AI_TOOL_NAME,
)
from opentelemetry.semconv._incubating.attributes.mcp_attributes import MCP_METHOD_NAME, MCP_PROTOCOL_VERSION
from opentelemetry.semconv._incubating.attributes.rpc_attributes import RPC_RESPONSE_STATUS_CODE
from opentelemetry.semconv._incubating.metrics.mcp_metrics import (
    MCP_CLIENT_OPERATION_DURATION,
    MCP_CLIENT_SESSION_DURATION,
    MCP_SERVER_OPERATION_DURATION,
    MCP_SERVER_SESSION_DURATION,
)
from opentelemetry.semconv.attributes.error_attributes import ERROR_TYPE
from opentelemetry.semconv.attributes.network_attributes import (
    NETWORK_PROTOCOL_NAME,
    NETWORK_PROTOCOL_VERSION,
    NETWORK_TRANSPORT,
)
from opentelemetry.semconv.attributes.server_attributes import SERVER_ADDRESS, SERVER_PORT
from opentelemetry.util.types import AttributeValue

BUCKETS = (0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10, 30, 60, 120, 300)

_SESSION = frozenset(
    {ERROR_TYPE, MCP_PROTOCOL_VERSION, NETWORK_TRANSPORT, NETWORK_PROTOCOL_NAME, NETWORK_PROTOCOL_VERSION}
)
_OPERATION = _SESSION | {
    MCP_METHOD_NAME,
    GEN_AI_TOOL_NAME,
    GEN_AI_PROMPT_NAME,
    GEN_AI_OPERATION_NAME,
    RPC_RESPONSE_STATUS_CODE,
}
_ADDRESS = frozenset({SERVER_ADDRESS, SERVER_PORT})
_OPERATION_KEYS = {True: _OPERATION, False: _OPERATION | _ADDRESS}
_SESSION_KEYS = {True: _SESSION, False: _SESSION | _ADDRESS}
"""By side (server: True): a client's metrics also tell which server it spoke to."""


def _only(attributes: Mapping[str, AttributeValue], keys: frozenset[str]) -> dict[str, AttributeValue]:
    return {key: value for key, value in attributes.items() if key in keys}


class Metrics:
    """Records operation and session durations, in seconds, for the server and the client side."""

    def __init__(self, meter: Meter) -> None:
        def histogram(name: str, description: str) -> Histogram:
            return meter.create_histogram(
                name, unit="s", description=description, explicit_bucket_boundaries_advisory=BUCKETS
            )

        self._operations = {
            True: histogram(MCP_SERVER_OPERATION_DURATION, "MCP request or notification duration on the receiver."),
            False: histogram(MCP_CLIENT_OPERATION_DURATION, "MCP request or notification duration on the sender."),
        }
        self._sessions = {
            True: histogram(MCP_SERVER_SESSION_DURATION, "The duration of the MCP session as seen by the server."),
            False: histogram(MCP_CLIENT_SESSION_DURATION, "The duration of the MCP session as seen by the client."),
        }

    def operation(self, server: bool, seconds: float, attributes: Mapping[str, AttributeValue]) -> None:
        self._operations[server].record(seconds, _only(attributes, _OPERATION_KEYS[server]))

    def session(self, server: bool, seconds: float, attributes: Mapping[str, AttributeValue]) -> None:
        self._sessions[server].record(seconds, _only(attributes, _SESSION_KEYS[server]))
