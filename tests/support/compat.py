"""The seam between mcp generations, for the tests: what differs between 1.x and 2.x in the APIs they call."""

from __future__ import annotations

from importlib import metadata
from typing import Any

from mcp.server.lowlevel.server import Server
from mcp.shared.message import SessionMessage

MCP_VERSION = tuple(int(part) for part in metadata.version("mcp").split(".")[:2])
MCP1 = MCP_VERSION[0] == 1
HANDSHAKE_VERSION = "2025-06-18" if MCP_VERSION >= (1, 10) else "2025-03-26"
MODERN_VERSION = "2026-07-28"

if MCP1:
    from mcp import types as _types

    def to_session_message(payload: dict[str, Any]) -> SessionMessage:
        return SessionMessage(message=_types.JSONRPCMessage.model_validate(payload))

    def from_session_message(message: SessionMessage) -> dict[str, Any]:
        return message.message.model_dump(by_alias=True, mode="json", exclude_none=True)

else:
    import mcp_types as _types2

    def to_session_message(payload: dict[str, Any]) -> SessionMessage:
        return SessionMessage(message=_types2.jsonrpc_message_adapter.validate_python(payload))

    def from_session_message(message: SessionMessage) -> dict[str, Any]:
        return message.message.model_dump(by_alias=True, mode="json", exclude_unset=True)


def lowlevel(app: Any) -> Server[Any]:
    """The low-level `Server` under a FastMCP (1.x) or MCPServer (2.x) app, or the app itself."""
    for attribute in ("_mcp_server", "_lowlevel_server"):
        if hasattr(app, attribute):
            return getattr(app, attribute)  # type: ignore[no-any-return]
    return app  # type: ignore[no-any-return]


def streamable_http_app(app: Any, *, stateless: bool, json_response: bool) -> Any:
    """The Starlette app serving a high-level app over streamable HTTP at /mcp."""
    if MCP1:
        app.settings.stateless_http = stateless
        app.settings.json_response = json_response
        return app.streamable_http_app()
    return app.streamable_http_app(stateless_http=stateless, json_response=json_response)


def sse_app(app: Any) -> Any:
    """The Starlette app serving a high-level app over SSE: GET /sse, POST /messages/."""
    return app.sse_app()


async def call_tool_with_meta(session: Any, name: str, arguments: dict[str, Any], meta: dict[str, Any]) -> Any:
    """`tools/call` with the caller's own `_meta` (1.x sessions before 1.13 take no `meta=`)."""
    if not MCP1:
        return await session.call_tool(name, arguments, meta=meta)
    request = _types.CallToolRequest(
        method="tools/call", params=_types.CallToolRequestParams(name=name, arguments=arguments, _meta=meta)
    )
    return await session.send_request(_types.ClientRequest(request), _types.CallToolResult)


def read_timeout(seconds: float) -> Any:
    """A session read timeout as the generation's `ClientSession` takes it."""
    from datetime import timedelta

    return timedelta(seconds=seconds) if MCP1 else seconds


def is_error(result: Any) -> bool:
    """`CallToolResult.isError` (1.x) / `.is_error` (2.x)."""
    return bool(getattr(result, "isError", None) or getattr(result, "is_error", None))
