"""A weather MCP server with no tracing code in it: run it under `opentelemetry-instrument` and every MCP
request becomes a span in the trace of the agent that called it, its log lines carrying that trace's ids.

    opentelemetry-instrument python examples/app/server.py        # serves on stdio
"""

import logging
import time

try:  # mcp 2.x
    from mcp.server.mcpserver import MCPServer as Server
except ImportError:  # mcp 1.x
    from mcp.server.fastmcp import FastMCP as Server  # type: ignore[no-redef]

logger = logging.getLogger("weather")
app = Server("weather")

FORECASTS = {"lisbon": "sunny, 24 °C", "oslo": "rain, 9 °C"}


@app.tool()
def forecast(city: str) -> str:
    """Tomorrow's weather in a city."""
    logger.warning("forecast asked for %s", city)  # a log line in the tool's span (WARNING: the default level)
    time.sleep(0.05)  # the slow part, as seen in the trace
    return f"{city}: {FORECASTS.get(city.lower(), 'no forecast')}"


if __name__ == "__main__":
    app.run()  # stdio: stdout is the protocol channel, so nothing else may write to it
