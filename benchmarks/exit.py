"""How long a zero-code server takes to exit when its OTLP backend does not answer, in seconds.

    python benchmarks/exit.py [--rounds 2]

The reference server runs under `opentelemetry-instrument`, exporting spans and metrics over OTLP/HTTP to a port
nothing listens on, and answers an `initialize` and a `tools/call`. Then it is ended, in two ways:

  stdio EOF   a stdio server whose client closes its stdin; the OpenTelemetry SDK's shutdown runs at exit
  SIGTERM     a streamable HTTP server under uvicorn sent SIGTERM; uvicorn re-raises it, so no exit handler runs

and the time from that to the process's end is taken, in three configurations:

  sdk alone       this package disabled (`OTEL_PYTHON_DISABLED_INSTRUMENTATIONS=mcp`): the SDK's own data only
  no flush        this package on, its flush at the server's end switched off: the SDK's shutdown, our data
  ours            this package as it is

What this package's flush adds is `ours` less `no flush`.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TESTS = ROOT / "tests"
UNREACHABLE = "http://127.0.0.1:9"
CONFIGURATIONS = ("sdk alone", "no flush", "ours")


def serve_without_flush(arguments: list[str]) -> None:
    """The reference server, with this package's flush at a server's end switched off."""
    from opentelemetry_instrumentation_mcp import _transport

    async def exit_without_flush(self: object, *exc_info: object) -> bool:
        return bool(await self._manager.__aexit__(*exc_info))  # type: ignore[attr-defined]

    _transport._FlushingAtExit.__aexit__ = exit_without_flush  # type: ignore[method-assign,assignment]
    sys.path.insert(0, str(TESTS))
    from support.apps import main

    main(arguments)


def start(configuration: str, *arguments: str, **popen: object) -> subprocess.Popen[str]:
    env = {name: value for name, value in os.environ.items() if not name.startswith("OTEL_")}
    env.update(
        PYTHONPATH=str(TESTS),
        OTEL_SERVICE_NAME="exiting-server",
        OTEL_TRACES_EXPORTER="otlp",
        OTEL_METRICS_EXPORTER="otlp",
        OTEL_LOGS_EXPORTER="none",
        OTEL_EXPORTER_OTLP_PROTOCOL="http/protobuf",
        OTEL_EXPORTER_OTLP_ENDPOINT=UNREACHABLE,
    )
    if configuration == "sdk alone":
        env["OTEL_PYTHON_DISABLED_INSTRUMENTATIONS"] = "mcp"
    script = (
        [__file__, "--serve-without-flush"] if configuration == "no flush" else [str(TESTS / "support" / "apps.py")]
    )
    instrument = str(Path(sys.executable).with_name("opentelemetry-instrument"))
    return subprocess.Popen(  # type: ignore[call-overload,no-any-return]
        [instrument, sys.executable, *script, *arguments], env=env, text=True, **popen
    )


def stdio_exit(configuration: str) -> float:
    server = start(configuration, "stdio", stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    assert server.stdin is not None
    assert server.stdout is not None

    def send(message: dict[str, object]) -> None:
        assert server.stdin is not None
        server.stdin.write(json.dumps(message) + "\n")
        server.stdin.flush()

    parameters = {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "exit", "version": "1"}}
    send({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": parameters})
    server.stdout.readline()
    send({"jsonrpc": "2.0", "method": "notifications/initialized"})
    send({"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"name": "add", "arguments": {"a": 1, "b": 2}}})
    server.stdout.readline()
    started = time.monotonic()
    server.stdin.close()
    server.wait(120)
    return time.monotonic() - started


def sigterm_exit(configuration: str) -> float:
    import anyio

    sys.path.insert(0, str(TESTS))
    from support.processes import free_port
    from support.sessions import connected

    port = free_port()
    server = start(configuration, "http", str(port), stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    while socket.socket().connect_ex(("127.0.0.1", port)) != 0:
        assert time.monotonic() < deadline, "the server did not listen"
        time.sleep(0.05)

    async def call() -> None:
        async with connected("http", f"http://127.0.0.1:{port}/mcp") as session:
            await session.call_tool("add", {"a": 1, "b": 2})

    anyio.run(call)
    started = time.monotonic()
    server.send_signal(signal.SIGTERM)
    server.wait(120)
    return time.monotonic() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--serve-without-flush", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
    arguments = parser.parse_args()
    if arguments.serve_without_flush is not None:
        serve_without_flush(arguments.serve_without_flush)
        return
    from importlib import metadata

    print(f"mcp {metadata.version('mcp')}, seconds from the end to the exit, backend unreachable, median of rounds")
    for name, measure in (("stdio EOF", stdio_exit), ("SIGTERM", sigterm_exit)):
        figures = {
            configuration: [measure(configuration) for _ in range(arguments.rounds)] for configuration in CONFIGURATIONS
        }
        medians = {configuration: statistics.median(values) for configuration, values in figures.items()}
        cells = "  ".join(f"{configuration} {medians[configuration]:5.1f}" for configuration in CONFIGURATIONS)
        print(f"  {name:<10} {cells}   ours adds {medians['ours'] - medians['no flush']:+.1f}")


if __name__ == "__main__":
    main()
