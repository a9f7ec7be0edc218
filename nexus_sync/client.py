"""The six endpoints of the Nexus Share API over httpx, with retries."""

from __future__ import annotations

import asyncio
import datetime as dt
import email.utils
import logging
import re
import time
from typing import Any
from urllib.parse import quote

import httpx
import stamina
import stamina.instrumentation

from .errors import ApiError, AuthError, OutcomeUnknown, ServiceUnreachable

log = logging.getLogger(__name__)

PAGE_SIZE = 100

# Answers that say "try again later": the request was not carried out, or a
# gateway could not tell. 500 is left out: it is the service's own bug, and
# repeating it only repeats the bug.
RETRY_STATUSES = frozenset({429, 502, 503, 504})

# Errors raised before a single byte of the request left this machine: sending
# again can never do anything twice.
NEVER_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)

# Each retry is logged here with the request it repeats; stamina's own
# warning-level log line would say less and say it louder.
stamina.instrumentation.set_on_retry_hooks([])


class NexusClient:
    """Calls the Nexus Share REST API; error answers become ApiError.

    GET, PATCH (with the same body) and DELETE are repeated on 429, 502, 503,
    504 and lost connections, with exponential backoff and jitter, or after
    the time a 429 names in `Retry-After` (at most `retry_after_cap` seconds).
    A create is repeated only when it surely never took effect (a 429, or no
    connection at all); any other failure after sending it is an
    OutcomeUnknown for the caller to resolve by listing the account. A publish
    carries an Idempotency-Key, which the service honours, and is repeated.
    """

    def __init__(
        self,
        base_url: str,
        auth: httpx.Auth,
        transport: httpx.AsyncBaseTransport | None = None,
        timeout: float = 30.0,
        retry_after_cap: float = 60.0,
        attempts: int = 10,
        retry_timeout: float = 300.0,
        wait_initial: float = 0.1,
        wait_max: float = 30.0,
        wait_jitter: float = 0.5,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._http = httpx.AsyncClient(
            base_url=self.base_url,
            auth=auth,
            transport=transport,
            timeout=timeout,
            headers={"User-Agent": "nexus-sync"},
        )
        self.retry_after_cap = retry_after_cap
        # A 429's Retry-After asks this client to wait, not only the request
        # that got it: until then (time.monotonic()) no request starts.
        self._quiet_until = 0.0
        self._retry = {
            "attempts": attempts,
            "timeout": retry_timeout,
            "wait_initial": wait_initial,
            "wait_max": wait_max,
            "wait_jitter": wait_jitter,
        }

    def __repr__(self) -> str:
        return f"NexusClient({self.base_url!r})"

    async def __aenter__(self) -> NexusClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def close(self) -> None:
        await self._http.aclose()

    async def list_messages(
        self, status: str | None = None, platform: str | None = None
    ) -> list[dict[str, Any]]:
        """Every message of the account, following `nextToken` to the end."""
        messages: list[dict[str, Any]] = []
        params: dict[str, Any] = {"limit": PAGE_SIZE}
        if status:
            params["status"] = status
        if platform:
            params["platform"] = platform
        seen: set[str] = set()
        while True:
            page = await self._request("GET", "/messages", params=dict(params))
            if not isinstance(page, dict) or not isinstance(page.get("messages"), list):
                raise ApiError(200, "Unexpected answer", "a page without messages")
            messages.extend(page["messages"])
            token = (page.get("pagination") or {}).get("nextToken")
            if not token:
                break
            if token in seen:
                # A cursor that comes back would list the same pages forever.
                raise ApiError(
                    200, "Unexpected answer", "the listing returned a nextToken twice"
                )
            seen.add(token)
            params["nextToken"] = token
        log.info("listed %d message(s)", len(messages))
        return messages

    async def get_message(self, message_id: str) -> dict[str, Any]:
        return await self._request("GET", _path(message_id), message_id=message_id)

    async def create_message(
        self, body: dict[str, Any], idempotency_key: str
    ) -> dict[str, Any]:
        """Create a message; OutcomeUnknown when it may or may not exist now."""
        return await self._request(
            "POST",
            "/messages",
            repeatable=False,
            json=body,
            headers={"Idempotency-Key": idempotency_key},
        )

    async def update_message(
        self, message_id: str, body: dict[str, Any]
    ) -> dict[str, Any]:
        return await self._request(
            "PATCH", _path(message_id), json=body, message_id=message_id
        )

    async def delete_message(self, message_id: str) -> None:
        try:
            await self._request("DELETE", _path(message_id), message_id=message_id)
        except _GoneOnRetry:
            # An earlier attempt deleted it and its answer was lost.
            log.info("%s was already deleted by an earlier attempt", message_id)

    async def publish_message(
        self, message_id: str, idempotency_key: str
    ) -> dict[str, Any]:
        try:
            return await self._request(
                "POST",
                _path(message_id) + "/publish",
                headers={"Idempotency-Key": idempotency_key},
                message_id=message_id,
            )
        except _ConflictOnRetry as conflict:
            # A 409 after a lost answer: the first attempt may be what made
            # the message DIRECT or PUBLISHED. Only the message itself can say.
            data = await self.get_message(message_id)
            if data.get("status") in ("DIRECT", "PUBLISHED"):
                log.info("%s was already published by an earlier attempt", message_id)
                return data
            raise conflict.error from None

    async def _request(
        self,
        method: str,
        path: str,
        message_id: str | None = None,
        repeatable: bool = True,
        **kwargs: Any,
    ) -> Any:
        response = await self._send(method, path, message_id, repeatable, kwargs)
        if response.status_code == 204 or not response.content:
            return None
        try:
            return response.json()
        except ValueError:
            raise ApiError(
                response.status_code,
                "Not JSON",
                f"the answer to {method} {path} is not JSON; is the API URL right?",
                message_id,
            ) from None

    async def _send(
        self,
        method: str,
        path: str,
        message_id: str | None,
        repeatable: bool,
        kwargs: dict[str, Any],
    ) -> httpx.Response:
        what = f"{method} {path}"

        def backoff(error: Exception) -> bool | float:
            if isinstance(error, _Retryable):
                if error.error.status == 429:
                    wait = _retry_after(error.response, self.retry_after_cap)
                    log.info("%s: 429, retrying in %s", what, _seconds(wait))
                    if wait is None:
                        return True
                    self._quiet_until = max(self._quiet_until, time.monotonic() + wait)
                    return wait
                if repeatable:
                    log.info("%s: %d, retrying", what, error.error.status)
                return repeatable
            if isinstance(error, httpx.TransportError):
                again = repeatable or isinstance(error, NEVER_SENT)
                if again:
                    # Said at once: a service that is not there looks like a hang.
                    # Once is enough; the final error says how many attempts.
                    log.log(
                        logging.WARNING if attempt_number == 1 else logging.INFO,
                        "%s: %s, retrying",
                        what,
                        _describe(error),
                    )
                return again
            return False

        attempt_number = 0
        try:
            async for attempt in stamina.retry_context(on=backoff, **self._retry):
                with attempt:
                    attempt_number = attempt.num
                    await self._quiet_period()
                    response = await self._http.request(method, path, **kwargs)
                    log.debug("%s -> %d", what, response.status_code)
                    if response.status_code in RETRY_STATUSES:
                        raise _Retryable(response, _api_error(response, message_id))
        except _Retryable as failure:
            if not repeatable and failure.error.status != 429:
                raise OutcomeUnknown(
                    f"{what} answered {failure.error.status} "
                    f"({failure.error.error}); the service may have carried it out"
                ) from None
            raise failure.error from None
        except httpx.TransportError as error:
            if not repeatable and not isinstance(error, NEVER_SENT):
                raise OutcomeUnknown(
                    f"{what}: {_describe(error)} before an answer came"
                ) from None
            raise ServiceUnreachable(
                f"no answer from Nexus Share at {self.base_url} for {what} "
                f"after {attempt_number} attempt(s): {_describe(error)}"
            ) from None

        if not response.is_error:
            return response
        error = _api_error(response, message_id)
        retried = attempt_number > 1
        if retried and response.status_code == 404 and method == "DELETE":
            raise _GoneOnRetry(error)
        if retried and response.status_code == 409 and path.endswith("/publish"):
            raise _ConflictOnRetry(error)
        if response.status_code == 401:
            reason = error.details or error.error
            raise AuthError(
                f"Nexus Share refused the credentials ({reason}); "
                "set a fresh NEXUS_TOKEN, or NEXUS_USER and NEXUS_PASSWORD"
            )
        raise error

    async def _quiet_period(self) -> None:
        # Another request's 429 may move the end further while this one waits.
        while (left := self._quiet_until - time.monotonic()) > 0:
            await asyncio.sleep(left)


class _Retryable(Exception):
    """An answer that asks to try again; stamina decides whether to."""

    def __init__(self, response: httpx.Response, error: ApiError) -> None:
        super().__init__(str(error))
        self.response = response
        self.error = error


class _GoneOnRetry(Exception):
    def __init__(self, error: ApiError) -> None:
        super().__init__(str(error))
        self.error = error


class _ConflictOnRetry(_GoneOnRetry):
    pass


def _retry_after(response: httpx.Response, cap: float) -> float | None:
    """The wait a 429 asks for, in seconds (a number or an HTTP date), capped."""
    raw = response.headers.get("retry-after", "").strip()
    if not raw:
        return None
    # Seconds are digits (RFC 9110; a negative wait counts as none). float()
    # alone would take "nan" and "inf", and a wait of NaN seconds never ends.
    if _SECONDS.fullmatch(raw):
        wait = float(raw)
    else:
        try:
            moment = email.utils.parsedate_to_datetime(raw)
        except (TypeError, ValueError):
            return None
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=dt.UTC)
        wait = moment.timestamp() - time.time()
    return min(max(wait, 0.0), cap)


_SECONDS = re.compile(r"-?[0-9]+(?:\.[0-9]+)?")


def _seconds(wait: float | None) -> str:
    return "a moment (no Retry-After)" if wait is None else f"{wait:g} s"


def _describe(error: httpx.TransportError) -> str:
    return f"{type(error).__name__}: {error}" if str(error) else type(error).__name__


def _path(message_id: str) -> str:
    # Ids look like POST|user|1736853600000; every reserved character is escaped.
    return f"/messages/{quote(message_id, safe='')}"


def _api_error(response: httpx.Response, message_id: str | None) -> ApiError:
    try:
        body = response.json()
        error, details = str(body.get("error", "")), str(body.get("details", ""))
    except (ValueError, AttributeError):
        error, details = response.reason_phrase, response.text[:200]
    return ApiError(response.status_code, error, details, message_id)
