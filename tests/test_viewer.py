"""`mcp-otel-viewer`: traces from other processes, received over OTLP/HTTP and OTLP/gRPC, printed as trees as they
settle; a trace that grows later is printed again; metrics are taken and not shown; SIGTERM ends it cleanly."""

from __future__ import annotations

import http.client
import json
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
from google.protobuf import json_format
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
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


OTLP_JSON_TRACE = {  # the OTLP specification's example (examples/trace.json), trimmed: ids in hex, enums as numbers
    "resourceSpans": [
        {
            "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "my.service"}}]},
            "scopeSpans": [
                {
                    "scope": {"name": "my.library", "version": "1.0.0"},
                    "spans": [
                        {
                            "traceId": "5b8efff798038103d269b633813fc60c",
                            "spanId": "eee19b7ec3c1b174",
                            "parentSpanId": "eee19b7ec3c1b173",
                            "name": "I'm a server span",
                            "startTimeUnixNano": "1544712660000000000",
                            "endTimeUnixNano": "1544712661000000000",
                            "kind": 2,
                            "attributes": [{"key": "my.span.attr", "value": {"intValue": "3"}}],
                            "status": {"code": 1},
                        }
                    ],
                }
            ],
        }
    ]
}


def post(endpoint: str, content_type: str, body: bytes, *, chunked: bool) -> tuple[int, str]:
    """POST a body to the receiver's /v1/traces, with its length or in chunks of 7 bytes; the status and type."""
    connection = http.client.HTTPConnection(endpoint.split("//")[1], timeout=10)
    if chunked:
        connection.putrequest("POST", "/v1/traces")
        connection.putheader("Content-Type", content_type)
        connection.putheader("Transfer-Encoding", "chunked")
        connection.endheaders()
        for start in range(0, len(body), 7):
            connection.send(b"%x\r\n%s\r\n" % (len(body[start : start + 7]), body[start : start + 7]))
        connection.send(b"0\r\n\r\n")
    else:
        connection.request("POST", "/v1/traces", body=body, headers={"Content-Type": content_type})
    response = connection.getresponse()
    response.read()
    return response.status, response.headers.get("Content-Type", "")


@pytest.mark.parametrize("chunked", [False, True], ids=["length", "chunked"])
def test_otlp_http_in_protobuf_and_json(chunked: bool) -> None:
    """OTLP/HTTP as exporters send it: protobuf or JSON (OpenTelemetry JS's default), with a length or in chunks (how
    JS's exporters send every body); a body that is neither is refused, and the next is read."""
    message = json_format.ParseDict(
        {"resourceSpans": [{"scopeSpans": [{"spans": [{"traceId": "W47/95gDgQPSabYzgT/GDA==", "name": "proto"}]}]}]},
        ExportTraceServiceRequest(),
    )
    with OtlpReceiver() as receiver:
        json_body = json.dumps(OTLP_JSON_TRACE).encode()
        assert post(receiver.endpoint, "application/json", json_body, chunked=chunked) == (200, "application/json")
        assert post(receiver.endpoint, "application/x-protobuf", message.SerializeToString(), chunked=chunked) == (
            200,
            "application/x-protobuf",
        )
        for content_type, body in [("application/json", b"[]"), ("application/json", b'{"resourceSpans": 3}')]:
            assert post(receiver.endpoint, content_type, body, chunked=chunked)[0] == 400
        [from_json, from_protobuf] = receiver.wait_for_spans(2)
    assert from_json == ReceivedSpan(
        name="I'm a server span",
        kind=SpanKind.SERVER,
        trace_id="5b8efff798038103d269b633813fc60c",
        span_id="eee19b7ec3c1b174",
        parent_span_id="eee19b7ec3c1b173",
        attributes={"my.span.attr": 3},
        status_code="OK",
        status_description="",
        links=(),
        events=(),
        resource={"service.name": "my.service"},
        scope_name="my.library",
        start_time_unix_nano=1544712660000000000,
        end_time_unix_nano=1544712661000000000,
    )
    assert (from_protobuf.name, from_protobuf.trace_id) == ("proto", "5b8efff798038103d269b633813fc60c")


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
