"""Bearer tokens for the Nexus Share API, as httpx.Auth flows."""

from __future__ import annotations

from typing import Generator

import httpx


class StaticToken(httpx.Auth):
    """A token given as it is (NEXUS_TOKEN); it is never shown in any output."""

    def __init__(self, token: str) -> None:
        self._token = token.strip()

    def __repr__(self) -> str:
        return "StaticToken(<hidden>)"

    def auth_flow(
        self, request: httpx.Request
    ) -> Generator[httpx.Request, httpx.Response, None]:
        request.headers["Authorization"] = f"Bearer {self._token}"
        yield request
