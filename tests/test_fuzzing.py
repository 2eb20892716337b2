"""Generated request ids and params, odd and huge, get the answers of the uninstrumented server."""

from __future__ import annotations

from typing import Any

import anyio
from hypothesis import given, settings
from hypothesis import strategies as st
from opentelemetry.instrumentation.utils import suppress_instrumentation
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from support.apps import reference_app
from support.peers import raw_peer

ids = st.one_of(
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.text(max_size=40),
    st.text(alphabet=st.characters(codec="utf-8"), min_size=1000, max_size=5000),
)
params = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=50),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=12,
)


async def ask(request_id: Any, method: str, arguments: Any, patience: float = 2) -> Any:
    """The answers, or how the SDK failed (some releases end a session on odd ids, or leave a request unanswered:
    an answer takes milliseconds in memory, so `patience` seconds of silence is one): the same, traced or not."""
    try:
        with anyio.fail_after(patience):
            return await conversation_of(request_id, method, arguments)
    except BaseException as failure:  # noqa: BLE001 - compared, not handled
        return type(failure).__name__


async def conversation_of(request_id: Any, method: str, arguments: Any) -> Any:
    async with raw_peer(reference_app()) as peer:
        params = {"name": "add", "arguments": arguments, "_meta": arguments}
        return await peer.request(method, params, id=request_id), await peer.request("ping")


@settings(max_examples=settings.default.max_examples // 2)  # each example is two whole sessions
@given(
    request_id=ids,
    method=st.sampled_from(["tools/call", "prompts/get", "resources/read", "ping", "no/such"]),
    arguments=params,
)
def test_generated_ids_and_params_get_the_uninstrumented_answers(
    instrumented_module: InMemorySpanExporter, request_id: Any, method: str, arguments: Any
) -> None:
    with suppress_instrumentation():
        plain = anyio.run(ask, request_id, method, arguments)
    traced = anyio.run(ask, request_id, method, arguments)
    # a busy machine can hold an answer past two seconds: where only one run heard none, it asks again, patiently
    if traced == "TimeoutError" != plain:
        traced = anyio.run(ask, request_id, method, arguments, 30)
    elif plain == "TimeoutError" != traced:
        with suppress_instrumentation():
            plain = anyio.run(ask, request_id, method, arguments, 30)
    assert traced == plain
