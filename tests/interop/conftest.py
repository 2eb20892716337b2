"""The TypeScript peers' packages: `npm ci` once from the lock file, where Node is on the machine."""

from __future__ import annotations

import fcntl
import shutil
import subprocess
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
LOCK = HERE / "package-lock.json"
INSTALLED = HERE / "node_modules" / ".package-lock.json"
"""What `npm ci` writes last: present and newer than the lock file once the packages match it."""
NODE = shutil.which("node")
NPM = shutil.which("npm")


def _node_major(node: str) -> int:
    version = subprocess.run([node, "--version"], capture_output=True, text=True, check=True).stdout
    return int(version.strip().lstrip("v").split(".")[0])


@pytest.fixture(scope="session")
def node() -> str:
    """`node`, with tests/interop's packages installed; the test skips where Node 20 or later and npm are missing."""
    if NODE is None or NPM is None:
        pytest.skip("node and npm are not on PATH: the cross-language tests need Node.js 20 or later")
    if _node_major(NODE) < 20:
        pytest.skip(f"{NODE} is older than Node.js 20, which the TypeScript peers need")
    with (HERE / ".npm-ci.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # one `npm ci` for all of xdist's workers
        if not INSTALLED.exists() or INSTALLED.stat().st_mtime < LOCK.stat().st_mtime:
            subprocess.run(
                [NPM, "ci", "--no-audit", "--no-fund", "--loglevel=error"], cwd=HERE, check=True, timeout=600
            )
    return NODE
