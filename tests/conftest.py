"""Shared fixtures: real repositories, the real command, a real emulator server."""

from __future__ import annotations

import dataclasses
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Iterator

import httpx
import pytest

PROJECT = Path(__file__).resolve().parent.parent
EXAMPLE_POSTS = PROJECT / "posts"
DATA = Path(__file__).resolve().parent / "data"


def nexus_sync_command() -> list[str]:
    """The installed console script, as a user runs it."""
    script = shutil.which("nexus-sync", path=str(Path(sys.executable).parent))
    return [script] if script else [sys.executable, "-m", "nexus_sync"]


@dataclasses.dataclass
class Completed:
    code: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        return self.stdout + self.stderr


def run_command(
    args: list[str],
    cwd: Path,
    env: dict[str, str] | None = None,
    timeout: float = 120,
    input_text: str | None = None,
) -> Completed:
    environment = {
        k: v for k, v in os.environ.items() if not k.startswith(("NEXUS_", "GITHUB_"))
    }
    environment["NO_COLOR"] = "1"
    environment.update(env or {})
    done = subprocess.run(
        [*nexus_sync_command(), *args],
        cwd=cwd,
        env=environment,
        capture_output=True,
        text=True,
        timeout=timeout,
        input=input_text,
    )
    return Completed(done.returncode, done.stdout, done.stderr)


def git(cwd: Path, *args: str) -> str:
    return subprocess.run(
        ["git", *args], cwd=cwd, check=True, capture_output=True, text=True
    ).stdout


def make_repo(path: Path, posts: Path | None = EXAMPLE_POSTS) -> Path:
    """A git repository with the given posts committed, as a user would have."""
    path.mkdir(parents=True, exist_ok=True)
    if posts is not None:
        shutil.copytree(posts, path / "posts")
    else:
        (path / "posts").mkdir()
    (path / ".gitignore").write_text(".nexus-sync/\n")
    git(path, "init", "-q", "-b", "main")
    git(path, "config", "user.email", "test@example.com")
    git(path, "config", "user.name", "Test")
    git(path, "add", "-A")
    git(path, "commit", "-q", "-m", "posts")
    return path


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    return make_repo(tmp_path / "repo")


@pytest.fixture
def empty_repo(tmp_path: Path) -> Path:
    return make_repo(tmp_path / "repo", posts=None)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class EmulatorServer:
    """`nexus-sync emulator serve` in a subprocess, with its admin endpoints."""

    def __init__(self, state_dir: Path, extra_args: list[str] | None = None) -> None:
        self.state_dir = state_dir
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process = subprocess.Popen(
            [
                *nexus_sync_command(),
                "emulator",
                "serve",
                "--port",
                str(self.port),
                "--state-dir",
                str(state_dir),
                *(extra_args or []),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        self._wait()

    def _wait(self) -> None:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(self.process.stderr.read().decode())
            try:
                httpx.get(f"{self.url}/_emulator/knobs", timeout=1)
                return
            except httpx.TransportError:
                time.sleep(0.05)
        raise RuntimeError("the emulator did not start within 30 s")

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()

    def token(self, user: str, ttl: float = 3600) -> str:
        response = httpx.post(
            f"{self.url}/_emulator/token", json={"user": user, "ttl": ttl}
        )
        response.raise_for_status()
        return response.json()["token"]

    def env(self, user: str = "alice") -> dict[str, str]:
        return {"NEXUS_API_URL": self.url, "NEXUS_TOKEN": self.token(user)}

    def knobs(self, **values: Any) -> dict[str, Any]:
        response = httpx.put(f"{self.url}/_emulator/knobs", json=values)
        response.raise_for_status()
        return response.json()

    def requests(self) -> dict[str, Any]:
        return httpx.get(f"{self.url}/_emulator/requests").json()

    def clear_requests(self) -> None:
        httpx.delete(f"{self.url}/_emulator/requests").raise_for_status()

    def messages(self, user: str = "alice") -> list[dict[str, Any]]:
        headers = {"Authorization": f"Bearer {self.token(user)}"}
        found: list[dict[str, Any]] = []
        params: dict[str, Any] = {"limit": 100}
        while True:
            page = httpx.get(f"{self.url}/messages", params=params, headers=headers)
            page.raise_for_status()
            body = page.json()
            found.extend(body["messages"])
            if not body["pagination"]["nextToken"]:
                return found
            params["nextToken"] = body["pagination"]["nextToken"]


@pytest.fixture
def emulator(tmp_path: Path) -> Iterator[EmulatorServer]:
    server = EmulatorServer(tmp_path / "emulator-state")
    yield server
    server.stop()
