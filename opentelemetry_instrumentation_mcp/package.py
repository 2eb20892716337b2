"""The mcp releases this instrumentation supports (kept equal to pyproject's `instruments` extra)."""

_instruments = ("mcp >= 1.9.4, < 3",)
