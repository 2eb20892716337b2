"""The one table of what this package wraps, applied and removed as a whole.

Each target says why it is wrapped: most are private to the SDK, since no public hook sees what they see. An SDK
release that renames a private target costs the user that target's feature, not the package: a missing target is
skipped with one warning naming it (optional ones, which only some releases have, silently), and a failure
half-way through undoes everything applied so far.
"""

from __future__ import annotations

import functools
import importlib
import inspect
import logging
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from types import FunctionType
from typing import Any, NamedTuple

from opentelemetry.instrumentation.utils import unwrap
from wrapt import wrap_function_wrapper

_logger = logging.getLogger("opentelemetry_instrumentation_mcp")

Wrapper = Callable[[Any, Any, tuple[Any, ...], dict[str, Any]], Any]
"""A wrapt wrapper: `wrapper(wrapped, instance, args, kwargs)`."""


class StandIn(ABC):
    """The wrapper of a method called for every message that makes, itself, the plain function put in the method's
    place: the whole wrapper in that one function, with no call of a wrapper of wrapt's form in between."""

    @abstractmethod
    def stand_in_for(self, method: Any) -> Callable[..., Any]:
        """The plain function to put in the place of `method` (a method, or another instrumentation's wrapper of one),
        called as `stand_in(instance, *args, **kwargs)`; it calls `method.__get__(instance)`."""


def argument(args: tuple[Any, ...], kwargs: dict[str, Any], position: int, name: str) -> Any:
    """The argument a wrapped call got at `position` or by `name`; None if it got neither."""
    return args[position] if len(args) > position else kwargs.get(name)


@dataclass(frozen=True)
class Target:
    """A function or method to wrap: `module`, then `path` within it (`Owner.method` or `function`)."""

    module: str
    path: str
    wrapper: Callable[..., Any] | StandIn
    """A wrapt wrapper (`Wrapper`) or a `StandIn`; with `replaces`, the function put in the target's place, of its
    signature."""
    why: str
    """What the wrapper learns or changes there, and what it reads of the SDK's private state: why no public hook
    serves."""
    optional: bool = False
    """Present in some releases only: skipped without a warning where absent."""
    per_message: bool = False
    """A method called for every message: the wrapper is called from a plain function put in the method's place, not
    from a wrapt proxy, whose call costs about 0.5 µs more (of 2 to 3 µs a traced message costs us)."""
    replaces: bool = False
    """The wrapper, of the target's own signature, takes the target's place: the SDK's own tracing, muted on every
    message, where even a plain function calling the wrapper would cost more than the call it mutes."""

    @property
    def name(self) -> str:
        return f"{self.module}.{self.path}"

    def owner(self) -> tuple[Any, str] | None:
        """What holds the target, and the target's attribute name; None where this release lacks it."""
        try:
            owner: Any = importlib.import_module(self.module)
        except ImportError:
            return None
        *owners, attribute = self.path.split(".")
        for name in owners:
            owner = getattr(owner, name, None)
        # a class's own method, not one it inherits: wrapping that would change its base's behaviour there
        found = vars(owner).get(attribute) if isinstance(owner, type) else getattr(owner, attribute, None)
        return (owner, attribute) if callable(found) or isinstance(found, classmethod) else None


class Applied(NamedTuple):
    target: Target
    owner: Any
    attribute: str
    original: Any = None
    """What a plain function was put in the place of, put back by `remove()`; None where wrapt wrapped it."""


class Patcher:
    """Applies a table of targets; `remove()` unwraps what was applied, in reverse.

    A target is wrapped by wrapt, but for a method called for every message, which gets a plain function calling its
    wrapper (or the one its `StandIn` makes), and a replacing target, whose wrapper takes its place. Every plain
    function has the target's name, signature and `__wrapped__`, and is put back by `remove()`."""

    def __init__(self) -> None:
        self.applied: list[Applied] = []

    def apply(self, targets: Iterable[Target]) -> None:
        """Wrap every target this release has; on a failure, unwrap what was wrapped and raise it."""
        try:
            for target in targets:
                found = target.owner()
                if found is None:
                    if not target.optional:
                        _logger.warning("mcp instrumentation: %s is not in this mcp release; skipped", target.name)
                    continue
                owner, attribute = found
                original = vars(owner)[attribute] if isinstance(owner, type) else getattr(owner, attribute)
                if isinstance(target.wrapper, StandIn):
                    plain = _passing_for(target.wrapper.stand_in_for(original), original)
                elif target.replaces:
                    plain = _standing_in(target.wrapper, original)
                elif target.per_message and isinstance(owner, type) and isinstance(original, FunctionType):
                    plain = _calling(target.wrapper, original)
                else:
                    wrap_function_wrapper(owner, attribute, target.wrapper)
                    self.applied.append(Applied(target, owner, attribute))
                    continue
                setattr(owner, attribute, plain)
                self.applied.append(Applied(target, owner, attribute, original))
        except Exception:
            self.remove()
            raise

    def remove(self) -> None:
        for _, owner, attribute, original in reversed(self.applied):
            if original is not None:
                setattr(owner, attribute, original)
            else:
                unwrap(owner, attribute)
        self.applied = []


def _calling(wrapper: Wrapper, method: FunctionType) -> Callable[..., Any]:
    """A plain function to put in the place of `method` that calls `wrapper(bound method, instance, args, kwargs)`,
    as wrapt does. For a coroutine method it returns the wrapper's awaitable as it is: a coroutine function of its own
    would add a frame to every resumption of the SDK's coroutine."""

    def calling_wrapper(instance: Any, *args: Any, **kwargs: Any) -> Any:
        return wrapper(method.__get__(instance), instance, args, kwargs)

    return _passing_for(calling_wrapper, method)


def _standing_in(function: Callable[..., Any], original: Any) -> Callable[..., Any]:
    """A copy of `function` (which may stand in for several targets) to put in the place of `original`."""
    copy = FunctionType(
        function.__code__, function.__globals__, function.__name__, function.__defaults__, function.__closure__
    )
    copy.__kwdefaults__ = function.__kwdefaults__
    return _passing_for(copy, original)


def _passing_for(stand_in: Callable[..., Any], original: Any) -> Callable[..., Any]:
    """`stand_in` with `original`'s name, signature and `__wrapped__`, as a wrapper has, and marked a coroutine
    function where `original` is one and Python can mark one (3.12+), for code that asks
    `inspect.iscoroutinefunction`."""
    functools.update_wrapper(stand_in, original)
    mark = getattr(inspect, "markcoroutinefunction", None)
    if mark is not None and inspect.iscoroutinefunction(original):
        mark(stand_in)
    return stand_in
