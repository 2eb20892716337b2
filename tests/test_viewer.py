"""`mcp-otel-viewer`: traces from other processes, received over OTLP/HTTP and OTLP/gRPC, printed as trees as they
settle; a trace that grows later is printed again; metrics are taken and not shown; SIGTERM ends it cleanly."""

from __future__ import annotations

import os
import queue
import re
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from opentelemetry.trace import SpanKind

from opentelemetry_instrumentation_mcp.viewer import LiveTraces, OtlpReceiver, ReceivedSpan
from support.compat import MCP_VERSION
from support.processes import ROOT, instrument_command
from support.trees import node

VIEWER = Path(sys.executable).with_name("mcp-otel-viewer")


def span(name: str, span_id: str, parent: str | None, start: int, trace_id: str = "ab" * 16) -> ReceivedSpan:
    return ReceivedSpan(
        name=name,
        kind=SpanKind.INTERNAL,
        trace_id=trace_id,
        span_id=span_id,
        parent_span_id=parent,
        attributes={},
        status_code="STATUS_CODE_UNSET",
        status_description="",
        links=(),
        events=(),
        resource={"service.name": "svc"},
        scope_name="test",
        start_time_unix_nano=start,
        end_time_unix_nano=start + 1_000_000,
    )


def test_a_trace_is_printed_once_settled_and_again_when_it_grows() -> None:
    now = [0.0]
    live = LiveTraces(settle=1.0, forget=10.0, clock=lambda: now[0])
    live.add([span("tools/call add", "02" * 8, "01" * 8, 2)])  # the server's part comes first
    assert live.due() == []
    now[0] = 1.0
    [first] = live.due()
    assert first.splitlines()[0] == f"trace {'ab' * 16} (its parent {'01' * 8} is in the caller's process)"
    assert live.due() == []

    live.add([span("agent turn", "01" * 8, None, 1)])
    now[0] = 1.5
    assert live.due() == []
    [second] = live.due(flush=True)
    lines = second.splitlines()
    assert lines[0] == f"trace {'ab' * 16}"
    assert [node(line)[:2] for line in lines[1:]] == [(0, "agent turn"), (1, "tools/call add")]
    assert lines[-1].endswith("(updated: 2 spans)")

    now[0] = 12.0
    assert live.due() == []
    live.add([span("late", "03" * 8, None, 3)])  # the trace was forgotten: a new one starts
    assert "updated" not in live.due(flush=True)[0]


def test_ports_in_use_are_refused_not_shared() -> None:
    """A second viewer on a busy port says so and exits, rather than splitting the exports with the first."""
    with OtlpReceiver(grpc=True) as first:
        http_port, grpc_port = (int(url.rsplit(":", 1)[1]) for url in (first.endpoint, first.grpc_endpoint))
        with pytest.raises(OSError, match=f"127.0.0.1:{grpc_port}"):
            OtlpReceiver(grpc=True, grpc_port=grpc_port).__enter__()
        for ports in (
            ["--http-port", str(http_port), "--grpc-port", "0"],
            ["--http-port", "0", "--grpc-port", str(grpc_port)],
        ):
            second = subprocess.run([str(VIEWER), *ports], capture_output=True, text=True, timeout=30, check=False)
            assert second.returncode == 1
            # grpc's core may log the failed bind first, in its own words
            assert second.stderr.splitlines()[-1].startswith("mcp-otel-viewer: cannot listen on 127.0.0.1 ports ")
            assert second.stdout == ""


class Viewer:
    """`mcp-otel-viewer` in a process of its own, on free ports, its output read line by line."""

    def __init__(self) -> None:
        self.process = subprocess.Popen(
            [str(VIEWER), "--http-port", "0", "--grpc-port", "0", "--settle", "0.5"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()
        banner = self.lines.get(timeout=30)
        found = re.search(r"OTLP/HTTP on (http://\S+) and OTLP/gRPC on (http://\S+)\.", banner)
        assert found is not None, banner
        self.http, self.grpc = found.groups()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.put(line.rstrip("\n"))

    def trace_with(self, root: str, timeout: float = 60.0) -> list[str]:
        """The lines of the first printed trace whose root span is `root`, complete or updated."""
        block: list[str] = []
        while True:
            line = self.lines.get(timeout=timeout)
            if line:
                block.append(line)
                continue
            if len(block) > 1 and node(block[1])[1] == root:
                return block
            block = []


@pytest.fixture
def viewer() -> Iterator[Viewer]:
    viewer = Viewer()
    yield viewer
    viewer.process.send_signal(signal.SIGTERM)
    assert viewer.process.wait(timeout=10) == 0
    assert viewer.process.stderr is not None
    assert viewer.process.stderr.read() == ""


@pytest.mark.skipif(MCP_VERSION < (1, 11), reason="mcp < 1.11 stdio clients kill the server at exit, before it exports")
@pytest.mark.parametrize("protocol", ["http/protobuf", "grpc"])
def test_the_example_agent_and_server_as_one_printed_trace(viewer: Viewer, protocol: str) -> None:
    environment = {name: value for name, value in os.environ.items() if not name.startswith("OTEL_")}
    environment.update(
        OTEL_SERVICE_NAME="weather-agent",
        OTEL_EXPORTER_OTLP_PROTOCOL=protocol,
        OTEL_EXPORTER_OTLP_ENDPOINT=viewer.http if protocol == "http/protobuf" else viewer.grpc,
        OTEL_TRACES_EXPORTER="otlp",
        OTEL_METRICS_EXPORTER="otlp",
        OTEL_LOGS_EXPORTER="none",
        OTEL_BSP_SCHEDULE_DELAY="50",
    )
    agent = subprocess.run(
        [instrument_command(), sys.executable, "examples/app/agent.py"],
        cwd=ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert agent.returncode == 0, agent.stderr
    assert "Failed to export" not in agent.stderr

    lines = viewer.trace_with("plan a trip")
    assert re.fullmatch(r"trace [0-9a-f]{32}", lines[0])
    tree = [node(line)[:4] for line in lines[1:] if not line.startswith("trace ")]
    assert tree[0] == (0, "plan a trip", "internal", "weather-agent")
    calls = [index for index, row in enumerate(tree) if row == (1, "tools/call forecast", "client", "weather-agent")]
    assert len(calls) == 2
    for index in calls:
        assert tree[index + 1] == (2, "tools/call forecast", "server", "weather-server")
