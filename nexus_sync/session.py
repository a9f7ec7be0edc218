"""Connecting to an account (the service, or the embedded emulator) and planning."""

from __future__ import annotations

import contextlib
import datetime as dt
import ipaddress
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import urlsplit

import httpx

from .auth import CognitoAuth, CognitoLogin, StaticToken
from .client import NexusClient
from .config import Config
from .errors import ConfigError, InvalidPosts, PostError
from .inventory import load_inventory
from .plan import Message, Plan, make_plan
from .posts import Post, load_posts, relative_name

log = logging.getLogger(__name__)

LOCAL_STATE_DIR = ".nexus-sync"
LOCAL_USER = "local"
LOCAL_URL = "http://nexus-share.local"


@contextlib.asynccontextmanager
async def open_client(config: Config, local: bool) -> AsyncIterator[NexusClient]:
    """A client for the configured account, or for the embedded emulator."""
    if local:
        from .emulator import Emulator, create_app

        state_dir = config.root / LOCAL_STATE_DIR
        emulator = Emulator(state_dir)
        ignore_state_dir(state_dir)
        transport = httpx.ASGITransport(app=create_app(emulator))
        auth = StaticToken(emulator.mint(LOCAL_USER))
        log.info("using the embedded emulator in %s", LOCAL_STATE_DIR)
        try:
            async with NexusClient(
                LOCAL_URL,
                auth,
                transport=transport,
                retry_after_cap=config.retry_after_cap,
            ) as client:
                yield client
        finally:
            emulator.store.close()
        return

    check_api_url(config.api_url)
    log.info("using Nexus Share at %s", config.api_url)
    auth = _auth(config)
    async with NexusClient(
        config.api_url, auth, retry_after_cap=config.retry_after_cap
    ) as client:
        yield client


def ignore_state_dir(state_dir: Path) -> None:
    """Keep an emulator's state (its database, its signing key) out of git."""
    (state_dir / ".gitignore").write_text("*\n")


def check_posts_dir(config: Config) -> None:
    """A posts folder that is missing (a typo of `posts_dir`, say) would look
    like every post deleted: refuse it rather than plan that."""
    path = config.posts_path
    if not path.resolve().is_relative_to(config.root.resolve()):
        raise ConfigError(
            f"posts_dir {config.posts_dir!r} is outside the repository; name a "
            "folder inside it"
        )
    if not path.is_dir():
        raise ConfigError(
            f"posts_dir {config.posts_dir!r}: there is no such folder in "
            f"{config.root}; create it or correct posts_dir in nexus-sync.yaml"
        )


def check_api_url(url: str) -> None:
    """Only HTTPS leaves the machine: a token must never cross a network in clear."""
    parts = urlsplit(url)
    if "@" in parts.netloc:
        raise ConfigError(
            "the API URL carries a user or password; give credentials as "
            "NEXUS_TOKEN or NEXUS_USER and NEXUS_PASSWORD instead"
        )
    if parts.scheme == "https" and parts.hostname:
        return
    if parts.scheme == "http" and parts.hostname and _is_loopback(parts.hostname):
        return
    raise ConfigError(
        f"API URL {url!r} must be https:// (plain http:// only to this machine)"
    )


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _auth(config: Config) -> httpx.Auth:
    if config.token:
        return StaticToken(config.token)
    if config.user and config.password:
        login = CognitoLogin(
            config.user,
            config.password,
            config.client_id,
            config.region,
            config.auth_flow,
            config.user_pool_id,
        )
        return CognitoAuth(login)
    if config.user or config.password:
        missing = "NEXUS_PASSWORD" if config.user else "NEXUS_USER"
        raise ConfigError(
            f"{missing} is not set: a Cognito login needs both NEXUS_USER and "
            "NEXUS_PASSWORD (or set NEXUS_TOKEN instead)"
        )
    raise ConfigError(
        "no credentials: set NEXUS_TOKEN (or NEXUS_USER and NEXUS_PASSWORD), "
        "or use --local for the embedded emulator"
    )


def read_posts(config: Config) -> list[Post]:
    """Every post, or InvalidPosts with every problem of every file."""
    check_posts_dir(config)
    posts, problems = load_posts(config)
    if problems:
        raise InvalidPosts(problems)
    return posts


def check_outside_files(config: Config, inventory: dict[str, str]) -> None:
    """InvalidPosts for managed files still there but outside the posts folder.

    Moved out (or left behind by a new posts_dir), such a file is not read, so
    its post would look deleted and its message would be deleted with it.
    """
    inside = relative_name(config.posts_path, config) + "/"
    problems = [
        PostError(
            path,
            1,
            f"its message {message_id} is managed, but the file is outside "
            f"posts_dir '{config.posts_dir}'; move it into {config.posts_dir}/, "
            "or delete it to cancel its message",
        )
        for message_id, path in sorted(inventory.items(), key=lambda item: item[1])
        if not path.startswith(inside) and (config.root / path).is_file()
    ]
    if problems:
        raise InvalidPosts(problems)


async def plan_for(
    config: Config, client: NexusClient, prune_unmanaged: bool = False
) -> tuple[Plan, dict]:
    """Read the files first (nothing is sent while any is wrong), then plan."""
    posts = read_posts(config)
    inventory = load_inventory(config.root)
    check_outside_files(config, inventory)
    remote = [Message.from_api(data) for data in await client.list_messages()]
    now = dt.datetime.now(dt.UTC)
    plan = make_plan(posts, inventory, remote, now, config, prune_unmanaged)
    return plan, inventory
