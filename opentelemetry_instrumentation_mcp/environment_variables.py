"""The environment variables this instrumentation reads, once, at `instrument()`.

Each option can also be passed to `McpInstrumentor().instrument(...)`, which takes precedence.
"""

OTEL_PYTHON_MCP_INCOMING_CONTEXT = "OTEL_PYTHON_MCP_INCOMING_CONTEXT"
"""
What an MCP server does with the trace context its clients send (in `params._meta`, in `initialize`, in
HTTP headers): `parent` (default) continues the client's trace; `link` starts a new trace linked to it;
`ignore` starts a new trace and keeps no reference. Argument: `incoming_context=`.
"""
