"""Zero code over stdio: the reference server runs under `opentelemetry-instrument`, exporting OTLP/HTTP."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from opentelemetry.trace import SpanKind

from opentelemetry_instrumentation_mcp._conventions import BUCKETS
from opentelemetry_instrumentation_mcp.viewer import OtlpReceiver, ReceivedSpan
from tests.mcp_compat import HANDSHAKE_VERSION, jsonrpc
from tests.test_server_spans import BAD_METAS, PARENT_ID, TRACE_ID, TRACEPARENT

ROOT = Path(__file__).resolve().parent.parent
INSTRUMENT = shutil.which("opentelemetry-instrument", path=str(Path(sys.executable).parent))


class StdioPeer:
    """A raw JSON-RPC client of a server process, one JSON message per line."""

    def __init__(self, command: list[str], env: dict[str, str]) -> None:
        # a pipe left unread would block a chatty server: stderr goes to a file, read back by close()
        self._stderr = tempfile.TemporaryFile(mode="w+")  # noqa: SIM115
        self.process = subprocess.Popen(
            command, cwd=ROOT, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._stderr, text=True
        )
        self._next_id = 0

    def send(self, payload: dict[str, Any]) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(json.dumps(payload) + "\n")
        self.process.stdin.flush()

    def request(self, method: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        self._next_id += 1
        self.send(jsonrpc(method, params, self._next_id))
        assert self.process.stdout is not None
        while True:
            line = self.process.stdout.readline()
            assert line, f"server exited: {self.close()}"
            message: dict[str, Any] = json.loads(line)
            if message.get("id") == self._next_id:
                return message

    def notify(self, method: str, params: dict[str, Any] | None = None) -> None:
        self.send(jsonrpc(method, params))

    def initialize(self) -> dict[str, Any]:
        response = self.request(
            "initialize",
            {"protocolVersion": HANDSHAKE_VERSION, "capabilities": {}, "clientInfo": {"name": "raw", "version": "1"}},
        )
        self.notify("notifications/initialized")
        return response

    def close(self) -> str:
        """Close stdin (the server's signal to stop); return what it wrote to stderr."""
        self.process.communicate(timeout=30)
        self._stderr.seek(0)
        stderr = self._stderr.read()
        self._stderr.close()
        return stderr


def server_env(endpoint: str | None) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("OTEL_")}
    env["PYTHONPATH"] = str(ROOT)
    if endpoint is not None:
        env.update(
            OTEL_SERVICE_NAME="reference-server",
            OTEL_TRACES_EXPORTER="otlp",
            OTEL_METRICS_EXPORTER="none",
            OTEL_LOGS_EXPORTER="none",
            OTEL_EXPORTER_OTLP_PROTOCOL="http/protobuf",
            OTEL_EXPORTER_OTLP_ENDPOINT=endpoint,
            OTEL_BSP_SCHEDULE_DELAY="50",
        )
    return env


def instrumented_server(receiver: OtlpReceiver) -> StdioPeer:
    assert INSTRUMENT is not None, "opentelemetry-instrument is not installed beside this Python"
    return StdioPeer([INSTRUMENT, sys.executable, "tests/apps.py", "stdio"], server_env(receiver.endpoint))


def by_name(spans: list[ReceivedSpan], name: str) -> ReceivedSpan:
    [span] = [span for span in spans if span.name == name]
    return span


def test_zero_code_stdio_server(receiver: OtlpReceiver) -> None:
    receiver.clear()
    peer = instrumented_server(receiver)
    peer.initialize()
    answer = peer.request(
        "tools/call", {"name": "add", "arguments": {"a": 2, "b": 2}, "_meta": {"traceparent": TRACEPARENT}}
    )
    assert answer["result"]["content"][0]["text"] == "4"
    assert peer.request("tools/call", {"name": "explode", "arguments": {}})["result"]["isError"] is True
    peer.request("ping")
    peer.close()

    spans = receiver.wait_for_spans(6)
    assert sorted(span.name for span in spans) == sorted(
        ["initialize", "notifications/initialized", "tools/call add", "add.compute", "tools/call explode", "ping"]
    )
    mcp_spans = [span for span in spans if span.scope_name == "opentelemetry_instrumentation_mcp"]
    assert len(mcp_spans) == 5
    for span in mcp_spans:
        assert span.kind is SpanKind.SERVER
        assert span.attributes["network.transport"] == "pipe"
        assert span.attributes["mcp.protocol.version"] == HANDSHAKE_VERSION
        assert span.resource["service.name"] == "reference-server"
    tool = by_name(spans, "tools/call add")
    assert (tool.trace_id, tool.parent_span_id) == (TRACE_ID, PARENT_ID)
    assert tool.attributes == {
        "mcp.method.name": "tools/call",
        "jsonrpc.request.id": "2",
        "gen_ai.operation.name": "execute_tool",
        "gen_ai.tool.name": "add",
        "mcp.protocol.version": HANDSHAKE_VERSION,
        "network.transport": "pipe",
    }
    assert tool.status_code == "UNSET"
    compute = by_name(spans, "add.compute")
    assert (compute.trace_id, compute.parent_span_id) == (TRACE_ID, tool.span_id)
    explode = by_name(spans, "tools/call explode")
    assert (explode.attributes["error.type"], explode.status_code) == ("tool_error", "ERROR")
    assert explode.parent_span_id is None


def converse(peer: StdioPeer) -> list[dict[str, Any]]:
    answers = [peer.initialize()]
    for meta in BAD_METAS:
        answers.append(peer.request("tools/call", {"name": "add", "arguments": {"a": 1, "b": 2}, "_meta": meta}))
        peer.notify("notifications/roots/list_changed", {"_meta": meta})
        answers.append(peer.request("ping", {"_meta": meta}))
    peer.close()
    return answers


def test_bad_meta_over_stdio_gets_the_same_answers(receiver: OtlpReceiver) -> None:
    plain = converse(StdioPeer([sys.executable, "tests/apps.py", "stdio"], server_env(None)))
    assert converse(instrumented_server(receiver)) == plain


def test_stdio_session_context_from_initialize(receiver: OtlpReceiver) -> None:
    receiver.clear()
    session_parent = "00-11111111111111111111111111111111-2222222222222222-01"
    peer = instrumented_server(receiver)
    peer.request(
        "initialize",
        {
            "protocolVersion": HANDSHAKE_VERSION,
            "capabilities": {},
            "clientInfo": {"name": "raw", "version": "1"},
            "_meta": {"traceparent": session_parent},
        },
    )
    peer.notify("notifications/initialized")
    for _ in range(3):
        peer.request("tools/call", {"name": "add", "arguments": {"a": 1, "b": 1}})
    peer.request("tools/call", {"name": "add", "arguments": {"a": 1, "b": 1}, "_meta": {"traceparent": TRACEPARENT}})
    peer.close()
    spans = receiver.wait_for_spans(lambda span: span.scope_name == "opentelemetry_instrumentation_mcp")
    parents = [(span.name, span.trace_id, span.parent_span_id) for span in spans if span.kind is SpanKind.SERVER]
    session = ("11111111111111111111111111111111", "2222222222222222")
    assert parents == [
        ("initialize", *session),
        ("notifications/initialized", *session),
        ("tools/call add", *session),
        ("tools/call add", *session),
        ("tools/call add", *session),
        ("tools/call add", TRACE_ID, PARENT_ID),
    ]


def test_metrics_over_otlp(receiver: OtlpReceiver) -> None:
    receiver.clear()
    env = server_env(receiver.endpoint)
    env.update(OTEL_METRICS_EXPORTER="otlp", OTEL_METRIC_EXPORT_INTERVAL="200")
    assert INSTRUMENT is not None
    peer = StdioPeer([INSTRUMENT, sys.executable, "tests/apps.py", "stdio"], env)
    peer.initialize()
    peer.request("tools/call", {"name": "add", "arguments": {"a": 1, "b": 1}})
    peer.close()  # the session ends with stdin; the SDK exports what is left as the process exits

    def named(name: str) -> list[Any]:
        """The points of the last export of a metric: each periodic export repeats the cumulative totals."""
        return list(receiver.wait_for_metrics(lambda metric: metric.name == name)[-1].data_points)

    calls = [
        point for point in named("mcp.server.operation.duration") if point.attributes.get("gen_ai.tool.name") == "add"
    ]
    assert [point.attributes for point in calls] == [
        {
            "mcp.method.name": "tools/call",
            "gen_ai.operation.name": "execute_tool",
            "gen_ai.tool.name": "add",
            "mcp.protocol.version": HANDSHAKE_VERSION,
            "network.transport": "pipe",
        }
    ]
    assert calls[0].value.count == 1
    assert calls[0].value.explicit_bounds == BUCKETS
    [session] = named("mcp.server.session.duration")
    assert session.attributes == {"mcp.protocol.version": HANDSHAKE_VERSION, "network.transport": "pipe"}
