"""Shared fixtures: real repositories, the real command, a real emulator server."""

from __future__ import annotations

import atexit
import dataclasses
import functools
import io
import os
import shutil
import socket
import sqlite3
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

PROJECT = Path(__file__).resolve().parent.parent


def committed_example_posts() -> Path:
    """posts/ as committed, in a folder removed when the tests end.

    The README's quick start, `nexus-sync apply --local`, writes ids into the
    working copy's posts; the tests start from posts that were never applied.
    Outside a git checkout the working copy is all there is.
    """
    try:
        archive = subprocess.run(
            ["git", "archive", "--format=tar", "HEAD", "posts"],
            cwd=PROJECT,
            capture_output=True,
            check=True,
        ).stdout
    except (OSError, subprocess.CalledProcessError):
        return PROJECT / "posts"
    folder = Path(tempfile.mkdtemp(prefix="nexus-sync-example-posts-"))
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    # Each member is checked where tarfile can (3.11.4 and later), though the
    # archive is this repository's own.
    checked = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(folder, **checked)
    return folder / "posts"


EXAMPLE_POSTS = committed_example_posts()
DATA = Path(__file__).resolve().parent / "data"
# Long enough for any emulator clock a test sets (a century).
LONG_TTL = 100 * 365 * 24 * 3600


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


@pytest.fixture(autouse=True, scope="session")
def post_cache_folder(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The user cache folder of every run in the tests, away from the user's own."""
    folder = tmp_path_factory.mktemp("user-cache")
    before = os.environ.get("XDG_CACHE_HOME")
    os.environ["XDG_CACHE_HOME"] = str(folder)
    yield folder
    if before is None:
        del os.environ["XDG_CACHE_HOME"]
    else:
        os.environ["XDG_CACHE_HOME"] = before


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
        if "http" in self.__dict__:
            self.http.close()
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()

    def token(self, user: str, ttl: float = 3600) -> str:
        response = self.http.post("/_emulator/token", json={"user": user, "ttl": ttl})
        response.raise_for_status()
        return response.json()["token"]

    @functools.cached_property
    def http(self) -> httpx.Client:
        """One keep-alive client for the whole server (tests send many requests)."""
        return httpx.Client(base_url=self.url, timeout=30)

    @functools.cache  # noqa: B019 - one server, a handful of users
    def bearer(self, user: str) -> dict[str, str]:
        """An Authorization header for `user` that outlives any clock a test sets.

        Signed here with the server's own key (from its state folder), so that
        tests need not ask the server for a token before each request.
        """
        from nexus_sync.emulator.tokens import Signer

        signer = Signer(self.state_dir)
        token = signer.mint(user, ttl=LONG_TTL, now=time.time())
        return {"Authorization": f"Bearer {token}"}

    def client(self, user: str = "alice") -> httpx.Client:
        """An HTTP client of the API as `user`, on a fresh connection pool."""
        return httpx.Client(
            base_url=self.url,
            headers={"Authorization": f"Bearer {self.token(user)}"},
            timeout=30,
        )

    def env(self, user: str = "alice") -> dict[str, str]:
        return {"NEXUS_API_URL": self.url, "NEXUS_TOKEN": self.token(user)}

    def knobs(self, **values: Any) -> dict[str, Any]:
        response = self.http.put("/_emulator/knobs", json=values)
        response.raise_for_status()
        return response.json()

    def reset(self) -> None:
        """Knobs, clock and request counts as at start (messages stay)."""
        self.http.post("/_emulator/reset").raise_for_status()

    def new_user(self, name: str = "alice") -> str:
        """A user name no earlier test on this server has used."""
        self._users = getattr(self, "_users", 0) + 1
        return f"{name}-{self._users}"

    def clock(self, **change: Any) -> str:
        """Set (`set=iso`) or advance (`advance=seconds`) the emulator clock."""
        response = self.http.post("/_emulator/clock", json=change)
        response.raise_for_status()
        return response.json()["now"]

    def forget_message(self, message_id: str) -> None:
        """Remove a message behind the API's back, as the service's own tools might."""
        with sqlite3.connect(self.state_dir / "emulator.sqlite3") as db:
            db.execute("DELETE FROM messages WHERE id = ?", (message_id,))

    def requests(self) -> dict[str, Any]:
        return self.http.get("/_emulator/requests").json()

    def clear_requests(self) -> None:
        self.http.delete("/_emulator/requests").raise_for_status()

    def messages(self, user: str = "alice") -> list[dict[str, Any]]:
        headers = self.bearer(user)
        found: list[dict[str, Any]] = []
        params: dict[str, Any] = {"limit": 100}
        while True:
            page = self.http.get("/messages", params=params, headers=headers)
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


@pytest.fixture(scope="session")
def shared_emulator(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[EmulatorServer]:
    """One emulator server for the whole run (starting one takes a second)."""
    server = EmulatorServer(tmp_path_factory.mktemp("emulator-state"))
    yield server
    server.stop()


@pytest.fixture
def api(shared_emulator: EmulatorServer) -> EmulatorServer:
    """The module's emulator, reset; use `new_user()` for messages of your own."""
    shared_emulator.reset()
    return shared_emulator


@pytest.fixture
def fake_github() -> Iterator[Any]:
    """A local fake of GitHub's comment API (tests/fake_github.py)."""
    from fake_github import FakeGitHub

    server = FakeGitHub(token="ghs_fake0github0token0for0tests")
    yield server
    server.stop()


@dataclasses.dataclass
class CognitoPool:
    """A user pool with one user in moto's Cognito, served over HTTP."""

    url: str
    pool_id: str
    client_id: str
    user: str
    password: str

    @property
    def jwks_url(self) -> str:
        return f"{self.url}/{self.pool_id}/.well-known/jwks.json"

    def env(self, password: str | None = None) -> dict[str, str]:
        """What the command needs to log in: boto3 finds moto through the
        endpoint variable it documents; no AWS credentials are involved."""
        return {
            "AWS_ENDPOINT_URL_COGNITO_IDENTITY_PROVIDER": self.url,
            "NEXUS_USER": self.user,
            "NEXUS_PASSWORD": password or self.password,
            "NEXUS_CLIENT_ID": self.client_id,
        }

    def id_token(self) -> str:
        answer = _cognito_admin(self.url).initiate_auth(
            AuthFlow="USER_PASSWORD_AUTH",
            ClientId=self.client_id,
            AuthParameters={"USERNAME": self.user, "PASSWORD": self.password},
        )
        return answer["AuthenticationResult"]["IdToken"]


def _cognito_admin(url: str) -> Any:
    import boto3

    return boto3.client(
        "cognito-idp",
        region_name="eu-central-1",
        endpoint_url=url,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )


@pytest.fixture(scope="session")
def moto_url() -> Iterator[str]:
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture
def cognito(moto_url: str) -> CognitoPool:
    admin = _cognito_admin(moto_url)
    pool_id = admin.create_user_pool(PoolName="nexus-share")["UserPool"]["Id"]
    client_id = admin.create_user_pool_client(
        UserPoolId=pool_id,
        ClientName="nexus-sync",
        ExplicitAuthFlows=[
            "ALLOW_USER_PASSWORD_AUTH",
            "ALLOW_USER_SRP_AUTH",
            "ALLOW_REFRESH_TOKEN_AUTH",
        ],
    )["UserPoolClient"]["ClientId"]
    user, password = "alice", "Correct-Horse-7-Battery!"
    admin.admin_create_user(UserPoolId=pool_id, Username=user, MessageAction="SUPPRESS")
    admin.admin_set_user_password(
        UserPoolId=pool_id, Username=user, Password=password, Permanent=True
    )
    return CognitoPool(moto_url, pool_id, client_id, user, password)
