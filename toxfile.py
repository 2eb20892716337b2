"""tox's inline plugin: a plain `tox` runs its environments in parallel, one per core, as `tox p` would.

The full run is CPU-bound and no single environment keeps both cores busy (installs, collection, stragglers),
so running two at once brings the whole matrix to about half its sequential time. `tox -p 0` runs them one
after another; `tox -e NAME` runs one.
"""

from __future__ import annotations

from tox.config.cli.parser import ToxParser
from tox.plugin import impl


@impl(trylast=True)
def tox_add_option(parser: ToxParser) -> None:
    legacy = parser.handlers.get("legacy")
    if legacy is not None:
        legacy[0].set_defaults(parallel="auto")
