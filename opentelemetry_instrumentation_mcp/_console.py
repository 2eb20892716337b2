"""The console exporters on a stdio server: they write to stdout, which is the MCP protocol channel there."""

from __future__ import annotations

import os
import sys

from opentelemetry_instrumentation_mcp._otel_private import global_exporters

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


def console_exporters_in_code() -> list[str]:
    """Console exporters on the global providers that write to stdout, as set up in code (the quickstarts'
    `SimpleSpanProcessor(ConsoleSpanExporter())`)."""
    return sorted(
        {
            f"a {type(exporter).__name__} writing to stdout"
            for exporter in global_exporters()
            if type(exporter).__name__ in ("ConsoleSpanExporter", "ConsoleMetricExporter")
            and getattr(exporter, "out", None) in (sys.stdout, sys.__stdout__)
        }
    )


def warn_on_stdio() -> None:
    """Warn once, on stderr, when a stdio server starts with a console exporter writing to stdout."""
    global _warned  # noqa: PLW0603 - once per process
    if _warned:
        return
    found = console_exporters() or console_exporters_in_code()
    if not found:
        return
    _warned = True
    sys.stderr.write(
        f"mcp-opentelemetry: {', '.join(found)} on a stdio MCP server: the console exporter writes to stdout, "
        "which is the MCP protocol channel, and corrupts it. Export over OTLP instead (for example "
        "OTEL_TRACES_EXPORTER=otlp), give the exporter out=sys.stderr, or keep it to servers on HTTP.\n"
    )
