"""The console exporter on a stdio server writes into the MCP protocol channel: the server says so, once, on
stderr, whether the exporter was named in the environment, on the command line or set up in code."""

from __future__ import annotations

import sys

import pytest

from opentelemetry_instrumentation_mcp._console import console_exporters
from support.peers import StdioPeer
from support.processes import TESTS, reference_server, server_env

CONSOLE_WARNING = "mcp-opentelemetry: OTEL_TRACES_EXPORTER=console on a stdio MCP server"


@pytest.mark.parametrize("how", ["environment", "command line"])
def test_console_exporter_on_a_stdio_server_warns_once_on_stderr(how: str) -> None:
    env = {**server_env(None), "OTEL_METRICS_EXPORTER": "none", "OTEL_LOGS_EXPORTER": "none"}
    command = reference_server("stdio", instrumented=True)
    if how == "environment":
        env["OTEL_TRACES_EXPORTER"] = "console"
    else:
        command[1:1] = ["--traces_exporter", "console"]
    peer = StdioPeer(command, env)
    stderr = peer.close()  # stdin closed at once: the server starts serving, then stops
    assert stderr.count(CONSOLE_WARNING) == 1, stderr


def test_otlp_on_a_stdio_server_is_not_warned_about() -> None:
    env = {**server_env("http://127.0.0.1:9"), "OTEL_TRACES_EXPORTER": "otlp"}
    stderr = StdioPeer(reference_server("stdio", instrumented=True), env).close()
    assert "mcp-opentelemetry:" not in stderr


@pytest.mark.parametrize(
    ("environment", "named"),
    [
        ({"OTEL_TRACES_EXPORTER": "otlp,console"}, ["OTEL_TRACES_EXPORTER=otlp,console"]),
        ({"OTEL_LOGS_EXPORTER": " Console "}, ["OTEL_LOGS_EXPORTER= Console "]),
        ({"OTEL_METRICS_EXPORTER": "otlp", "OTEL_TRACES_EXPORTER": "consoles"}, []),
    ],
)
def test_console_exporters_are_read_from_every_signal(
    environment: dict[str, str], named: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("OTEL_TRACES_EXPORTER", "OTEL_METRICS_EXPORTER", "OTEL_LOGS_EXPORTER"):
        monkeypatch.delenv(name, raising=False)
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    assert console_exporters() == named


IN_CODE_SCRIPT = """
import sys
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SimpleSpanProcessor
from opentelemetry_instrumentation_mcp import McpInstrumentor
from support.apps import reference_app

provider = TracerProvider()
exporter = ConsoleSpanExporter(out=sys.stderr if sys.argv[1] == "stderr" else sys.stdout)
provider.add_span_processor((SimpleSpanProcessor if sys.argv[2] == "simple" else BatchSpanProcessor)(exporter))
trace.set_tracer_provider(provider)
McpInstrumentor().instrument()
reference_app().run()
"""


@pytest.mark.parametrize(("out", "processor"), [("stdout", "simple"), ("stdout", "batch"), ("stderr", "simple")])
def test_console_exporter_set_up_in_code_is_warned_about_when_it_writes_to_stdout(out: str, processor: str) -> None:
    peer = StdioPeer([sys.executable, "-c", IN_CODE_SCRIPT, out, processor], server_env(None), cwd=TESTS)
    stderr = peer.close()
    expected = 1 if out == "stdout" else 0
    assert stderr.count("mcp-opentelemetry: a ConsoleSpanExporter writing to stdout on a stdio MCP server") == expected
