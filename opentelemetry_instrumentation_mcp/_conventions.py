"""The OpenTelemetry MCP semantic conventions, as this package applies them: span names and attributes, which
answers are errors, the four duration histograms and the attributes each may carry.

Every name comes from `opentelemetry-semantic-conventions`. The MCP, JSON-RPC, GenAI and RPC names are still
incubating, and the package publishes incubating names only under `opentelemetry.semconv._incubating`: this is
the one module that imports from there.
"""

from __future__ import annotations

from typing import NamedTuple

from opentelemetry.metrics import Histogram, Meter
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
from opentelemetry.semconv.schemas import Schemas
from opentelemetry.trace import Span, SpanKind

from opentelemetry_instrumentation_mcp._message import Attributes, Message

# the names other modules of this package take from here
__all__ = [
    "ERROR_TYPE",
    "GEN_AI_TOOL_CALL_ARGUMENTS",
    "GEN_AI_TOOL_CALL_RESULT",
    "JSONRPC_REQUEST_ID",
    "MCP_PROTOCOL_VERSION",
    "RPC_RESPONSE_STATUS_CODE",
]

SCHEMA_URL = Schemas.V1_40_0.value
"""The semantic conventions whose names the spans and metrics carry: pinned, so that upgrading the semconv package
for another reason changes nothing (1.40.0 is the newest the oldest supported package, 0.61b0, knows)."""

CALLER_FAULT_CODES = frozenset({-32700, -32600, -32601, -32602, -32002})
"""JSON-RPC codes that are the caller's fault: not an error on the server's span."""
TOOL_ERROR = "tool_error"
"""`error.type` of a `tools/call` answered with `isError: true`."""
UNKNOWN_EXCEPTION = "_OTHER"
"""`error.type` of a failure whose exception's class is not known."""
CANCELLED = "cancelled"
"""The event on the span of a cancelled operation."""

_EXECUTE_TOOL = GenAiOperationNameValues.EXECUTE_TOOL.value
_RESOURCE_METHODS = frozenset(
    {"resources/read", "resources/subscribe", "resources/unsubscribe", "notifications/resources/updated"}
)


def describe_span(message: Message) -> tuple[str, Attributes]:
    """The name and starting attributes of a message's span.

    The name is `{mcp.method.name} {target}`, the target being the tool or the prompt; a resource URI never is one.
    The attributes are what is known before the message is handled (a sampler decides on them)."""
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
    session = message.session
    session_id = transport.session_id or (session.session_id if session is not None else None)
    if session_id:
        attributes[MCP_SESSION_ID] = session_id
    if transport.attributes:
        attributes.update(transport.attributes)
    return span_name, attributes


def is_tool_execution_span(span: Span, tool: object) -> bool:
    """Whether `span` is a GenAI instrumentation's span of the execution of `tool`, recording, as the agent
    frameworks make it when the call starts: an INTERNAL span named `execute_tool {tool}` (google-adk and
    openai-agents' contrib instrumentation set no tool name until the tool returns), or one whose `gen_ai.tool.name`
    is `tool` and whose `gen_ai.operation.name` is `execute_tool` (pydantic-ai; Traceloop's `{tool}.tool`). Spans
    with no `gen_ai.*` (OpenInference's) are not; nor are the MCP spans themselves, which are SERVER or CLIENT."""
    # recording first: a span that lacks `kind` (a non-recording one) would cost `getattr` an exception
    if not isinstance(tool, str) or not span.is_recording() or getattr(span, "kind", None) is not SpanKind.INTERNAL:
        return False
    named = getattr(span, "name", None) == f"execute_tool {tool}"
    attributes = getattr(span, "attributes", None) or {}
    tool_name = attributes.get(GEN_AI_TOOL_NAME)
    if tool_name is None:
        return named
    return tool_name == tool and (named or attributes.get(GEN_AI_OPERATION_NAME) == _EXECUTE_TOOL)


BUCKETS = (0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10, 30, 60, 120, 300)
"""The conventions' bucket boundaries of the duration histograms, in seconds."""

SESSION_KEYS = frozenset(
    {ERROR_TYPE, MCP_PROTOCOL_VERSION, NETWORK_TRANSPORT, NETWORK_PROTOCOL_NAME, NETWORK_PROTOCOL_VERSION}
)
"""The attributes a server's session duration may carry (never ids or URIs: their cardinality)."""
OPERATION_KEYS = SESSION_KEYS | {
    MCP_METHOD_NAME,
    GEN_AI_TOOL_NAME,
    GEN_AI_PROMPT_NAME,
    GEN_AI_OPERATION_NAME,
    RPC_RESPONSE_STATUS_CODE,
}
"""The attributes a server's operation duration may carry."""
ADDRESS_KEYS = frozenset({SERVER_ADDRESS, SERVER_PORT})
"""What a client's durations carry beyond the server's: which server it spoke to."""


class Durations(NamedTuple):
    """The four MCP duration histograms."""

    server_operation: Histogram
    client_operation: Histogram
    server_session: Histogram
    client_session: Histogram


def create_durations(meter: Meter) -> Durations:
    """The four histograms, in seconds, with the conventions' bucket boundaries as the advisory."""

    def histogram(name: str, description: str) -> Histogram:
        return meter.create_histogram(
            name, unit="s", description=description, explicit_bucket_boundaries_advisory=BUCKETS
        )

    return Durations(
        server_operation=histogram(
            MCP_SERVER_OPERATION_DURATION, "MCP request or notification duration on the receiver."
        ),
        client_operation=histogram(
            MCP_CLIENT_OPERATION_DURATION, "MCP request or notification duration on the sender."
        ),
        server_session=histogram(MCP_SERVER_SESSION_DURATION, "The duration of the MCP session as seen by the server."),
        client_session=histogram(MCP_CLIENT_SESSION_DURATION, "The duration of the MCP session as seen by the client."),
    )
