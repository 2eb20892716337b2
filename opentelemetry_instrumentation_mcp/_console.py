"""The console exporters on a stdio server: they write to stdout, which is the MCP protocol channel there."""

from __future__ import annotations

import os
import sys

_EXPORTER_VARIABLES = ("OTEL_TRACES_EXPORTER", "OTEL_METRICS_EXPORTER", "OTEL_LOGS_EXPORTER")
_warned = False


def console_exporters() -> list[str]:
    """The `OTEL_*_EXPORTER` settings (also what `opentelemetry-instrument --traces_exporter` sets) that name
    the console exporter."""
    found = []
    for variable in _EXPORTER_VARIABLES:
        names = [name.strip().lower() for name in os.environ.get(variable, "").split(",")]
        if "console" in names:
            found.append(f"{variable}={os.environ[variable]}")
    return found


def warn_on_stdio() -> None:
    """Warn once, on stderr, when a stdio server starts with a console exporter configured."""
    global _warned  # noqa: PLW0603 - once per process
    settings = console_exporters()
    if _warned or not settings:
        return
    _warned = True
    sys.stderr.write(
        f"mcp-opentelemetry: {', '.join(settings)} on a stdio MCP server: the console exporter writes to stdout, "
        "which is the MCP protocol channel, and corrupts it. Export over OTLP instead (for example "
        "OTEL_TRACES_EXPORTER=otlp), or keep the console exporter to servers on HTTP.\n"
    )
