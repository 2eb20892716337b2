"""``python -m opentelemetry_instrumentation_mcp.viewer``: the same as ``mcp-otel-viewer``."""

from opentelemetry_instrumentation_mcp.viewer._live import main

main()
