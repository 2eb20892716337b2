"""The reference MCP servers the tests drive, built with the installed SDK generation's high-level API.

Run as a script it serves the reference app: `python tests/support/apps.py stdio` or
`python tests/support/apps.py http PORT [--stateless] [--json]` (streamable HTTP under uvicorn on 127.0.0.1), with
`tests/` on `PYTHONPATH`; `python tests/support/apps.py where` prints where it imports this package from.
"""

import importlib
import logging
import os
import sys
from typing import Any

import anyio
from mcp.types import SamplingMessage, TextContent
from opentelemetry import baggage, trace
from pydantic import AnyUrl

try:  # mcp 2.x
    from mcp.server.mcpserver import Context
    from mcp.server.mcpserver import MCPServer as HighLevelServer
except ImportError:  # mcp 1.x
    from mcp.server.fastmcp import Context  # type: ignore[no-redef]
    from mcp.server.fastmcp import FastMCP as HighLevelServer  # type: ignore[no-redef]

_tracer = trace.get_tracer("tests.apps")

ADD = {"name": "add", "arguments": {"a": 1, "b": 2}}
"""The params of a `tools/call` of `add` that answers 3."""


def reference_app() -> Any:  # noqa: PLR0915 - the one catalogue of tools every test speaks to
    """Tools that succeed, raise, sleep, talk back to the client and call out; a prompt; a resource."""
    app = HighLevelServer("reference")

    @app.tool()
    def add(a: int, b: int) -> int:
        """Add two numbers, in a child span of the handler's."""
        with _tracer.start_as_current_span("add.compute"):
            return a + b

    @app.tool()
    def explode() -> str:
        """Raise an exception."""
        raise ValueError("the tool exploded")

    @app.tool()
    def current_trace() -> str:
        """The trace id and span id active in the handler, as hex."""
        context = trace.get_current_span().get_span_context()
        return f"{context.trace_id:032x}-{context.span_id:016x}"

    @app.tool()
    def tenant() -> str:
        """The `tenant` baggage entry the handler sees."""
        return str(baggage.get_baggage("tenant"))

    @app.tool()
    async def consult(ctx: Context) -> str:  # type: ignore[type-arg] - a real annotation: old FastMCP reads it
        """Talk back to the client: a log message, its roots, a sampling request."""
        await ctx.info("consulting the client")
        roots = await ctx.session.list_roots()
        question = SamplingMessage(role="user", content=TextContent(type="text", text="2+2?"))
        answer = await ctx.session.create_message(messages=[question], max_tokens=5)
        return f"{len(roots.roots)} roots; the client says {answer.content.text}"  # type: ignore[union-attr]

    @app.tool()
    def remember(note: str) -> str:
        """Write a log line from inside the handler."""
        logging.getLogger("tests.apps").warning("noted: %s", note)
        return "noted"

    @app.tool()
    def crash() -> str:
        """End the server's process at once, mid-call: a broken transport for the client."""
        os._exit(3)

    @app.tool()
    async def touch(uri: str, ctx: Context) -> str:  # type: ignore[type-arg]
        """Tell the client a resource changed."""
        await ctx.session.send_resource_updated(AnyUrl(uri))
        return "touched"

    @app.tool()
    async def announce(ctx: Context) -> str:  # type: ignore[type-arg]
        """Log a message to the client: a notification in the request's own exchange."""
        await ctx.info("announcing")
        return "announced"

    @app.tool()
    async def sleep(seconds: float) -> str:
        """Take a while."""
        await anyio.sleep(seconds)
        return "rested"

    @app.tool()
    async def fetch(url: str, library: str) -> str:
        """GET `url` with an HTTP client library: httpx, httpx2, requests or aiohttp."""
        if library in ("httpx", "httpx2"):
            client_module = importlib.import_module(library)
            async with client_module.AsyncClient() as client:
                return str((await client.get(url)).status_code)
        if library == "requests":
            import requests

            return str(await anyio.to_thread.run_sync(lambda: requests.get(url, timeout=10).status_code))
        import aiohttp

        async with aiohttp.ClientSession() as session, session.get(url) as response:
            return str(response.status)

    @app.tool()
    async def delegate(transport: str, url: str = "") -> str:
        """Ask another reference server, over `transport` (memory, stdio, http), to add 20 and 22."""
        from support.sessions import connected, stdio_parameters

        target: Any = {
            "memory": reference_app,
            "stdio": lambda: stdio_parameters(instrumented=True, service="inner-server"),
        }
        target = target[transport]() if transport in target else url
        async with connected(transport, target) as session:
            result = await session.call_tool("add", {"a": 20, "b": 22})
            if transport == "stdio":  # mcp < 1.11 clients kill a stdio server on exit: let it export first
                await anyio.sleep(0.5)
        return f"inner says {result.content[0].text}"

    @app.prompt()
    def greet(name: str) -> str:
        """A greeting prompt."""
        return f"Hello, {name}!"

    @app.resource("demo://readme")
    def readme() -> str:
        """A static resource."""
        return "read me"

    return app


def raising_lowlevel_app() -> Any:
    """A low-level server whose `resources/read` handler raises a plain exception."""
    from mcp.server.lowlevel.server import Server

    message = "the disk is on fire"
    try:  # mcp 2.x: handlers are constructor arguments
        from mcp.server.context import ServerRequestContext

        async def on_read_resource(ctx: ServerRequestContext[Any], params: Any) -> Any:
            raise RuntimeError(message)

        return Server("raising", on_read_resource=on_read_resource)
    except ImportError:  # mcp 1.x: handlers are registered by decorators
        server: Any = Server("raising")

        @server.read_resource()  # type: ignore[misc]
        async def read_resource(uri: Any) -> str:
            raise RuntimeError(message)

        return server


def main(argv: list[str]) -> None:
    transport = argv[0] if argv else "stdio"
    if transport == "where":
        import opentelemetry_instrumentation_mcp

        print(opentelemetry_instrumentation_mcp.__file__)
        return
    if transport == "stdio":
        reference_app().run()
        return
    import uvicorn

    from support.compat import streamable_http_app

    asgi = streamable_http_app(reference_app(), stateless="--stateless" in argv, json_response="--json" in argv)
    uvicorn.run(asgi, host="127.0.0.1", port=int(argv[1]), log_level="warning")


if __name__ == "__main__":
    main(sys.argv[1:])
