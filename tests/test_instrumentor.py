"""The instrumentor's contract: registration, versions, idempotence, exact restoration, suppression, faults."""

from __future__ import annotations

import inspect
import json
import logging
import subprocess
import sys
from importlib.metadata import entry_points, requires
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.instrumentation.utils import suppress_instrumentation
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF
from opentelemetry.trace import NoOpTracerProvider
from packaging.requirements import Requirement

from opentelemetry_instrumentation_mcp import McpInstrumentor, _patching
from opentelemetry_instrumentation_mcp.package import _instruments
from support.apps import reference_app
from support.compat import MCP1
from support.peers import raw_peer
from support.processes import ROOT, TESTS, python_env, reference_server
from support.spans import ours


def patched_targets() -> list[tuple[Any, str]]:
    """What the instrumentation must wrap on the installed SDK generation, written out by hand."""
    import mcp
    import mcp.client.sse
    import mcp.client.stdio
    import mcp.client.streamable_http
    import mcp.server.sse
    import mcp.server.stdio
    import mcp.server.streamable_http
    import mcp.server.streamable_http_manager

    transports: list[tuple[Any, str]] = [
        (mcp.server.stdio, "stdio_server"),
        (mcp, "stdio_server"),
        (mcp.client.stdio, "_create_platform_compatible_process"),
        (mcp.client.streamable_http.StreamableHTTPTransport, "__init__"),
        (mcp.server.streamable_http.StreamableHTTPServerTransport, "handle_request"),
        (mcp.server.sse.SseServerTransport, "handle_post_message"),
        (mcp.server.sse.SseServerTransport, "connect_sse"),
        (mcp.server.streamable_http_manager.StreamableHTTPSessionManager, "run"),
    ]
    transports += [
        (mcp.client.sse, name) for name in ("aconnect_sse", "sse_within_origin") if hasattr(mcp.client.sse, name)
    ]
    if MCP1:
        from mcp.client.session import ClientSession
        from mcp.server.lowlevel.server import Server
        from mcp.server.session import ServerSession
        from mcp.shared.session import BaseSession

        return [
            *transports,
            (Server, "_handle_message"),
            (ServerSession, "_received_request"),
            (ServerSession, "_received_notification"),
            (ClientSession, "__init__"),
            (ClientSession, "_received_request"),
            (ClientSession, "_received_notification"),
            (BaseSession, "send_request"),
            (BaseSession, "send_notification"),
            (BaseSession, "__aenter__"),
            (BaseSession, "__aexit__"),
        ]
    from mcp.client.session import ClientSession
    from mcp.server import _streamable_http_modern, runner
    from mcp.server._otel import OpenTelemetryMiddleware
    from mcp.server.connection import Connection
    from mcp.server.runner import ServerRunner
    from mcp.shared import jsonrpc_dispatcher
    from mcp.shared.direct_dispatcher import DirectDispatcher, _DirectDispatchContext

    return [
        *transports,
        (ServerRunner, "_on_request"),
        (ServerRunner, "_on_notify"),
        (ClientSession, "__init__"),
        (ClientSession, "__aenter__"),
        (ClientSession, "__aexit__"),
        (ClientSession, "_on_request"),
        (ClientSession, "_on_notify"),
        (Connection, "for_loop"),
        (runner, "aclose_shielded"),
        (jsonrpc_dispatcher.JSONRPCDispatcher, "send_raw_request"),
        (jsonrpc_dispatcher.JSONRPCDispatcher, "notify"),
        (jsonrpc_dispatcher.JSONRPCDispatcher, "run"),
        (DirectDispatcher, "send_raw_request"),
        (DirectDispatcher, "notify"),
        (DirectDispatcher, "_make_context"),
        (_DirectDispatchContext, "send_raw_request"),
        (_DirectDispatchContext, "notify"),
        (_streamable_http_modern._SingleExchangeDispatchContext, "notify"),
        (jsonrpc_dispatcher, "otel_span"),
        (jsonrpc_dispatcher, "inject_trace_context"),
        (OpenTelemetryMiddleware, "__call__"),
        (_streamable_http_modern, "_tool_input_schema"),
    ]


def current(owner: Any, attribute: str) -> Any:
    return vars(owner)[attribute]


def test_registered_as_an_opentelemetry_instrumentor() -> None:
    [entry_point] = entry_points(group="opentelemetry_instrumentor", name="mcp")
    assert entry_point.load() is McpInstrumentor


def test_instruments_extra_equals_the_declared_range() -> None:
    """As the installed distribution declares it (what `opentelemetry-instrument` reads before importing us)."""
    declared = [Requirement(text) for text in requires("mcp-opentelemetry") or []]
    extra = [(r.name, r.specifier) for r in declared if r.marker and r.marker.evaluate({"extra": "instruments"})]
    assert extra == [(r.name, r.specifier) for r in map(Requirement, _instruments)]
    assert tuple(McpInstrumentor().instrumentation_dependencies()) == _instruments


def the_table(*, optional: bool = True) -> list[tuple[Any, str]]:
    """What `instrument()` wraps: the one table, as this mcp release resolves it (without the targets only some
    releases have, unless asked)."""
    instrumentor = McpInstrumentor()
    instrumentor.instrument()
    applied = [
        (owner, name) for target, owner, name, _ in instrumentor._patcher.applied if optional or not target.optional
    ]
    instrumentor.uninstrument()
    return applied


def test_the_table_holds_every_target() -> None:
    assert set(the_table()) >= set(patched_targets())


def test_every_target_says_why_it_is_wrapped() -> None:
    """What each wrapper learns there, and the SDK's private names it reads: no public hook serves."""
    instrumentor = McpInstrumentor()
    instrumentor.instrument()
    reasons = {target.name: target.why for target, *_ in instrumentor._patcher.applied}
    instrumentor.uninstrument()
    assert reasons
    assert [name for name, why in reasons.items() if len(why.split()) < 3] == []


def test_the_suite_runs_the_installed_package_not_the_checkout() -> None:
    """As a user runs it: this process, and the server processes the suite starts, import the package from where
    it is installed (tox installs the built wheel), never from the checkout's own directory."""
    import opentelemetry_instrumentation_mcp

    checkout = ROOT / "opentelemetry_instrumentation_mcp"
    here = Path(opentelemetry_instrumentation_mcp.__file__).resolve().parent
    server = subprocess.run(
        reference_server("where", instrumented=False),
        cwd=ROOT,
        env=python_env(),
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    there = Path(server.stdout.strip()).resolve().parent
    assert (here.parent.name, there.parent.name) == ("site-packages", "site-packages")
    assert checkout not in (here, there)


def test_uninstrument_restores_every_target_exactly() -> None:
    originals = [(owner, attribute, current(owner, attribute)) for owner, attribute in the_table()]
    instrumentor = McpInstrumentor()
    for _ in range(3):
        instrumentor.instrument()
        for owner, attribute, original in originals:
            wrapper = current(owner, attribute)
            assert wrapper is not original, (owner, attribute)
            assert wrapper.__wrapped__ is original, (owner, attribute)
        instrumentor.instrument()  # a second call is a no-op: no wrapper around the wrapper
        for owner, attribute, original in originals:
            assert current(owner, attribute).__wrapped__ is original, (owner, attribute)
        instrumentor.uninstrument()
        for owner, attribute, original in originals:
            assert current(owner, attribute) is original, (owner, attribute)


def test_a_plain_function_in_a_target_s_place_passes_for_it() -> None:
    """The plain functions put in the place of per-message methods and muted ones: the method's name and signature,
    and a coroutine function where the method is one, as far as Python can mark one (3.12+)."""
    instrumentor = McpInstrumentor()
    instrumentor.instrument()
    try:
        placed = [(owner, attribute, original) for _, owner, attribute, original in instrumentor._patcher.applied]
        placed = [(owner, attribute, original) for owner, attribute, original in placed if original is not None]
        assert placed
        for owner, attribute, original in placed:
            stand_in = current(owner, attribute)
            assert (stand_in.__name__, stand_in.__wrapped__) == (original.__name__, original), (owner, attribute)
            assert inspect.signature(stand_in) == inspect.signature(original), (owner, attribute)
            if sys.version_info >= (3, 12):
                assert inspect.iscoroutinefunction(stand_in) == inspect.iscoroutinefunction(original), attribute
    finally:
        instrumentor.uninstrument()


def test_a_target_this_release_lacks_costs_that_target_only(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """An SDK release that renames a private target: one warning naming it; everything else is wrapped, and
    restored by `uninstrument()`."""
    table = the_table()
    originals = {(owner, attribute): current(owner, attribute) for owner, attribute in table}
    for missing in the_table(optional=False):
        with monkeypatch.context() as patch:
            patch.delattr(*missing)
            caplog.clear()
            instrumentor = McpInstrumentor()
            with caplog.at_level(logging.WARNING, logger="opentelemetry_instrumentation_mcp"):
                instrumentor.instrument()
            try:
                [warning] = caplog.records
                assert f"{missing[1]} is not in this mcp release" in warning.getMessage()
                for target in table:  # but the same function bound elsewhere, which a release would lack too
                    if originals[target] is not originals[missing]:
                        assert current(*target).__wrapped__ is originals[target], target
            finally:
                instrumentor.uninstrument()
            for target in table:
                if originals[target] is not originals[missing]:
                    assert current(*target) is originals[target], target


def test_a_failure_half_way_undoes_what_was_applied(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    table = the_table()
    originals = {(owner, attribute): current(owner, attribute) for owner, attribute in table}
    find = _patching.Target.owner
    calls = 0

    def failing_late(target: _patching.Target) -> Any:
        nonlocal calls
        calls += 1
        if calls == len(table) // 2:
            raise RuntimeError("the patching broke")
        return find(target)

    monkeypatch.setattr(_patching.Target, "owner", failing_late)
    instrumentor = McpInstrumentor()
    with caplog.at_level(logging.WARNING, logger="opentelemetry_instrumentation_mcp"):
        instrumentor.instrument()  # the host goes on: nothing raised
    assert "could not be applied" in caplog.records[-1].getMessage()
    for target in table:
        assert current(*target) is originals[target], target
    instrumentor.uninstrument()
    for target in table:
        assert current(*target) is originals[target], target


async def ping_twice(app: Any) -> list[dict[str, Any]]:
    async with raw_peer(app) as peer:
        return [
            await peer.request("ping"),
            await peer.request("tools/call", {"name": "add", "arguments": {"a": 1, "b": 1}}),
        ]


@pytest.mark.anyio
async def test_spans_only_while_instrumented(exporter: InMemorySpanExporter) -> None:
    instrumentor = McpInstrumentor()
    for _ in range(2):
        instrumentor.instrument()
        instrumentor.instrument()
        await ping_twice(reference_app())
        assert [span.name for span in ours(exporter)] == [
            "initialize",
            "notifications/initialized",
            "ping",
            "tools/call add",
        ]
        exporter.clear()
        instrumentor.uninstrument()
        await ping_twice(reference_app())
        assert ours(exporter) == []


@pytest.mark.anyio
async def test_suppressed_instrumentation_emits_nothing(instrumented: InMemorySpanExporter) -> None:
    with suppress_instrumentation():
        answers = await ping_twice(reference_app())
    assert answers[1]["result"]["isError"] is False
    assert [span.name for span in instrumented.get_finished_spans()] == ["add.compute"]  # the app's own span


@pytest.mark.anyio
@pytest.mark.parametrize("provider", ["noop", "sampled_out"])
async def test_no_provider_and_sampled_out(provider: str) -> None:
    exporter = InMemorySpanExporter()
    if provider == "noop":
        tracer_provider: Any = NoOpTracerProvider()
    else:
        tracer_provider = TracerProvider(sampler=ALWAYS_OFF)
        tracer_provider.add_span_processor(SimpleSpanProcessor(exporter))
    plain = await ping_twice(reference_app())
    instrumentor = McpInstrumentor()
    instrumentor.instrument(tracer_provider=tracer_provider)
    try:
        traced = await ping_twice(reference_app())
    finally:
        instrumentor.uninstrument()
    assert traced == plain
    assert exporter.get_finished_spans() == ()


@pytest.mark.anyio
async def test_a_fault_of_ours_is_logged_once_and_the_call_proceeds(
    instrumented: InMemorySpanExporter,
    tolerant: None,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    def broken(*args: Any) -> Any:
        raise RuntimeError("instrumentation bug")

    monkeypatch.setattr("opentelemetry_instrumentation_mcp._operation.choose_server_parent", broken)
    with caplog.at_level(logging.WARNING, logger="opentelemetry_instrumentation_mcp"):
        answers = await ping_twice(reference_app())
    assert answers[0]["result"] == {}
    assert answers[1]["result"]["isError"] is False
    assert ours(instrumented) == []
    assert [record.message for record in caplog.records] == [
        "mcp instrumentation failed in starting a server span; the MCP call goes on unaffected"
    ]


ORDER_SCRIPT = """
import json, sys, anyio
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry_instrumentation_mcp import McpInstrumentor

exporter = InMemorySpanExporter()
provider = TracerProvider()
provider.add_span_processor(SimpleSpanProcessor(exporter))
if sys.argv[1] == "before":
    assert "mcp" not in sys.modules
    McpInstrumentor().instrument(tracer_provider=provider)
from support.apps import reference_app
from support.peers import raw_peer
if sys.argv[1] == "after":
    McpInstrumentor().instrument(tracer_provider=provider)

async def main():
    async with raw_peer(reference_app()) as peer:
        await peer.request("ping")

anyio.run(main)
print(json.dumps([span.name for span in exporter.get_finished_spans()]))
"""


@pytest.mark.parametrize("order", ["before", "after"])
def test_instrument_before_or_after_mcp_is_imported(order: str) -> None:
    result = subprocess.run(
        [sys.executable, "-c", ORDER_SCRIPT, order], cwd=TESTS, capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout.splitlines()[-1]) == ["initialize", "notifications/initialized", "ping"]


PROVIDERS_LATER_SCRIPT = """
import json, sys, anyio
from opentelemetry import metrics, trace
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry_instrumentation_mcp import McpInstrumentor
from support.apps import reference_app
from support.peers import raw_peer

McpInstrumentor().instrument()  # no global providers yet: context is only passed on

async def ping():
    async with raw_peer(reference_app(), initialize=False) as peer:
        await peer.request("ping")

anyio.run(ping)
exporter, reader = InMemorySpanExporter(), InMemoryMetricReader()
provider = TracerProvider()
provider.add_span_processor(SimpleSpanProcessor(exporter))
if sys.argv[1] == "traces":
    trace.set_tracer_provider(provider)
else:
    metrics.set_meter_provider(MeterProvider(metric_readers=[reader]))
anyio.run(ping)
data = reader.get_metrics_data()
recorded = [m.name for r in (data.resource_metrics if data else []) for s in r.scope_metrics for m in s.metrics]
print(json.dumps([[span.name for span in exporter.get_finished_spans()], recorded]))
"""


@pytest.mark.parametrize(
    ("configured", "recorded"),
    [("traces", [["ping"], []]), ("metrics", [[], ["mcp.server.operation.duration"]])],
)
def test_global_providers_set_after_instrument_take_effect(configured: str, recorded: list[list[str]]) -> None:
    result = subprocess.run(
        [sys.executable, "-c", PROVIDERS_LATER_SCRIPT, configured],
        cwd=TESTS,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout.splitlines()[-1]) == recorded
