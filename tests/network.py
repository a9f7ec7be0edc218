"""The in-process emulator behind a network that fails exactly as a test says.

The emulator's own fault knobs are random (or every Nth request); a unit test
of the client needs "the second DELETE loses its answer". This transport sends
each request to the real emulator application unless the script for its
endpoint says otherwise, and records what was sent and when.
"""

from __future__ import annotations

import collections
import dataclasses
import time
from pathlib import Path

import httpx

from nexus_sync.auth import StaticToken
from nexus_sync.client import NexusClient
from nexus_sync.emulator import Emulator, create_app
from nexus_sync.emulator.faults import endpoint_name

# What a script may say for one request:
#   "ok"            sent to the emulator, answered
#   "refuse"        never sent: the connection is refused
#   "drop"          sent and carried out; the connection closes with no answer
#   "timeout"       sent and carried out; no answer in time
#   "503", "502"... answered with that status, not carried out
#   "429:SECONDS"   answered 429 with Retry-After: SECONDS, not carried out
Fault = str


@dataclasses.dataclass(frozen=True)
class Sent:
    endpoint: str
    time: float
    fault: Fault
    idempotency_key: str | None


class ScriptedNetwork(httpx.AsyncBaseTransport):
    """A transport to the in-process emulator with scripted faults."""

    def __init__(self, emulator: Emulator, honour_keys: bool = True) -> None:
        self._app = httpx.ASGITransport(app=create_app(emulator))
        self._scripts: dict[str, collections.deque[Fault]] = collections.defaultdict(
            collections.deque
        )
        # A server that ignores Idempotency-Key never sees one.
        self.honour_keys = honour_keys
        self.sent: list[Sent] = []

    def script(self, endpoint: str, *faults: Fault) -> None:
        """The next requests to `endpoint` (e.g. "POST /messages") meet `faults`."""
        self._scripts[endpoint].extend(faults)

    def count(self, endpoint: str) -> int:
        return sum(1 for sent in self.sent if sent.endpoint == endpoint)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        endpoint = endpoint_name(request.method, request.url.path)
        script = self._scripts[endpoint]
        fault = script.popleft() if script else "ok"
        key = request.headers.get("idempotency-key")
        self.sent.append(Sent(endpoint, time.time(), fault, key))

        if fault == "refuse":
            raise httpx.ConnectError("[Errno 111] Connection refused", request=request)
        if fault.startswith("429:"):
            return httpx.Response(
                429,
                headers={"Retry-After": fault.removeprefix("429:")},
                json={"error": "Too Many Requests", "details": "scripted"},
            )
        if fault.isdigit():
            return httpx.Response(
                int(fault), json={"error": "Service Unavailable", "details": "scripted"}
            )

        if not self.honour_keys and key:
            del request.headers["idempotency-key"]
        response = await self._app.handle_async_request(request)
        await response.aread()
        if fault == "drop":
            raise httpx.RemoteProtocolError(
                "Server disconnected without sending a response.", request=request
            )
        if fault == "timeout":
            raise httpx.ReadTimeout("timed out", request=request)
        return response


def scripted_client(
    tmp_path: Path,
    honour_keys: bool = True,
    clock_offset: float = 0.0,
    **options: float,
) -> tuple[NexusClient, ScriptedNetwork, Emulator]:
    """A client for user alice of a fresh emulator, through a ScriptedNetwork.

    Backoff is shortened so that tests of what is retried stay fast; the
    waits themselves are tested with the real server.
    """
    emulator = Emulator(tmp_path / "emulator-state")
    # Issued before the clock moves: the emulator checks `iat` on real time.
    token = emulator.mint("alice", ttl=3600 + clock_offset)
    emulator.clock_offset = clock_offset
    network = ScriptedNetwork(emulator, honour_keys)
    settings = {"wait_initial": 0.01, "wait_max": 0.05, **options}
    client = NexusClient(
        "http://emulator.test",
        StaticToken(token),
        transport=network,
        **settings,
    )
    return client, network, emulator
