"""What of a message's content goes on its span, by the user's choice only: tool arguments and results and prompt
arguments (opt-in, as capped JSON), and the request and response hooks."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from opentelemetry.trace import Span

from opentelemetry_instrumentation_mcp._config import Options
from opentelemetry_instrumentation_mcp._conventions import GEN_AI_TOOL_CALL_ARGUMENTS, GEN_AI_TOOL_CALL_RESULT
from opentelemetry_instrumentation_mcp._guard import guarded
from opentelemetry_instrumentation_mcp._message import Message

TRUNCATED = "…[truncated]"


class Content:
    """Records a recorded span's opt-in content and calls the user's hooks, as `instrument()` was told."""

    def __init__(self, options: Options) -> None:
        self._capture = options.capture_content
        self._max_length = options.content_max_length
        self._request_hook = options.request_hook
        self._response_hook = options.response_hook
        self.reads_requests = options.capture_content or options.request_hook is not None
        """Whether anything is done with a message as its span starts."""
        self.reads_results = options.capture_content or options.response_hook is not None
        """Whether anything is done with an operation's result."""

    def record_request(self, span: Span, message: Message, *, capture: bool = True) -> None:
        """As the span of `message` starts: its arguments, if captured (and `capture`: not on a span another
        instrumentation owns, which records content as it is told); the request hook."""
        if self._capture and capture:
            if message.method == "tools/call" and message.arguments is not None:
                span.set_attribute(GEN_AI_TOOL_CALL_ARGUMENTS, as_json(message.arguments, self._max_length))
            elif message.method == "prompts/get":
                span.set_attributes(prompt_variables(as_data(message.arguments), self._max_length))
        hook = self._request_hook
        if hook is not None:
            guarded("the request hook", lambda: hook(span, message.method, as_data(message.params)), None)

    def record_result(self, span: Span, method: str, result: object, *, capture: bool = True) -> None:
        """As an operation's result arrives: a tool's result, if captured (and `capture`); the response hook."""
        if self._capture and capture and method == "tools/call":
            span.set_attribute(GEN_AI_TOOL_CALL_RESULT, as_json(result, self._max_length))
        hook = self._response_hook
        if hook is not None:
            guarded("the response hook", lambda: hook(span, method, as_data(result)), None)


def as_data(value: Any) -> Any:
    """`value` as JSON-like data: pydantic models (mcp 1.x) are dumped as they go on the wire."""
    dump = getattr(value, "model_dump", None)
    if callable(dump):
        return dump(mode="json", by_alias=True, exclude_none=True)
    return value


def as_json(value: Any, max_length: int) -> str:
    """`value` as JSON, at most `max_length` characters, cut cleanly and marked when longer; never raises."""
    try:
        text = json.dumps(as_data(value), ensure_ascii=False, default=str)
    except (TypeError, ValueError, RecursionError):
        text = repr(value)
    return capped(text, max_length)


def capped(text: str, max_length: int) -> str:
    """`text`, at most `max_length` characters, cut cleanly and marked when longer."""
    if len(text) <= max_length:
        return text
    keep = max_length - len(TRUNCATED)
    return text[:keep] + TRUNCATED if keep > 0 else text[:max_length]


def prompt_variables(arguments: object, max_length: int) -> dict[str, str]:
    """`gen_ai.prompt.variable.<name>` attributes of a `prompts/get`'s arguments."""
    if not isinstance(arguments, Mapping):
        return {}
    return {
        f"gen_ai.prompt.variable.{name}": capped(value, max_length)
        if isinstance(value, str)
        else as_json(value, max_length)
        for name, value in arguments.items()
        if isinstance(name, str)
    }
