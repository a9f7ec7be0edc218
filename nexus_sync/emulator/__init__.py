"""A local Nexus Share: the API of the documentation, state in SQLite, fault knobs.

It serves the tests, the benchmarks and `--local`, over real HTTP (uvicorn) or
in process (httpx's ASGI transport).
"""

from .app import Emulator, create_app
from .faults import ConnectionDropped, Knobs

__all__ = ["ConnectionDropped", "Emulator", "Knobs", "create_app"]
