"""The README's demo command keeps working: one trace across the agent, the zero-code stdio server and the
HTTP search API it calls, printed as a tree with the slow part marked."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from support.processes import ROOT
from support.trees import node


def test_demo_prints_one_trace_from_agent_to_search_api(tmp_path: Path) -> None:
    # a copy of the demo beside nothing else: `python -m demo` takes the package from where it is installed
    shutil.copytree(ROOT / "demo", tmp_path / "demo", ignore=shutil.ignore_patterns("__pycache__"))
    result = subprocess.run(
        [sys.executable, "-m", "demo"], cwd=tmp_path, capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "tool answered: 3 results for distributed tracing"
    assert [line for line in lines if line.startswith("trace ")] == [lines[2]]  # one trace
    tree = [node(line) for line in lines[3:]]
    assert tree[0][:4] == (0, "agent turn", "internal", "agent")
    [call] = [index for index, node in enumerate(tree) if node[:4] == (1, "tools/call search", "client", "agent")]
    assert [node[:4] for node in tree[call + 1 : call + 5]] == [
        (2, "tools/call search", "server", "search-server"),
        (3, "parse query", "internal", "search-server"),
        (3, "cache lookup", "internal", "search-server"),
        (3, "GET", "client", "search-server"),
    ]
    assert tree[call + 4][4].endswith("◀ the slow part")
    assert "network.transport=pipe" in tree[call][4]
