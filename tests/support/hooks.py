"""Hooks named by `module:function` in the environment-variable tests."""

from __future__ import annotations

from typing import Any

calls: list[tuple[str, str, Any]] = []


def on_request(span: Any, method: str, params: Any) -> None:
    calls.append(("request", method, params))
    span.set_attribute("test.hooked", method)


def on_response(span: Any, method: str, result: Any) -> None:
    calls.append(("response", method, result))
