"""The environment variables this instrumentation reads, once, at `instrument()`.

Each option can also be passed to `McpInstrumentor().instrument(...)`, which takes precedence.
"""

OTEL_PYTHON_MCP_INCOMING_CONTEXT = "OTEL_PYTHON_MCP_INCOMING_CONTEXT"
"""
What an MCP server does with the trace context its clients send (in `params._meta`, in `initialize`, in
HTTP headers): `parent` (default) continues the client's trace; `link` starts a new trace linked to it;
`ignore` starts a new trace and keeps no reference. Argument: `incoming_context=`.
"""

OTEL_PYTHON_MCP_EXCLUDED_METHODS = "OTEL_PYTHON_MCP_EXCLUDED_METHODS"
"""
Comma-separated MCP methods that get no span and no metric, e.g. `ping,notifications/progress`.
Argument: `excluded_methods=` (an iterable of method names).
"""

OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT = "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT"
"""
`true`, `SPAN_ONLY` or `SPAN_AND_EVENT` records tool arguments and results (`gen_ai.tool.call.arguments`,
`gen_ai.tool.call.result`) and prompt arguments (`gen_ai.prompt.variable.<name>`) on spans; `false`,
`NO_CONTENT` or `EVENT_ONLY` (this package emits no events) does not. Off by default, as for every GenAI
instrumentation; the modes are `opentelemetry-util-genai`'s, case-insensitive. Argument: `capture_content=`.
"""

OTEL_PYTHON_MCP_CONTENT_MAX_LENGTH = "OTEL_PYTHON_MCP_CONTENT_MAX_LENGTH"
"""
The longest captured content value, in characters (default 4096); longer ones are cut and marked.
Argument: `content_max_length=`.
"""

OTEL_PYTHON_MCP_REQUEST_HOOK = "OTEL_PYTHON_MCP_REQUEST_HOOK"
"""
`module:function` called as `function(span, method, params)` when an MCP operation's span starts, on either
side; `params` is the message's params as JSON-like data. Argument: `request_hook=` (the callable).
"""

OTEL_PYTHON_MCP_RESPONSE_HOOK = "OTEL_PYTHON_MCP_RESPONSE_HOOK"
"""
`module:function` called as `function(span, method, result)` before an MCP operation's span ends; `result`
is the result as JSON-like data, or None when there is none. Argument: `response_hook=` (the callable).
"""

OTEL_PYTHON_MCP_INJECT_HTTP_HEADERS = "OTEL_PYTHON_MCP_INJECT_HTTP_HEADERS"
"""
`true` (default) or `false`: whether the HTTP request a client sends to carry a message (a streamable HTTP or SSE
`POST`) carries the message's trace context in its headers too (`traceparent`...), for servers and gateways that
read only HTTP headers; an instrumented HTTP client's own span, where one is active, writes its header over ours.
Argument: `inject_http_headers=`.
"""

OTEL_PYTHON_MCP_ENRICH_TOOL_SPANS = "OTEL_PYTHON_MCP_ENRICH_TOOL_SPANS"
"""
`true` (default) or `false`. When a `tools/call` is sent inside an agent framework's span of that tool's execution
(`execute_tool {tool}`, as pydantic-ai, google-adk and openai-agents' GenAI instrumentations make it), the MCP
attributes go on that span and no CLIENT span of its own is made, as the semantic conventions ask; `false` keeps a
separate CLIENT span under it. Argument: `enrich_tool_spans=`.
"""
