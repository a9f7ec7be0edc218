"""Settings: nexus-sync.yaml at the repository root, then environment, then flags."""

from __future__ import annotations

import dataclasses
import functools
import math
import os
import zoneinfo
from collections.abc import Mapping
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from . import yamlstrict
from .errors import ConfigError, FileProblem, InvalidConfig

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
        """The default time zone of `scheduledFor`, from the bundled tz database."""
        return zoneinfo.ZoneInfo(self.timezone) if self.timezone else None


# The type and range of each setting in nexus-sync.yaml. A key in FILE_KEYS
# that is missing here is accepted as it is.
FILE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "posts_dir": {"type": "string", "minLength": 1},
        "timezone": {"type": "string", "minLength": 1},
        "api_url": {"type": "string", "minLength": 1},
        "client_id": {"type": "string", "minLength": 1},
        "region": {"type": "string", "minLength": 1},
        "auth_flow": {"enum": list(AUTH_FLOWS)},
        "user_pool_id": {"type": "string", "minLength": 1},
        "max_change_fraction": {
            "type": "number",
            "exclusiveMinimum": 0,
            "maximum": 1,
        },
        "min_managed_for_safety": {"type": "integer", "minimum": 0},
        "adoption_window_days": {"type": "number", "minimum": 0},
        "bluesky_handle": {"type": "string", "minLength": 1},
        "parallelism": {"type": "integer", "minimum": 1},
        "retry_after_cap": {"type": "number", "minimum": 0},
    },
}


def load_config(
    root: Path,
    environ: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> Config:
    """Read the settings for the repository at `root`, later sources winning."""
    environ = os.environ if environ is None else environ
    values: dict[str, Any] = {}

    path = root / CONFIG_FILE
    if path.is_file():
        values.update(_read_file(path))

    for variable, key in ENVIRONMENT.items():
        if environ.get(variable):
            values[key] = environ[variable]

    values.update({k: v for k, v in (overrides or {}).items() if v is not None})
    config = Config(root=root, **values)
    if not 0 < float(config.max_change_fraction) <= 1:
        raise ConfigError("max_change_fraction must be in (0, 1]")
    if int(config.parallelism) < 1:
        raise ConfigError("parallelism must be at least 1")
    # YAML's .nan and .inf are numbers to the schema, and NaN passes every
    # comparison: a wait of NaN seconds would never end.
    for key, unit in (("retry_after_cap", "seconds"), ("adoption_window_days", "days")):
        value = getattr(config, key)
        if not math.isfinite(float(value)):
            raise ConfigError(f"{key} must be a number of {unit}, not {value}")
    return config


def _read_file(path: Path) -> dict[str, Any]:
    """The settings of nexus-sync.yaml, or InvalidConfig naming every bad line."""
    try:
        text = path.read_bytes().decode("utf-8").removeprefix("\ufeff")
    except UnicodeDecodeError:
        raise _invalid(1, "not UTF-8 text; save the file as UTF-8") from None
    except OSError as error:
        raise _invalid(1, f"cannot read the file: {error.strerror}") from None

    try:
        node, data = yamlstrict.load(text)
        data = {} if node is None else data
    except (yaml.YAMLError, RecursionError) as error:
        if isinstance(error, RecursionError):
            error = yaml.YAMLError("the settings are nested too deeply")
        raise _invalid(*yamlstrict.yaml_problem(error, 1, text)) from None
    if not isinstance(data, dict):
        raise _invalid(1, "expected settings as keys and values, e.g. posts_dir: posts")

    problems = [
        FileProblem(
            CONFIG_FILE,
            yamlstrict.line_of(node, (key,), 1),
            f"unknown setting {key!r}; the settings are {', '.join(sorted(FILE_KEYS))}",
        )
        for key in data
        if key not in FILE_KEYS
    ]
    problems += [
        FileProblem(CONFIG_FILE, line, message)
        for line, _, message in yamlstrict.schema_problems(
            _file_validator(), data, node, 1
        )
    ]

    timezone = data.get("timezone")
    if isinstance(timezone, str) and timezone and not _is_zone(timezone):
        problems.append(
            FileProblem(
                CONFIG_FILE,
                yamlstrict.line_of(node, ("timezone",), 1),
                f"timezone: {timezone!r} is not an IANA time zone name such as "
                "Europe/Berlin",
            )
        )
    if problems:
        raise InvalidConfig(sorted(problems, key=lambda p: p.line))
    return data


def _invalid(line: int, message: str) -> InvalidConfig:
    return InvalidConfig([FileProblem(CONFIG_FILE, line, message)])


@functools.cache
def _file_validator() -> jsonschema.Draft202012Validator:
    return jsonschema.Draft202012Validator(FILE_SCHEMA)


def _is_zone(name: str) -> bool:
    # zoneinfo opens any time zone file under the machine's zoneinfo folder:
    # localtime (the machine's own zone, so a plan would depend on where it
    # runs), posixrules, right/ (clocks with leap seconds). Only the names of
    # the IANA database are zones here.
    if name not in _iana_names():
        return False
    try:
        zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError):
        return False
    return True


@functools.cache
def _iana_names() -> frozenset[str]:
    """Every zone and alias name of the IANA database, as tzdata lists them."""
    # The same list that zoneinfo.available_timezones() starts from; that
    # function then adds every file of the machine's folder, localtime too.
    listing = resources.files("tzdata").joinpath("zones").read_text("utf-8")
    return frozenset(listing.split())
