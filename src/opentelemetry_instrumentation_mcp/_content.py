"""Opt-in content: tool arguments and results, prompt arguments, as capped JSON."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

TRUNCATED = "…[truncated]"


def _plain(value: Any) -> Any:
    """JSON-like data: pydantic models (mcp 1.x) are dumped as they go on the wire."""
    dump = getattr(value, "model_dump", None)
    if callable(dump):
        return dump(mode="json", by_alias=True, exclude_none=True)
    return value


def as_json(value: Any, max_length: int) -> str:
    """`value` as JSON, at most `max_length` characters, cut cleanly and marked when longer; never raises."""
    try:
        text = json.dumps(_plain(value), ensure_ascii=False, default=str)
    except (TypeError, ValueError, RecursionError):
        text = repr(value)
    return capped(text, max_length)


def capped(text: str, max_length: int) -> str:
    """`text`, at most `max_length` characters, cut cleanly and marked when longer."""
    if len(text) <= max_length:
        return text
    keep = max_length - len(TRUNCATED)
    return text[:keep] + TRUNCATED if keep > 0 else text[:max_length]


def as_data(value: Any) -> Any:
    """`value` as JSON-like data (for hooks), whichever SDK generation made it."""
    return _plain(value)


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
