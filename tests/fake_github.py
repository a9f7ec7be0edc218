"""A local fake of the GitHub REST endpoints nexus-sync calls, over real HTTP.

It keeps issue comments in memory, pages them like GitHub (`per_page`, `page`,
a `Link` header), checks the bearer token and records every request, so tests
can assert what a pull request ends up showing.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from typing import Any

import uvicorn
from conftest import free_port
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

BOT = {"login": "github-actions[bot]", "type": "Bot"}


@dataclasses.dataclass
class Recorded:
    method: str
    path: str
    body: Any


class LocalServer:
    """An ASGI app served by uvicorn in a thread on a free port of 127.0.0.1."""

    def __init__(self, app: Any) -> None:
        port = free_port()
        self.url = f"http://127.0.0.1:{port}"
        config = uvicorn.Config(
            app, host="127.0.0.1", port=port, log_level="error", interface="asgi3"
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 30
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError("the local server did not start")
            time.sleep(0.02)

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=10)


class FakeGitHub:
    """GitHub's issue-comment API for one token, on 127.0.0.1."""

    def __init__(self, token: str) -> None:
        self.token = token
        self.comments: dict[tuple[str, int], list[dict[str, Any]]] = {}
        self.requests: list[Recorded] = []
        self.deny_writes = False
        self._next_id = 1000
        app = Starlette(
            routes=[
                Route(
                    "/repos/{owner}/{name}/issues/{number:int}/comments",
                    self._issue_comments,
                    methods=["GET", "POST"],
                ),
                Route(
                    "/repos/{owner}/{name}/issues/comments/{comment_id:int}",
                    self._comment,
                    methods=["PATCH"],
                ),
            ]
        )
        self._server = LocalServer(app)
        self.url = self._server.url

    def stop(self) -> None:
        self._server.stop()

    def add_comment(self, repository: str, number: int, body: str, user: dict) -> int:
        """A comment someone else wrote, as if made through the web."""
        return self._store(repository, number, body, user)["id"]

    def bodies(self, repository: str, number: int) -> list[str]:
        return [c["body"] for c in self.comments.get((repository, number), [])]

    def _store(
        self, repository: str, number: int, body: str, user: dict
    ) -> dict[str, Any]:
        self._next_id += 1
        comment = {
            "id": self._next_id,
            "body": body,
            "user": user,
            "html_url": f"https://github.com/{repository}/pull/{number}"
            f"#issuecomment-{self._next_id}",
        }
        self.comments.setdefault((repository, number), []).append(comment)
        return comment

    async def _checked(self, request: Request) -> Response | None:
        body = await request.body()
        self.requests.append(
            Recorded(request.method, request.url.path, body.decode() or None)
        )
        if request.headers.get("authorization") != f"Bearer {self.token}":
            return JSONResponse({"message": "Bad credentials"}, status_code=401)
        if self.deny_writes and request.method != "GET":
            return JSONResponse(
                {"message": "Resource not accessible by integration"}, status_code=403
            )
        return None

    async def _issue_comments(self, request: Request) -> Response:
        refused = await self._checked(request)
        if refused:
            return refused
        repository = f"{request.path_params['owner']}/{request.path_params['name']}"
        number = request.path_params["number"]
        if request.method == "POST":
            body = (await request.json())["body"]
            return JSONResponse(self._store(repository, number, body, BOT), 201)

        every = self.comments.get((repository, number), [])
        per_page = min(int(request.query_params.get("per_page", 30)), 100)
        page = int(request.query_params.get("page", 1))
        chunk = every[(page - 1) * per_page : page * per_page]
        headers = {}
        if page * per_page < len(every):
            following = request.url.include_query_params(page=page + 1)
            headers["link"] = f'<{following}>; rel="next"'
        return JSONResponse(chunk, headers=headers)

    async def _comment(self, request: Request) -> Response:
        refused = await self._checked(request)
        if refused:
            return refused
        wanted = request.path_params["comment_id"]
        for comments in self.comments.values():
            for comment in comments:
                if comment["id"] == wanted:
                    comment["body"] = (await request.json())["body"]
                    return JSONResponse(comment)
        return JSONResponse({"message": "Not Found"}, status_code=404)
