"""The six endpoints of the Nexus Share API over httpx."""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import quote

import httpx

from .errors import ApiError

log = logging.getLogger(__name__)

PAGE_SIZE = 100


class NexusClient:
    """Calls the Nexus Share REST API; error answers become ApiError."""

    def __init__(
        self,
        base_url: str,
        auth: httpx.Auth,
        transport: httpx.AsyncBaseTransport | None = None,
        timeout: float = 30.0,
    ) -> None:
        self._http = httpx.AsyncClient(
            base_url=base_url.rstrip("/"),
            auth=auth,
            transport=transport,
            timeout=timeout,
            headers={"User-Agent": "nexus-sync"},
        )

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
        while True:
            page = await self._request("GET", "/messages", params=params)
            messages.extend(page["messages"])
            token = page.get("pagination", {}).get("nextToken")
            if not token:
                break
            params["nextToken"] = token
        log.info("listed %d message(s)", len(messages))
        return messages

    async def get_message(self, message_id: str) -> dict[str, Any]:
        return await self._request("GET", _path(message_id), message_id=message_id)

    async def create_message(
        self, body: dict[str, Any], idempotency_key: str
    ) -> dict[str, Any]:
        return await self._request(
            "POST",
            "/messages",
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
        await self._request("DELETE", _path(message_id), message_id=message_id)

    async def publish_message(
        self, message_id: str, idempotency_key: str
    ) -> dict[str, Any]:
        return await self._request(
            "POST",
            _path(message_id) + "/publish",
            headers={"Idempotency-Key": idempotency_key},
            message_id=message_id,
        )

    async def _request(
        self, method: str, path: str, message_id: str | None = None, **kwargs: Any
    ) -> Any:
        response = await self._http.request(method, path, **kwargs)
        log.debug("%s %s -> %d", method, path, response.status_code)
        if response.is_error:
            raise _api_error(response, message_id)
        if response.status_code == 204 or not response.content:
            return None
        return response.json()


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
