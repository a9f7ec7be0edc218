"""The emulator's HTTP face: the documented endpoints, admin knobs and faults."""

from __future__ import annotations

import datetime as dt
import json
import logging
from collections import Counter
from collections.abc import Awaitable, Callable
from http import HTTPStatus
from pathlib import Path
from typing import Any

from rfc3339_validator import validate_rfc3339
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from .faults import ConnectionDropped, Faults, KnobError, Knobs, Traffic, check_knobs
from .store import (
    INVALID_JSON,
    PLATFORMS,
    STATUSES,
    ServiceError,
    Store,
    fingerprint,
    validation,
)
from .tokens import Signer, TokenForbidden, TokenRejected, Verifier

log = logging.getLogger(__name__)

EVERY_METHOD = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE"]
LIST_PARAMETERS = ("limit", "nextToken", "status", "platform")


class Emulator:
    """One emulated service: its store, its keys, its clock, its knobs.

    `trusted_jwks` (a JWKS mapping, a file, or an http(s) URL) replaces the
    emulator's own keys as the ones whose tokens it accepts.
    """

    def __init__(
        self,
        state_dir: Path,
        knobs: Knobs | None = None,
        trusted_jwks: dict[str, Any] | str | Path | None = None,
        database: str | None = None,
    ) -> None:
        self.state_dir = state_dir
        state_dir.mkdir(parents=True, exist_ok=True)
        self.knobs = knobs or Knobs()
        self.store = Store(database or state_dir / "emulator.sqlite3", self.knobs.seed)
        self.signer = Signer(state_dir)
        self.verifier = Verifier(
            trusted_jwks if trusted_jwks is not None else self.signer.jwks()
        )
        self.clock_offset = 0.0
        # A frozen clock (for exact timestamps in tests) moves only when told.
        self.frozen_at: dt.datetime | None = None
        self.traffic = Traffic()
        self.apply_knobs(self.knobs.as_json())
        # What a reset returns to: the knobs it was started with (the flags
        # of `emulator serve`), not the defaults.
        self.start_knobs = self.knobs.as_json()

    @property
    def counts(self) -> Counter[str]:
        return self.traffic.counts

    @property
    def log(self) -> list[dict[str, Any]]:
        return self.traffic.log

    def now(self) -> dt.datetime:
        """The emulator's clock: the machine's, set or advanced, maybe frozen."""
        if self.frozen_at is not None:
            return self.frozen_at
        return dt.datetime.now(dt.UTC) + dt.timedelta(seconds=self.clock_offset)

    def mint(self, user: str, ttl: float = 3600) -> str:
        """A token of the emulator's own key for `user`, on the emulator clock."""
        return self.signer.mint(user, ttl, now=self.now().timestamp())

    def apply_knobs(self, values: Any) -> None:
        """Set the given knobs; ServiceError 422 (and no change) if any is wrong."""
        try:
            checked = check_knobs(values)
        except KnobError as error:
            raise validation(str(error)) from None
        for name, value in checked.items():
            setattr(self.knobs, name, value)
        if "throttle_every" in checked:
            self.traffic.throttle_count = 0
        if "seed" in checked:
            self.store.random.seed(checked["seed"])
        self.store.publish_failure_rate = self.knobs.publish_failure_rate
        self.store.publish_delay_seconds = self.knobs.publish_delay_seconds

    def reset(self) -> None:
        """Knobs, clock and traffic as at start; the messages stay."""
        self.apply_knobs(self.start_knobs)
        self.clock_offset = 0.0
        self.frozen_at = None
        self.traffic.clear()
        self.store.publishes = 0

    def set_clock(self, moment: dt.datetime, frozen: bool = False) -> None:
        self.clock_offset = (moment - dt.datetime.now(dt.UTC)).total_seconds()
        self.frozen_at = moment.astimezone(dt.UTC) if frozen else None

    def advance_clock(self, seconds: float) -> None:
        self.clock_offset += seconds
        if self.frozen_at is not None:
            self.frozen_at += dt.timedelta(seconds=seconds)

    def user_for(self, request: Request) -> str:
        header = request.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise ServiceError(
                401, "Unauthorized", "Missing or malformed Authorization header"
            )
        try:
            return self.verifier.user(token.strip(), self.now().timestamp())
        except TokenRejected as error:
            raise ServiceError(401, "Unauthorized", str(error)) from None
        except TokenForbidden as error:
            raise ServiceError(403, "Forbidden", str(error)) from None


def create_app(emulator: Emulator) -> Callable:
    """The ASGI application of `emulator`, faults included."""

    async def list_messages(request: Request) -> Response:
        user = emulator.user_for(request)
        _check_query(request, LIST_PARAMETERS)
        query = request.query_params
        limit = _limit(query.get("limit", "20"))
        statuses = _statuses(query.get("status"))
        platform = _platform(query.get("platform"))
        page = emulator.store.list(
            user, emulator.now(), limit, query.get("nextToken"), statuses, platform
        )
        return JSONResponse(page)

    async def create_message(request: Request) -> Response:
        user = emulator.user_for(request)
        _check_query(request, ())
        body = await _json(request)
        if body is INVALID_JSON:
            raise validation("Request body is not valid JSON")
        return _idempotent(
            request,
            user,
            ("POST /messages", body),
            lambda: (201, emulator.store.create(user, body, emulator.now())),
        )

    async def one_message(request: Request) -> Response:
        user = emulator.user_for(request)
        _check_query(request, ())
        message_id = request.path_params["message_id"]
        now = emulator.now()
        if request.method == "GET":
            return JSONResponse(emulator.store.get(user, message_id, now))
        if request.method == "PATCH":
            body = await _json(request)
            return JSONResponse(emulator.store.update(user, message_id, body, now))
        emulator.store.delete(user, message_id, now)
        return Response(status_code=204)

    async def publish_message(request: Request) -> Response:
        user = emulator.user_for(request)
        _check_query(request, ())
        message_id = request.path_params["message_id"]
        return _idempotent(
            request,
            user,
            ("POST /messages/{id}/publish", message_id),
            lambda: (200, emulator.store.publish(user, message_id, emulator.now())),
        )

    def _idempotent(
        request: Request,
        user: str,
        what: tuple[str, Any],
        run: Callable[[], tuple[int, dict[str, Any]]],
    ) -> Response:
        key = request.headers.get("idempotency-key")
        if key is None:
            status, body = run()
            return JSONResponse(body, status_code=status)
        if not key.strip():
            raise validation("Idempotency-Key must not be empty")
        status, body, replayed = emulator.store.idempotent(
            user, key, fingerprint(*what), run
        )
        if replayed:
            emulator.traffic.mark_replayed(request.scope)
        headers = {"idempotent-replayed": "true"} if replayed else None
        return JSONResponse(body, status_code=status, headers=headers)

    async def jwks(request: Request) -> Response:
        return JSONResponse(emulator.signer.jwks())

    async def admin_knobs(request: Request) -> Response:
        if request.method == "PUT":
            emulator.apply_knobs(await _admin_json(request))
        return JSONResponse(emulator.knobs.as_json())

    async def admin_clock(request: Request) -> Response:
        if request.method == "POST":
            _move_clock(emulator, await _admin_json(request))
        return JSONResponse(
            {
                "now": emulator.now().isoformat(),
                "frozen": emulator.frozen_at is not None,
            }
        )

    async def admin_requests(request: Request) -> Response:
        if request.method == "DELETE":
            emulator.traffic.clear()
            emulator.store.publishes = 0
        return JSONResponse(
            {
                "counts": dict(emulator.traffic.counts),
                "log": emulator.traffic.log,
                "publishes": emulator.store.publishes,
            }
        )

    async def admin_token(request: Request) -> Response:
        body = await _admin_json(request)
        user, ttl = body.get("user"), body.get("ttl", 3600)
        if not isinstance(user, str) or not user:
            raise validation("user must be a non-empty string")
        if isinstance(ttl, bool) or not isinstance(ttl, (int, float)):
            raise validation("ttl must be a number of seconds")
        return JSONResponse({"token": emulator.mint(user, float(ttl))})

    async def admin_reset(request: Request) -> Response:
        emulator.reset()
        return JSONResponse(emulator.knobs.as_json())

    routes = [
        _route("/messages", GET=list_messages, POST=create_message),
        _route(
            "/messages/{message_id}",
            GET=one_message,
            PATCH=one_message,
            DELETE=one_message,
        ),
        _route("/messages/{message_id}/publish", POST=publish_message),
        _route("/.well-known/jwks.json", GET=jwks),
        _route("/_emulator/knobs", GET=admin_knobs, PUT=admin_knobs),
        _route("/_emulator/clock", GET=admin_clock, POST=admin_clock),
        _route("/_emulator/requests", GET=admin_requests, DELETE=admin_requests),
        _route("/_emulator/token", POST=admin_token),
        _route("/_emulator/reset", POST=admin_reset),
    ]
    app = Starlette(
        routes=routes,
        exception_handlers={ServiceError: _service_error, HTTPException: _http_error},
    )
    # "/messages/" is no route of the service: 404, not a redirect.
    app.router.redirect_slashes = False
    return Faults(
        app, lambda: emulator.knobs, emulator.traffic, lambda: emulator.store.random
    )


def _route(path: str, **handlers: Callable[[Request], Awaitable[Response]]) -> Route:
    # Starlette answers a wrong method itself, with HEAD in Allow for every GET;
    # the service's Allow names exactly the methods of the path.
    allowed = ", ".join(handlers)

    async def dispatch(request: Request) -> Response:
        handler = handlers.get(request.method)
        if handler is None:
            raise ServiceError(
                405,
                "Method Not Allowed",
                f"{request.method} is not allowed on {request.url.path}",
                headers={"allow": allowed},
            )
        return await handler(request)

    return Route(path, dispatch, methods=EVERY_METHOD)


def _move_clock(emulator: Emulator, body: dict[str, Any]) -> None:
    unknown = sorted(set(body) - {"set", "advance", "frozen"})
    if unknown:
        raise validation(f"Unknown field(s): {', '.join(unknown)}")
    frozen = body.get("frozen", False)
    if not isinstance(frozen, bool):
        raise validation("frozen must be true or false")
    if "set" in body:
        moment = body["set"]
        if not isinstance(moment, str) or not validate_rfc3339(moment):
            raise validation("set must be an ISO 8601 timestamp with a UTC offset")
        emulator.set_clock(dt.datetime.fromisoformat(moment.upper()), frozen)
    elif "frozen" in body:
        emulator.set_clock(emulator.now(), frozen)
    if "advance" in body:
        seconds = body["advance"]
        if isinstance(seconds, bool) or not isinstance(seconds, (int, float)):
            raise validation("advance must be a number of seconds")
        emulator.advance_clock(seconds)


async def _service_error(request: Request, error: Exception) -> Response:
    assert isinstance(error, ServiceError)
    return JSONResponse(
        {"error": error.error, "details": error.details},
        status_code=error.status,
        headers=error.headers,
    )


async def _http_error(request: Request, error: Exception) -> Response:
    assert isinstance(error, HTTPException)
    if error.status_code == 404:
        details = f"No route for {request.url.path}"
    elif error.status_code == 405:
        details = f"{request.method} is not allowed on {request.url.path}"
    else:
        details = str(error.detail)
    return JSONResponse(
        {"error": _phrase(error.status_code), "details": details},
        status_code=error.status_code,
        headers=error.headers,
    )


def _phrase(status: int) -> str:
    return HTTPStatus(status).phrase


async def _json(request: Request) -> Any:
    try:
        return json.loads(await request.body())
    except (json.JSONDecodeError, UnicodeDecodeError):
        return INVALID_JSON


async def _admin_json(request: Request) -> dict[str, Any]:
    body = await _json(request)
    if not isinstance(body, dict):
        raise validation("Request body must be a JSON object")
    return body


def _check_query(request: Request, known: tuple[str, ...]) -> None:
    unknown = sorted(set(request.query_params) - set(known))
    if unknown:
        raise validation(f"Unknown query parameter(s): {', '.join(unknown)}")


def _limit(raw: str) -> int:
    if not raw.isascii() or not raw.isdigit() or not 1 <= int(raw) <= 100:
        raise validation("limit must be an integer between 1 and 100")
    return int(raw)


def _statuses(raw: str | None) -> list[str] | None:
    if raw is None:
        return None
    values = raw.split(",")
    bad = [value for value in values if value not in STATUSES]
    if bad:
        raise validation(
            f"Invalid status {', '.join(map(repr, bad))}; valid: {', '.join(STATUSES)}"
        )
    return values


def _platform(raw: str | None) -> str | None:
    if raw is None:
        return None
    if raw.lower() not in PLATFORMS:
        raise validation(f"Invalid platform {raw!r}; valid: X, LINKEDIN, BLUESKY")
    return raw.lower()


__all__ = ["ConnectionDropped", "Emulator", "Knobs", "create_app"]
