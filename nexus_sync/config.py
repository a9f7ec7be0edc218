"""Settings: nexus-sync.yaml at the repository root, then environment, then flags."""

from __future__ import annotations

import dataclasses
import os
import zoneinfo
from pathlib import Path
from typing import Any, Mapping

import yaml

from .errors import ConfigError

CONFIG_FILE = "nexus-sync.yaml"
DEFAULT_API_URL = "https://nexus-share.com/api"
DEFAULT_CLIENT_ID = "iklprbakdar4i2bgcrfd9l94r"
DEFAULT_REGION = "eu-central-1"
AUTH_FLOWS = ("USER_PASSWORD_AUTH", "USER_SRP_AUTH")

ENVIRONMENT = {
    "NEXUS_API_URL": "api_url",
    "NEXUS_TOKEN": "token",
    "NEXUS_USER": "user",
    "NEXUS_PASSWORD": "password",
    "NEXUS_CLIENT_ID": "client_id",
    "NEXUS_USER_POOL_ID": "user_pool_id",
}

# Keys a person may write in nexus-sync.yaml; credentials are not among them,
# so that no secret is ever committed with the settings.
FILE_KEYS = {
    "posts_dir",
    "timezone",
    "api_url",
    "client_id",
    "region",
    "auth_flow",
    "user_pool_id",
    "max_change_fraction",
    "min_managed_for_safety",
    "adoption_window_days",
    "bluesky_handle",
    "parallelism",
    "retry_after_cap",
}


@dataclasses.dataclass(frozen=True)
class Config:
    """Everything a command needs to know besides the post files themselves."""

    root: Path
    posts_dir: str = "posts"
    timezone: str | None = None
    api_url: str = DEFAULT_API_URL
    token: str | None = dataclasses.field(default=None, repr=False)
    user: str | None = None
    password: str | None = dataclasses.field(default=None, repr=False)
    client_id: str = DEFAULT_CLIENT_ID
    region: str = DEFAULT_REGION
    auth_flow: str = "USER_PASSWORD_AUTH"
    # Only the SRP flow (auth_flow: USER_SRP_AUTH) needs the pool's id.
    user_pool_id: str | None = None
    max_change_fraction: float = 0.3
    min_managed_for_safety: int = 10
    adoption_window_days: float = 7.0
    bluesky_handle: str | None = None
    parallelism: int = 4
    retry_after_cap: float = 60.0

    @property
    def posts_path(self) -> Path:
        return self.root / self.posts_dir

    @property
    def zone(self) -> zoneinfo.ZoneInfo | None:
        return zoneinfo.ZoneInfo(self.timezone) if self.timezone else None


def load_config(
    root: Path,
    environ: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> Config:
    """Read the settings for the repository at `root`, later sources winning."""
    environ = os.environ if environ is None else environ
    values: dict[str, Any] = {}

    path = root / CONFIG_FILE
    if path.exists():
        values.update(_read_file(path))

    for variable, key in ENVIRONMENT.items():
        if environ.get(variable):
            values[key] = environ[variable]

    values.update({k: v for k, v in (overrides or {}).items() if v is not None})
    config = Config(root=root, **values)
    _check(config, path)
    return config


def _read_file(path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8-sig")) or {}
    except yaml.YAMLError as error:
        raise ConfigError(f"{path.name}: not valid YAML: {error}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path.name}: expected a mapping of settings")

    unknown = sorted(set(data) - FILE_KEYS)
    if unknown:
        raise ConfigError(
            f"{path.name}: unknown setting(s) {', '.join(unknown)}; "
            f"known: {', '.join(sorted(FILE_KEYS))}"
        )
    return data


def _check(config: Config, path: Path) -> None:
    if config.timezone:
        try:
            zoneinfo.ZoneInfo(config.timezone)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            raise ConfigError(
                f"{path.name}: timezone {config.timezone!r} is not an IANA time "
                "zone name such as Europe/Berlin"
            ) from None
    if not 0 < float(config.max_change_fraction) <= 1:
        raise ConfigError(f"{path.name}: max_change_fraction must be in (0, 1]")
    if config.auth_flow not in AUTH_FLOWS:
        raise ConfigError(
            f"{path.name}: auth_flow {config.auth_flow!r} is not one of "
            f"{', '.join(AUTH_FLOWS)}"
        )
    if int(config.parallelism) < 1:
        raise ConfigError("parallelism must be at least 1")
