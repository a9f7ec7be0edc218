"""Misbehaving on purpose: the knobs, and the ASGI middleware that obeys them."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import random
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from http import HTTPStatus
from typing import Any

import httpx

log = logging.getLogger(__name__)

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict]]
Send = Callable[[dict], Awaitable[None]]

ENDPOINTS = (
    "POST /messages",
    "GET /messages",
    "GET /messages/{id}",
    "PATCH /messages/{id}",
    "DELETE /messages/{id}",
    "POST /messages/{id}/publish",
)
# Paths that are not the service's API: never counted, never faulted.
UNCOUNTED_PREFIXES = ("/_emulator", "/.well-known")
# Where a request's log entry travels in its ASGI scope, for the application.
ENTRY_KEY = "nexus_sync.emulator.log_entry"


class KnobError(ValueError):
    """A knob that does not exist, or a value it cannot take."""


@dataclasses.dataclass
class Knobs:
    """How the emulator misbehaves on purpose. Rates are fractions of requests.

    Each fault applies to the endpoints of its filter (names as in ENDPOINTS);
    an empty filter means every endpoint of the API.
    """

    latency_ms: float = 0.0
    error_rate: float = 0.0
    error_statuses: tuple[int, ...] = (500, 502, 503)
    error_endpoints: tuple[str, ...] = ()
    rate_429: float = 0.0
    throttle_every: int = 0
    retry_after: float = 1.0
    throttle_endpoints: tuple[str, ...] = ()
    drop_rate: float = 0.0
    drop_endpoints: tuple[str, ...] = ()
    publish_failure_rate: float = 0.0
    publish_delay_seconds: float = 0.0
    seed: int | None = None

    def as_json(self) -> dict[str, Any]:
        return {
            name: list(value) if isinstance(value, tuple) else value
            for name, value in dataclasses.asdict(self).items()
        }


_RATES = ("error_rate", "rate_429", "drop_rate", "publish_failure_rate")
_NON_NEGATIVE = ("latency_ms", "retry_after", "publish_delay_seconds")
_FILTERS = ("error_endpoints", "throttle_endpoints", "drop_endpoints")


def check_knobs(values: Any) -> dict[str, Any]:
    """`values` as knob settings of the right types, or KnobError saying why."""
    if not isinstance(values, dict):
        raise KnobError("knobs must be a JSON object")
    known = {field.name for field in dataclasses.fields(Knobs)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise KnobError(
            f"unknown knob(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}"
        )
    return {name: _check_knob(name, value) for name, value in values.items()}


def _check_knob(name: str, value: Any) -> Any:
    if name in _RATES:
        number = _number(name, value)
        if not 0 <= number <= 1:
            raise KnobError(f"{name} must be between 0 and 1, not {value!r}")
        return number
    if name in _NON_NEGATIVE:
        number = _number(name, value)
        if number < 0:
            raise KnobError(f"{name} must not be negative, not {value!r}")
        return number
    if name == "throttle_every":
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise KnobError(
                f"throttle_every must be a whole number >= 0, not {value!r}"
            )
        return value
    if name == "seed":
        if value is not None and (
            isinstance(value, bool) or not isinstance(value, int)
        ):
            raise KnobError(f"seed must be a whole number or null, not {value!r}")
        return value
    if name == "error_statuses":
        statuses = _list(name, value)
        if not statuses or any(
            isinstance(status, bool) or status not in (500, 502, 503, 504)
            for status in statuses
        ):
            raise KnobError(
                f"error_statuses must be a non-empty list of 500, 502, 503, 504, "
                f"not {value!r}"
            )
        return tuple(statuses)
    endpoints = _list(name, value)
    bad = [endpoint for endpoint in endpoints if endpoint not in ENDPOINTS]
    if bad:
        raise KnobError(
            f"{name}: unknown endpoint(s) {bad!r}; known: {', '.join(ENDPOINTS)}"
        )
    return tuple(endpoints)


def _number(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise KnobError(f"{name} must be a number, not {value!r}")
    return float(value)


def _list(name: str, value: Any) -> list:
    if not isinstance(value, (list, tuple)):
        raise KnobError(f"{name} must be a list, not {value!r}")
    return list(value)


class ConnectionDropped(httpx.RemoteProtocolError):
    """A request committed and its connection closed without an answer.

    Raised only in process (httpx's ASGI transport), where there is no socket to
    close: being an httpx transport error, it reaches the client exactly as a
    broken connection would.
    """


@dataclasses.dataclass
class Traffic:
    """What the API was asked: counts per endpoint and a log of each request."""

    counts: Counter[str] = dataclasses.field(default_factory=Counter)
    log: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    # Requests to throttled endpoints since throttle_every was last set.
    throttle_count: int = 0

    def mark_replayed(self, scope: Scope) -> None:
        """Note in the log that this request was answered from an earlier one."""
        entry = scope.get(ENTRY_KEY)
        if entry is not None:
            entry["replayed"] = True

    def clear(self) -> None:
        self.counts.clear()
        self.log.clear()


def endpoint_name(method: str, path: str) -> str:
    """The name of the endpoint a request is for, as in ENDPOINTS."""
    if path == "/messages":
        return f"{method} /messages"
    if path.startswith("/messages/") and path.endswith("/publish"):
        return f"{method} /messages/{{id}}/publish"
    if path.startswith("/messages/"):
        return f"{method} /messages/{{id}}"
    return f"{method} {path}"


class Faults:
    """ASGI middleware: counts API requests and adds latency, errors, 429s, drops."""

    def __init__(
        self,
        app: Callable,
        knobs: Callable[[], Knobs],
        traffic: Traffic,
        rng: Callable[[], random.Random],
    ) -> None:
        self.app = app
        self.knobs = knobs
        self.traffic = traffic
        self.rng = rng

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"].startswith(UNCOUNTED_PREFIXES):
            await self.app(scope, receive, send)
            return

        knobs = self.knobs()
        rng = self.rng()
        endpoint = endpoint_name(scope["method"], scope["path"])
        entry: dict[str, Any] = {
            "endpoint": endpoint,
            "method": scope["method"],
            "path": scope["path"],
            "time": time.time(),
            "status": None,
            "dropped": False,
            "replayed": False,
        }
        scope[ENTRY_KEY] = entry
        self.traffic.counts[endpoint] += 1
        self.traffic.log.append(entry)

        if knobs.latency_ms:
            await asyncio.sleep(knobs.latency_ms / 1000)

        throttled = _applies(endpoint, knobs.throttle_endpoints)
        if throttled and knobs.throttle_every:
            self.traffic.throttle_count += 1
        if throttled and (
            (
                knobs.throttle_every
                and self.traffic.throttle_count % knobs.throttle_every == 0
            )
            or rng.random() < knobs.rate_429
        ):
            entry["status"] = 429
            await _answer(
                send,
                429,
                "Rate limit exceeded; retry after the Retry-After seconds",
                {"retry-after": _seconds(knobs.retry_after)},
            )
            return
        if (
            _applies(endpoint, knobs.error_endpoints)
            and rng.random() < knobs.error_rate
        ):
            status = rng.choice(knobs.error_statuses)
            entry["status"] = status
            await _answer(send, status, "Emulated failure")
            return

        if _applies(endpoint, knobs.drop_endpoints) and rng.random() < knobs.drop_rate:
            entry["dropped"] = True
            await self._commit_then_drop(scope, receive, send, entry)
            return

        async def record(message: dict) -> None:
            if message["type"] == "http.response.start":
                entry["status"] = message["status"]
            await send(message)

        await self.app(scope, receive, record)

    async def _commit_then_drop(
        self, scope: Scope, receive: Receive, send: Send, entry: dict[str, Any]
    ) -> None:
        # The request runs to its end (it commits); its answer goes nowhere.
        async def swallow(message: dict) -> None:
            if message["type"] == "http.response.start":
                entry["status"] = message["status"]

        await self.app(scope, receive, swallow)
        log.info("dropped the connection of %s after it committed", entry["endpoint"])

        transport = _server_transport(send)
        if transport is None:
            raise ConnectionDropped(
                f"{entry['endpoint']}: the connection was dropped after the request "
                "committed"
            )
        # Closed before any byte of an answer: the client reads end of stream
        # where the status line should be. Waiting for the server to notice the
        # disconnect keeps it from answering 500 once the application returns.
        transport.close()
        while (await receive())["type"] != "http.disconnect":
            pass


def _server_transport(send: Send) -> asyncio.BaseTransport | None:
    # ASGI has no message for "close without answering". Uvicorn's `send` is a
    # method of its request cycle, which holds the connection's transport; that
    # is the socket to close. Other servers (and httpx's ASGI transport) have no
    # such attribute.
    cycle = getattr(send, "__self__", None)
    transport = getattr(cycle, "transport", None)
    return transport if isinstance(transport, asyncio.BaseTransport) else None


def _applies(endpoint: str, endpoints: tuple[str, ...]) -> bool:
    return not endpoints or endpoint in endpoints


def _seconds(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


async def _answer(
    send: Send, status: int, details: str, headers: dict[str, str] | None = None
) -> None:
    body = json.dumps({"error": HTTPStatus(status).phrase, "details": details})
    raw = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
    ]
    raw += [(name.encode(), value.encode()) for name, value in (headers or {}).items()]
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body.encode()})
