"""One trace across the language boundary, both ways: the official TypeScript SDK (`client.mjs`, `server.mjs`), traced
with the OpenTelemetry JS SDK and OpenInference's MCP instrumentation (which carries the W3C context in
`params._meta` and makes no span of its own), with our instrumented Python server and client, over stdio and
streamable HTTP. The TypeScript peers export to the suite's OTLP receiver: protobuf over stdio, JSON over HTTP (the
two JS exporters, each sending its body in chunks)."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest
from mcp import StdioServerParameters
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from opentelemetry_instrumentation_mcp.viewer import OtlpReceiver, ReceivedSpan
from support.processes import ROOT, HttpServer, free_port, otlp_env, python_env, reference_server, wait_listening
from support.sessions import connected
from support.spans import OURS, ids_of, parent_of

pytestmark = pytest.mark.anyio

HERE = Path(__file__).resolve().parent
TS_SCOPE = "mcp-opentelemetry-interop"
"""The tracer name of the TypeScript peers' own spans ("ts agent turn", "ts tool add")."""


def typescript_env(endpoint: str, service: str, transport: str) -> dict[str, str]:
    """A TypeScript peer's environment: exporting to `endpoint`, in protobuf over stdio, in JSON over HTTP."""
    protocol = "http/protobuf" if transport == "stdio" else "http/json"
    return python_env({**otlp_env(endpoint), "OTEL_SERVICE_NAME": service, "OTEL_EXPORTER_OTLP_PROTOCOL": protocol})


def the(spans: list[ReceivedSpan], name: str, kind: SpanKind) -> ReceivedSpan:
    [span] = [span for span in spans if (span.name, span.kind) == (name, kind)]
    return span


@pytest.mark.parametrize("transport", ["stdio", "http"])
def test_a_typescript_client_calls_our_server(node: str, receiver: OtlpReceiver, transport: str) -> None:
    """The TypeScript agent's span is our SERVER span's parent; the tool's own span is under ours."""
    receiver.clear()
    client = [node, str(HERE / "client.mjs")]
    server = None
    if transport == "stdio":
        # the client hands its whole environment to the server it starts: `env` gives the server its own name
        client += ["stdio", "env", "OTEL_SERVICE_NAME=py-server", *reference_server("stdio", instrumented=True)]
    else:
        server = HttpServer(otlp_env(receiver.endpoint), instrumented=True, service="py-server")
        client += ["http", server.url]
    try:
        done = subprocess.run(
            client,
            env=typescript_env(receiver.endpoint, "ts-client", transport),
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    finally:
        if server is not None:
            server.stop()
    assert (done.returncode, done.stdout) == (0, "5\n"), done.stderr
    for name in ("add.compute", "ts agent turn"):  # from each process, on its own export schedule
        receiver.wait_for_spans(lambda span, name=name: span.name == name, timeout=30)
    spans = receiver.spans
    agent = the(spans, "ts agent turn", SpanKind.INTERNAL)
    ours = the(spans, "tools/call add", SpanKind.SERVER)
    compute = the(spans, "add.compute", SpanKind.INTERNAL)
    assert (agent.scope_name, agent.resource["service.name"]) == (TS_SCOPE, "ts-client")
    assert (ours.scope_name, ours.resource["service.name"]) == (OURS, "py-server")
    assert (ours.trace_id, ours.parent_span_id) == (agent.trace_id, agent.span_id)
    assert (compute.trace_id, compute.parent_span_id) == (agent.trace_id, ours.span_id)
    assert ours.attributes["mcp.method.name"] == "tools/call"
    assert ours.attributes["network.transport"] == ("pipe" if transport == "stdio" else "tcp")


@pytest.mark.parametrize("transport", ["stdio", "http"])
async def test_our_client_calls_a_typescript_server(
    node: str, receiver: OtlpReceiver, instrumented: InMemorySpanExporter, tracer_provider: Any, transport: str
) -> None:
    """Our CLIENT span, under the Python agent's, is the parent of the TypeScript tool's span."""
    receiver.clear()
    env = typescript_env(receiver.endpoint, "ts-server", transport)
    server = None
    if transport == "stdio":
        target: Any = StdioServerParameters(command=node, args=[str(HERE / "server.mjs"), "stdio"], env=env)
    else:
        server = TypeScriptHttpServer(node, env)
        target = server.url
    try:
        async with connected(transport, target) as session:
            with tracer_provider.get_tracer("agent").start_as_current_span("py agent turn"):
                result = await session.call_tool("add", {"a": 2, "b": 3})
    finally:
        if server is not None:
            server.stop()
    assert [item.text for item in result.content] == ["5"]
    [tool] = receiver.wait_for_spans(lambda span: span.name == "ts tool add", timeout=30)
    finished = {span.name: span for span in instrumented.get_finished_spans() if span.kind is not SpanKind.SERVER}
    agent, ours = finished["py agent turn"], finished["tools/call add"]
    assert (ours.instrumentation_scope.name, ours.kind) == (OURS, SpanKind.CLIENT)
    assert parent_of(ours) == ids_of(agent)
    assert (tool.scope_name, tool.resource["service.name"]) == (TS_SCOPE, "ts-server")
    assert (tool.trace_id, tool.parent_span_id) == ids_of(ours)
    assert tool.attributes == {"ts.add.a": 2, "ts.add.b": 3}


class TypeScriptHttpServer:
    """`node server.mjs http PORT`: the TypeScript server over streamable HTTP on 127.0.0.1."""

    def __init__(self, node: str, env: dict[str, str]) -> None:
        self.port = free_port()
        self.process = subprocess.Popen([node, str(HERE / "server.mjs"), "http", str(self.port)], env=env)
        wait_listening(self.process, self.port)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/mcp"

    def stop(self) -> None:
        self.process.terminate()  # server.mjs flushes its spans on SIGTERM
        assert self.process.wait(30) == 0
