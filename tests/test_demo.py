"""The README's demo command keeps working: a zero-code stdio server's trace, printed as a tree."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_demo_prints_the_tool_call_trace() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "demo"], cwd=ROOT, capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "tool answered: 3 results for distributed tracing"
    tool = next(index for index, line in enumerate(lines) if line.startswith("└─ tools/call search "))
    assert "server   search-server" in lines[tool]
    assert "gen_ai.tool.name=search" in lines[tool]
    assert "network.transport=pipe" in lines[tool]
    children = [line.split()[1:3] for line in lines[tool + 1 : tool + 4]]
    assert children == [["parse", "query"], ["cache", "lookup"], ["search", "backend"]]
    assert any(line.startswith("└─ initialize ") for line in lines)
