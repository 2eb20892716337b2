"""The one table of what this package wraps, applied and removed as a whole.

Each target says why it is wrapped: most are private to the SDK, since no public hook sees what they see. An SDK
release that renames a private target costs the user that target's feature, not the package: a missing target is
skipped with one warning naming it (optional ones, which only some releases have, silently), and a failure
half-way through undoes everything applied so far.
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, NamedTuple

from opentelemetry.instrumentation.utils import unwrap
from wrapt import wrap_function_wrapper

_logger = logging.getLogger("opentelemetry_instrumentation_mcp")

Wrapper = Callable[[Any, Any, tuple[Any, ...], dict[str, Any]], Any]
"""A wrapt wrapper: `wrapper(wrapped, instance, args, kwargs)`."""


def argument(args: tuple[Any, ...], kwargs: dict[str, Any], position: int, name: str) -> Any:
    """The argument a wrapped call got at `position` or by `name`; None if it got neither."""
    return args[position] if len(args) > position else kwargs.get(name)


@dataclass(frozen=True)
class Target:
    """A function or method to wrap: `module`, then `path` within it (`Owner.method` or `function`)."""

    module: str
    path: str
    wrapper: Wrapper
    why: str
    """What the wrapper learns or changes there, and what it reads of the SDK's private state: why no public hook
    serves."""
    optional: bool = False
    """Present in some releases only: skipped without a warning where absent."""

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


class Patcher:
    """Applies a table of targets; `remove()` unwraps what was applied, in reverse."""

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
                wrap_function_wrapper(owner, attribute, target.wrapper)
                self.applied.append(Applied(target, owner, attribute))
        except Exception:
            self.remove()
            raise

    def remove(self) -> None:
        for _, owner, attribute in reversed(self.applied):
            unwrap(owner, attribute)
        self.applied = []
