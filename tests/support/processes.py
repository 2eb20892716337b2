"""Processes the tests start as users start them: the reference server, zero-code under `opentelemetry-instrument`
or not, and Python scripts. Each imports the package from where it is installed: the checkout's root is never on
their `sys.path` (only `tests/`, for `support`)."""

from __future__ import annotations

import importlib.util
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parents[2]
"""The checkout (or the unpacked sdist)."""
TESTS = ROOT / "tests"
REFERENCE_SERVER = TESTS / "support" / "apps.py"


def instrument_command() -> str:
    """`opentelemetry-instrument`, beside this Python."""
    command = shutil.which("opentelemetry-instrument", path=str(Path(sys.executable).parent))
    assert command is not None, "opentelemetry-instrument is not installed beside this Python"
    return command


def python_env(otel: dict[str, str] | None = None) -> dict[str, str]:
    """The environment of a Python process of the suite's: this one's, without its `OTEL_*` variables, with `tests/` on
    `PYTHONPATH`, and the `OTEL_*` variables given."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("OTEL_")}
    env["PYTHONPATH"] = str(TESTS)
    env.update(otel or {})
    return env


def otlp_env(endpoint: str) -> dict[str, str]:
    """The `OTEL_*` variables of the reference server exporting its spans over OTLP/HTTP to `endpoint`, at once."""
    return {
        "OTEL_SERVICE_NAME": "reference-server",
        "OTEL_TRACES_EXPORTER": "otlp",
        "OTEL_METRICS_EXPORTER": "none",
        "OTEL_LOGS_EXPORTER": "none",
        "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
        "OTEL_EXPORTER_OTLP_ENDPOINT": endpoint,
        "OTEL_BSP_SCHEDULE_DELAY": "50",
    }


def server_env(endpoint: str | None) -> dict[str, str]:
    """The environment of the reference server's process: exporting to `endpoint`, or configuring nothing."""
    return python_env(otlp_env(endpoint) if endpoint is not None else None)


def reference_server(*arguments: str, instrumented: bool) -> list[str]:
    """The command that runs the reference server (`stdio`, or `http PORT`), under `opentelemetry-instrument` or not."""
    command = [sys.executable, str(REFERENCE_SERVER), *arguments]
    return [instrument_command(), *command] if instrumented else command


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_listening(process: subprocess.Popen[bytes], port: int) -> None:
    """Return once `process` listens on 127.0.0.1:`port` (30 s at most, and only while it runs)."""
    deadline = time.monotonic() + 30
    while True:
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return
        assert process.poll() is None, f"{process.args!r} exited with {process.returncode}"
        assert time.monotonic() < deadline, f"{process.args!r} did not start listening on {port}"
        time.sleep(0.05)


class HttpServer:
    """The reference server as its own process, serving streamable HTTP on 127.0.0.1."""

    def __init__(self, otel: dict[str, str], *, instrumented: bool, service: str) -> None:
        self.port = free_port()
        env = python_env({**otel, "OTEL_SERVICE_NAME": service})
        command = reference_server("http", str(self.port), instrumented=instrumented)
        self.process = subprocess.Popen(command, cwd=ROOT, env=env, stderr=subprocess.DEVNULL)
        wait_listening(self.process, self.port)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/mcp"

    def stop(self) -> None:
        self.process.terminate()  # uvicorn shuts down on SIGTERM, and the SDK flushes its spans at exit
        self.process.wait(30)


def demo_module(name: str) -> ModuleType:
    """A module of the demo (`demo/NAME.py`), loaded from its file: the demo is no package the suite installs, and the
    checkout's root, which holds this package's sources too, stays off `sys.path`."""
    spec = importlib.util.spec_from_file_location(f"demo.{name}", ROOT / "demo" / f"{name}.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
