"""The demo: an MCP server traced with zero code, its spans received by an embedded OTLP receiver."""
