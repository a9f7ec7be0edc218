"""Test helpers for crashing `nexus-sync apply` at an exact request.

`HoldingServer` serves the emulator over real HTTP (uvicorn on 127.0.0.1, in a
thread of the test process) behind a middleware that can stop the world after
the k-th API request: the request is processed (committed) and then either its
answer is held, or it is delivered and the next request is held before the
emulator sees it. The test is told, kills the client with SIGKILL, and
releases the server.

`CliProcesses` starts the real `nexus-sync` entry point (`nexus_sync.cli:main`)
in separate processes forked from a server that has already imported it, so
that each run costs milliseconds instead of the second an interpreter needs to
import nexus-sync. A forked process is an ordinary process: SIGKILL ends it at
once, with nothing flushed and no handler run.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import multiprocessing
import os
import shutil
import threading
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import uvicorn
from conftest import EmulatorServer, free_port

from nexus_sync.emulator import Emulator, create_app

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict]]
Send = Callable[[dict], Awaitable[None]]

HELD = "held"
DELIVERED = "delivered"
_NOT_COUNTED = ("/_emulator", "/.well-known")


@dataclasses.dataclass
class _Arm:
    k: int
    mode: str
    reached: threading.Event = dataclasses.field(default_factory=threading.Event)
    released: asyncio.Event | None = None
    stopped: bool = False


class HoldingServer:
    """One uvicorn server whose emulator (and its state) can be swapped per case."""

    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.emulator: Emulator | None = None
        self._app: Callable | None = None
        self._arm: _Arm | None = None
        self.count = 0
        self.endpoints: list[str] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        config = uvicorn.Config(
            self,
            host="127.0.0.1",
            port=self.port,
            log_level="warning",
            lifespan="off",
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 30
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError("the holding server did not start")
            time.sleep(0.01)

    def _serve(self) -> None:
        asyncio.run(self._main())

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        await self._server.serve()

    def stop(self) -> None:
        self.release()
        self.close_emulator()
        self._server.should_exit = True
        self._thread.join(timeout=10)

    # -- the emulator behind the server ------------------------------------

    def use(self, state_dir: Path) -> Emulator:
        """Serve a new emulator whose state lives in `state_dir`."""
        self.release()
        self.close_emulator()
        self.emulator = Emulator(state_dir)
        self._app = create_app(self.emulator)
        self.count = 0
        self.endpoints = []
        return self.emulator

    def close_emulator(self) -> None:
        if self.emulator is not None:
            self.emulator.store.close()
            self.emulator = None
            self._app = None

    def env(self, user: str = "alice") -> dict[str, str]:
        return {"NEXUS_API_URL": self.url, "NEXUS_TOKEN": self.token(user)}

    def token(self, user: str) -> str:
        assert self.emulator is not None
        return self.emulator.mint(user)

    def bearer(self, user: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token(user)}"}

    @functools.cached_property
    def http(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=30)

    # Every message of `user`, read through the API, all pages.
    messages = EmulatorServer.messages

    # -- stopping the world at request k -------------------------------------

    def arm(self, k: int, mode: str) -> threading.Event:
        """Stop after request `k`; the event is set when the world has stopped."""
        assert mode in (HELD, DELIVERED)
        self.count = 0
        self.endpoints = []
        self._arm = _Arm(k, mode)
        return self._arm.reached

    def disarm_counting(self) -> None:
        """Count requests from zero, with nothing armed."""
        self.release()
        self.count = 0
        self.endpoints = []

    def release(self) -> None:
        """Let held answers go out (to a dead client) and forget the arm."""
        arm, self._arm = self._arm, None
        if arm is not None and arm.released is not None and self._loop is not None:
            released = arm.released
            self._loop.call_soon_threadsafe(released.set)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or self._app is None:
            return
        if scope["path"].startswith(_NOT_COUNTED):
            await self._app(scope, receive, send)
            return

        arm = self._arm
        if arm is not None and arm.released is None:
            arm.released = asyncio.Event()
        if arm is not None and arm.stopped:
            # After the stop nothing reaches the emulator: the client is killed
            # before this request could be processed.
            if arm.mode == DELIVERED:
                arm.reached.set()
            await arm.released.wait()
            await _refuse(send)
            return

        self.count += 1
        self.endpoints.append(f"{scope['method']} {scope['path']}")
        if arm is None or self.count != arm.k:
            await self._app(scope, receive, send)
            return

        arm.stopped = True
        if arm.mode == DELIVERED:
            await self._app(scope, receive, send)
            return

        async def hold(message: dict) -> None:
            # The emulator has committed the request and starts its answer.
            arm.reached.set()
            await arm.released.wait()
            # The client is dead by now; its socket may be gone.
            with contextlib.suppress(OSError, RuntimeError):
                await send(message)

        await self._app(scope, receive, hold)


async def _refuse(send: Send) -> None:
    # The client is dead by now; its socket may be gone.
    with contextlib.suppress(OSError, RuntimeError):
        await send({"type": "http.response.start", "status": 503, "headers": []})
        await send({"type": "http.response.body", "body": b""})


# -- the real command in fast, killable processes ------------------------------


def _run_cli(args: list[str], cwd: str, env: dict[str, str], log: str) -> None:
    from nexus_sync.cli import main

    descriptor = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    os.dup2(descriptor, 1)
    os.dup2(descriptor, 2)
    os.chdir(cwd)
    os.environ.clear()
    os.environ.update(env)
    main(args, prog_name="nexus-sync")


@dataclasses.dataclass
class Run:
    code: int | None
    output: str


class CliProcesses:
    """`nexus-sync ARGS` in processes forked from a server that imported it."""

    def __init__(self, scratch: Path) -> None:
        self.scratch = scratch
        self._context = multiprocessing.get_context("forkserver")
        self._context.set_forkserver_preload(
            ["nexus_sync.cli", "nexus_sync.session", "nexus_sync.apply", "crashserver"]
        )
        self._runs = 0

    def _environment(self, extra: dict[str, str]) -> dict[str, str]:
        base = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("NEXUS_", "GITHUB_"))
        }
        return {**base, "NO_COLOR": "1", **extra}

    def start(
        self, args: list[str], cwd: Path, env: dict[str, str]
    ) -> tuple[multiprocessing.Process, Path]:
        self._runs += 1
        log = self.scratch / f"run-{self._runs}.log"
        process = self._context.Process(
            target=_run_cli,
            args=(args, str(cwd), self._environment(env), str(log)),
        )
        process.start()
        return process, log

    def run(self, args: list[str], cwd: Path, env: dict[str, str]) -> Run:
        process, log = self.start(args, cwd, env)
        process.join(timeout=120)
        if process.is_alive():
            process.kill()
            process.join()
            return Run(None, log.read_text() + "\n[killed: still running after 120 s]")
        return Run(process.exitcode, log.read_text())


def copy_tree(source: Path, target: Path) -> Path:
    if target.exists():
        shutil.rmtree(target)
    shutil.copytree(source, target, symlinks=True)
    return target
