"""A local Nexus Share: the API of the documentation, state in SQLite, fault knobs.

It serves the tests, the benchmarks and `--local`, over real HTTP (uvicorn) or
in process (httpx's ASGI transport).
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = ["ConnectionDropped", "Emulator", "Knobs", "create_app"]

# Imported when first asked for: the command line reads the knob list of
# .faults on every start, and the app would bring Starlette and PyJWT along.
_HOMES = {
    "ConnectionDropped": ".faults",
    "Emulator": ".app",
    "Knobs": ".faults",
    "create_app": ".app",
}


def __getattr__(name: str) -> Any:
    if name not in _HOMES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(_HOMES[name], __name__), name)
