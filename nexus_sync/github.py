"""The few GitHub REST calls the Action makes: the pull-request plan comment."""

from __future__ import annotations

import dataclasses
import logging
from typing import Any, Self

import httpx

from .errors import NexusSyncError

log = logging.getLogger(__name__)

API_VERSION = "2022-11-28"
PAGE_SIZE = 100


class GitHubError(NexusSyncError):
    """GitHub answered a call with an error; the message says what to change."""

    def __init__(self, status: int, what: str, message: str) -> None:
        hint = ""
        if status in (403, 404):
            # Both are what GitHub answers a token without the permission.
            hint = (
                "; the workflow needs `permissions: pull-requests: write` "
                "(pull requests from forks get a read-only token)"
            )
        answer = f"answered {status} to" if status else "did not answer while"
        super().__init__(f"GitHub {answer} {what}: {message}{hint}")
        self.status = status


@dataclasses.dataclass(frozen=True)
class Comment:
    """One comment on an issue or pull request."""

    id: int
    body: str
    url: str


class GitHub:
    """A client for the issue-comment endpoints, authenticated by a token.

    The token is kept out of every repr and message; GitHub's own error text
    never contains it.
    """

    def __init__(
        self,
        api_url: str,
        token: str,
        transport: httpx.BaseTransport | None = None,
        timeout: float = 30.0,
    ) -> None:
        self._http = httpx.Client(
            base_url=api_url.rstrip("/"),
            headers={
                "Authorization": f"Bearer {token}",
                "Accept": "application/vnd.github+json",
                "X-GitHub-Api-Version": API_VERSION,
                "User-Agent": "nexus-sync",
            },
            # Connection errors are retried by the transport; a comment call
            # is cheap to repeat and every one here is idempotent but create.
            transport=transport or httpx.HTTPTransport(retries=2),
            timeout=timeout,
        )

    def __repr__(self) -> str:
        return f"GitHub({str(self._http.base_url)!r})"

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._http.close()

    def comments(self, repository: str, number: int) -> list[Comment]:
        """Every comment of issue or pull request `number`, oldest first."""
        found: list[Comment] = []
        url: str | None = f"/repos/{repository}/issues/{number}/comments"
        params: dict[str, Any] | None = {"per_page": PAGE_SIZE}
        while url:
            response = self._call("GET", url, f"listing comments of #{number}", params)
            found.extend(_comment(item) for item in response.json())
            url = response.links.get("next", {}).get("url")
            # The next link carries its own query.
            params = None
        return found

    def create_comment(self, repository: str, number: int, body: str) -> Comment:
        url = f"/repos/{repository}/issues/{number}/comments"
        return self._write("POST", url, f"commenting on #{number}", body)

    def update_comment(self, repository: str, comment_id: int, body: str) -> Comment:
        url = f"/repos/{repository}/issues/comments/{comment_id}"
        return self._write("PATCH", url, f"updating comment {comment_id}", body)

    def upsert_comment(
        self, repository: str, number: int, marker: str, body: str
    ) -> tuple[Comment, bool]:
        """Edit the comment that starts with `marker`, or create it.

        Returns the comment and whether it was created. The body must start
        with the marker, so that the next run finds it again.
        """
        if not body.startswith(marker):
            raise ValueError("the comment body must start with its marker")
        for comment in self.comments(repository, number):
            # A reply quoting the comment starts with "> ", never the marker.
            if comment.body.startswith(marker):
                log.info("updating comment %s on #%s", comment.id, number)
                return self.update_comment(repository, comment.id, body), False
        log.info("creating a comment on #%s", number)
        return self.create_comment(repository, number, body), True

    def _write(self, method: str, url: str, what: str, body: str) -> Comment:
        return _comment(self._call(method, url, what, json={"body": body}).json())

    def _call(
        self,
        method: str,
        url: str,
        what: str,
        params: dict[str, Any] | None = None,
        json: Any = None,
    ) -> httpx.Response:
        try:
            response = self._http.request(method, url, params=params, json=json)
        except httpx.HTTPError as error:
            raise GitHubError(0, what, type(error).__name__) from None
        if response.is_error:
            raise GitHubError(response.status_code, what, _message(response))
        return response


def _comment(item: dict[str, Any]) -> Comment:
    return Comment(id=item["id"], body=item.get("body") or "", url=item["html_url"])


def _message(response: httpx.Response) -> str:
    try:
        return str(response.json()["message"])
    except (ValueError, KeyError, TypeError):
        return response.reason_phrase or "no message"
