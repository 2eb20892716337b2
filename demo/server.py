"""A small "search" MCP server. It knows nothing of tracing beyond a few spans of its own work.

Started by `python -m demo` under `opentelemetry-instrument`, which is what makes every MCP message a span.
"""

from __future__ import annotations

import time

from opentelemetry import trace

try:  # mcp 2.x
    from mcp.server.mcpserver import MCPServer as Server
except ImportError:  # mcp 1.x
    from mcp.server.fastmcp import FastMCP as Server  # type: ignore[no-redef]

tracer = trace.get_tracer("demo.search")
app = Server("search")


@app.tool()
def search(query: str) -> str:
    """Search the catalogue: parse, look in the cache, ask the (slow) search backend."""
    with tracer.start_as_current_span("parse query"):
        terms = query.lower().split()
        time.sleep(0.002)
    with tracer.start_as_current_span("cache lookup") as span:
        time.sleep(0.05)
        span.set_attribute("cache.hit", False)
    with tracer.start_as_current_span("search backend"):
        time.sleep(0.3)
    return f"3 results for {' '.join(terms)}"


if __name__ == "__main__":
    app.run()
