"""An agent that asks the weather server for two forecasts, in one trace: its own span, the MCP client spans,
and beneath them the server's spans, from another process.

    opentelemetry-instrument python examples/app/agent.py

The server is started the way MCP hosts start stdio servers, under `opentelemetry-instrument`. The SDK's stdio
client gives a server only a minimal environment (HOME, PATH...), so the `OTEL_*` variables are handed on
explicitly, as an `env` block of a host's config does.
"""

import asyncio
import os
import sys
from pathlib import Path

from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client
from opentelemetry import trace

SERVER = Path(__file__).with_name("server.py")
INSTRUMENT = str(Path(sys.executable).with_name("opentelemetry-instrument"))


def server_parameters() -> StdioServerParameters:
    telemetry = {name: value for name, value in os.environ.items() if name.startswith("OTEL_")}
    return StdioServerParameters(
        command=INSTRUMENT,
        args=[sys.executable, str(SERVER)],
        env={**telemetry, "OTEL_SERVICE_NAME": "weather-server", "PATH": os.environ.get("PATH", "")},
    )


async def main() -> None:
    with trace.get_tracer("agent").start_as_current_span("plan a trip"):
        async with stdio_client(server_parameters()) as (read, write), ClientSession(read, write) as session:
            await session.initialize()
            for city in ("Lisbon", "Oslo"):
                result = await session.call_tool("forecast", {"city": city})
                print(result.content[0].text)


if __name__ == "__main__":
    asyncio.run(main())
