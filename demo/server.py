"""A small "search" MCP server. It knows nothing of tracing beyond a few spans of its own work.

Started by `python -m demo` under `opentelemetry-instrument`, which makes every MCP message a span and, with
`opentelemetry-instrumentation-requests` installed, every call to the search backend an HTTP span.
"""

from __future__ import annotations

import os
import time

import requests
from opentelemetry import trace

try:  # mcp 2.x
    from mcp.server.mcpserver import MCPServer as Server
except ImportError:  # mcp 1.x
    from mcp.server.fastmcp import FastMCP as Server  # type: ignore[no-redef]

tracer = trace.get_tracer("demo.search")
app = Server("search")
SEARCH_API = os.environ.get("SEARCH_API_URL", "http://127.0.0.1:8081/search")


@app.tool()
def search(query: str) -> str:
    """Search the catalogue: parse the query, look in the cache, ask the search backend."""
    with tracer.start_as_current_span("parse query"):
        terms = query.lower().split()
        time.sleep(0.002)
    with tracer.start_as_current_span("cache lookup") as span:
        time.sleep(0.05)
        span.set_attribute("cache.hit", False)
    found = requests.get(SEARCH_API, params={"q": " ".join(terms)}, timeout=10).json()
    return f"{len(found['results'])} results for {found['query']}"


if __name__ == "__main__":
    app.run()
