"""A FastMCP server (any of 2.x, 3.x, 4.x): one tool, one resource, one prompt. Run as a script: serves stdio."""

from __future__ import annotations

from typing import Any

from fastmcp import FastMCP


def stack_server() -> Any:
    server = FastMCP("stack")

    @server.tool
    def add(a: int, b: int) -> int:
        """Add two numbers."""
        return a + b

    @server.resource("demo://readme")
    def readme() -> str:
        """A fixed text."""
        return "read me"

    @server.prompt
    def greet(name: str) -> str:
        """A greeting."""
        return f"Hello, {name}!"

    return server


if __name__ == "__main__":
    stack_server().run()
