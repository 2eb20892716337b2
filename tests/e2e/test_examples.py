"""Into the user's stack: the examples' compose files for Jaeger and Tempo, run against a real OTLP receiver
over gRPC and HTTP; the MCP hosts' config recipes; the README's stdio snippet.

The compose files cannot be run here (no Docker): they are validated against the Compose Specification's
schema, and the example agent is run exactly as their `agent` service would run it, with the backends'
addresses pointed at the test's receiver.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from mcp import StdioServerParameters
from opentelemetry.trace import SpanKind

from opentelemetry_instrumentation_mcp.viewer import OtlpReceiver, ReceivedSpan
from support.compat import MCP_VERSION
from support.processes import ROOT, instrument_command
from support.sessions import connected

EXAMPLES = ROOT / "examples"
COMPOSE_FILES = sorted(EXAMPLES.glob("*/docker-compose.yml"))
SCHEMA = json.loads((ROOT / "tests" / "schemas" / "compose-spec.json").read_text())
HOSTS = sorted((EXAMPLES / "hosts").glob("*.json"))
CITIES = ("Lisbon", "Oslo")
needs_a_waiting_stdio_client = pytest.mark.skipif(
    MCP_VERSION < (1, 11), reason="mcp < 1.11 stdio clients kill the server at exit, before it exports"
)


@pytest.fixture(scope="module")
def receiver() -> Iterator[OtlpReceiver]:
    with OtlpReceiver(grpc=True) as receiver:
        yield receiver


def compose(path: Path) -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(path.read_text())
    return loaded


def test_the_examples_are_the_two_backends() -> None:
    assert [path.parent.name for path in COMPOSE_FILES] == ["jaeger", "tempo"]


@pytest.mark.parametrize("path", COMPOSE_FILES, ids=lambda path: path.parent.name)
def test_compose_file_follows_the_compose_specification(path: Path) -> None:
    """What `docker compose config` would check first: the schema, and that every file it names exists."""
    document = compose(path)
    jsonschema.Draft201909Validator(SCHEMA).validate(document)
    for service in document["services"].values():
        build = service.get("build")
        if build is not None:
            assert (path.parent / build["context"] / build["dockerfile"]).is_file()
        for volume in service.get("volumes", []):
            assert (path.parent / volume.split(":")[0]).exists(), volume
        for port in service.get("ports", []):
            published, _, target = port.partition(":")
            assert published == target  # the documented ports, as they are


def test_jaeger_is_all_in_one_with_otlp_and_its_ui() -> None:
    jaeger = compose(EXAMPLES / "jaeger" / "docker-compose.yml")["services"]["jaeger"]
    assert jaeger["image"].split(":")[0].endswith("jaegertracing/jaeger")  # the v2 image is the all-in-one
    assert set(jaeger["ports"]) == {"16686:16686", "4317:4317", "4318:4318"}


def test_tempo_links_traces_to_logs_in_loki() -> None:
    tempo = EXAMPLES / "tempo"
    config = yaml.safe_load((tempo / "tempo.yaml").read_text())
    receivers = config["distributor"]["receivers"]["otlp"]["protocols"]
    assert receivers == {"grpc": {"endpoint": "0.0.0.0:4317"}, "http": {"endpoint": "0.0.0.0:4318"}}
    provisioned = yaml.safe_load((tempo / "grafana" / "datasources.yaml").read_text())
    sources = {source["uid"]: source for source in provisioned["datasources"]}
    assert sources["tempo"]["jsonData"]["tracesToLogsV2"]["datasourceUid"] == "loki"
    assert sources["loki"]["jsonData"]["derivedFields"][0]["datasourceUid"] == "tempo"
    services = compose(tempo / "docker-compose.yml")["services"]
    assert {sources[uid]["url"].split("//")[1].split(":")[0] for uid in sources} <= set(services)


_BACKEND_URL = re.compile(r"^http://[a-z]+:\d+(?P<path>/\S*)?$")


def locally(environment: dict[str, str], receiver: OtlpReceiver) -> dict[str, str]:
    """A compose service's environment with each backend's OTLP address replaced by the test receiver's:
    base endpoints by the protocol's, signal endpoints (`.../v1/traces`, Loki's `/otlp/v1/logs`...) by its HTTP."""
    grpc = environment.get("OTEL_EXPORTER_OTLP_PROTOCOL") == "grpc"
    moved = {}
    for name, value in environment.items():
        match = _BACKEND_URL.match(str(value)) if name.startswith("OTEL_EXPORTER_OTLP_") else None
        if match is None:
            moved[name] = str(value)
        elif match["path"] and "/v1/" in match["path"]:
            moved[name] = receiver.endpoint + match["path"][match["path"].index("/v1/") :]
        else:
            moved[name] = receiver.grpc_endpoint if grpc else receiver.endpoint
    return moved


def run_agent(environment: dict[str, str], command: list[str]) -> str:
    executables = {"opentelemetry-instrument": instrument_command(), "python": sys.executable}
    base = {name: value for name, value in os.environ.items() if not name.startswith("OTEL_")}
    result = subprocess.run(
        [executables.get(part, part) for part in command],
        cwd=ROOT,
        env={**base, **environment, "OTEL_BSP_SCHEDULE_DELAY": "50"},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def is_ours(span: ReceivedSpan) -> bool:
    return span.scope_name == "opentelemetry_instrumentation_mcp"


@needs_a_waiting_stdio_client
@pytest.mark.parametrize("path", COMPOSE_FILES, ids=lambda path: path.parent.name)
def test_example_agent_as_its_compose_service_runs_it(path: Path, receiver: OtlpReceiver) -> None:
    """One trace: the agent's span, its CLIENT spans, and beneath each the server's SERVER span, another process
    exporting over the same protocol (gRPC for Jaeger, HTTP for Tempo); on Tempo, logs in their spans too."""
    agent = compose(path)["services"]["agent"]
    receiver.clear()
    output = run_agent(locally(agent["environment"], receiver), agent["command"])
    assert output.splitlines() == ["Lisbon: sunny, 24 °C", "Oslo: rain, 9 °C"]

    # both processes flushed their exports before exiting
    receiver.wait_for_spans(lambda span: span.name == "plan a trip")
    spans = receiver.spans
    [root] = [span for span in spans if span.name == "plan a trip"]
    assert root.parent_span_id is None
    assert {span.trace_id for span in spans} == {root.trace_id}
    clients = [span for span in spans if is_ours(span) and span.kind is SpanKind.CLIENT]
    servers = [span for span in spans if is_ours(span) and span.kind is SpanKind.SERVER]
    assert {span.resource["service.name"] for span in clients} == {"weather-agent"}
    assert {span.resource["service.name"] for span in servers} == {"weather-server"}
    assert all(span.parent_span_id == root.span_id for span in clients)
    calls = [span for span in clients if span.name == "tools/call forecast"]
    assert len(calls) == len(CITIES)
    for call in calls:
        [handled] = [span for span in servers if span.parent_span_id == call.span_id]
        assert handled.name == "tools/call forecast"
        assert handled.attributes["network.transport"] == "pipe"
        assert call.attributes["network.transport"] == "pipe"

    if agent["environment"].get("OTEL_LOGS_EXPORTER") == "otlp":
        lines = {log.body: log for log in receiver.wait_for_logs(lambda log: log.body.startswith("forecast asked"))}
        for city in CITIES:
            line = lines[f"forecast asked for {city}"]
            tool = [span for span in servers if span.span_id == line.span_id]
            assert tool, "the log line is in the tool's span"
            assert line.trace_id == root.trace_id


PLACEHOLDERS = {
    "/path/to/venv/bin/": str(Path(sys.executable).parent) + "/",
    "/path/to/mcp-opentelemetry": str(ROOT),
    "${workspaceFolder}/.venv/bin/": str(Path(sys.executable).parent) + "/",
    "${workspaceFolder}": str(ROOT),
}


def console_exporters_in(env: dict[str, str]) -> bool:
    return any("console" in value for name, value in env.items() if name.endswith("_EXPORTER"))


def recipe(path: Path, receiver: OtlpReceiver) -> dict[str, Any]:
    """The weather server's entry of a host's config, its placeholders filled in for this machine."""
    text = path.read_text()
    for placeholder, value in PLACEHOLDERS.items():
        text = text.replace(placeholder, value)
    text = text.replace("http://localhost:4318", receiver.endpoint)
    config = json.loads(text)
    servers = config.get("mcpServers") or config["servers"]  # Claude Desktop and Cursor; VS Code
    entry: dict[str, Any] = servers["weather"]
    return entry


@needs_a_waiting_stdio_client
@pytest.mark.anyio
@pytest.mark.parametrize("path", HOSTS, ids=lambda path: path.stem)
async def test_host_config_recipe_starts_a_traced_server(path: Path, receiver: OtlpReceiver) -> None:
    """Spawned as the host would (command, args and env, nothing else inherited), the server exports its spans."""
    entry = recipe(path, receiver)
    assert Path(entry["command"]).name == "opentelemetry-instrument"
    assert not console_exporters_in(entry["env"])
    receiver.clear()
    parameters = StdioServerParameters(command=entry["command"], args=entry["args"], env=entry["env"])
    async with connected("stdio", parameters) as session:
        result = await session.call_tool("forecast", {"city": "Oslo"})
    assert result.content[0].text == "Oslo: rain, 9 °C"
    [span] = receiver.wait_for_spans(lambda span: span.name == "tools/call forecast")
    assert (span.kind, span.resource["service.name"]) == (SpanKind.SERVER, entry["env"]["OTEL_SERVICE_NAME"])


def readme_stdio_snippet() -> str:
    """The Python block of the README's stdio pitfall, as a user copies it."""
    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index("**The stdio pitfall.**") :]
    return section[section.index("```python\n") + len("```python\n") : section.index("\n```\n")]


DRIVE_THE_SNIPPET = """
import asyncio
from mcp import ClientSession
from mcp.client.stdio import stdio_client

async def main() -> None:
    async with stdio_client(server) as (read, write), ClientSession(read, write) as session:
        await session.initialize()
        print((await session.call_tool("forecast", {"city": "Oslo"})).content[0].text)

asyncio.run(main())
"""


@needs_a_waiting_stdio_client
def test_the_readme_stdio_snippet_works_outside_an_activated_environment(
    receiver: OtlpReceiver, tmp_path: Path
) -> None:
    """A client run by its venv's Python by full path, with no venv on PATH, starts the traced server."""
    snippet = readme_stdio_snippet()
    assert "\nStdioServerParameters(\n" in snippet
    client = (
        snippet.replace("\nStdioServerParameters(\n", "\nserver = StdioServerParameters(\n")
        .replace('"server.py"', repr(str(EXAMPLES / "app" / "server.py")))
        .replace("http://127.0.0.1:4318", receiver.endpoint)
        + DRIVE_THE_SNIPPET
    )
    receiver.clear()
    result = subprocess.run(
        [sys.executable, "-c", client],
        cwd=tmp_path,
        env={"PATH": "/usr/bin:/bin", "HOME": os.environ.get("HOME", "/")},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == "Oslo: rain, 9 °C\n"
    [span] = receiver.wait_for_spans(lambda span: span.name == "tools/call forecast")
    assert (span.kind, span.resource["service.name"]) == (SpanKind.SERVER, "my-mcp-server")


def test_host_recipes_cover_the_three_hosts() -> None:
    assert [path.stem for path in HOSTS] == ["claude_desktop_config", "cursor-mcp", "vscode-mcp"]
