"""nexus-sync.yaml: every wrong setting is named with its line, never a traceback."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import make_repo, run_command

from nexus_sync.config import Config, load_config
from nexus_sync.errors import ConfigError, InvalidConfig


def problems(tmp_path: Path, text: str | bytes) -> list[str]:
    path = tmp_path / "nexus-sync.yaml"
    path.write_bytes(text.encode("utf-8") if isinstance(text, str) else text)
    with pytest.raises(InvalidConfig) as raised:
        load_config(tmp_path, environ={})
    return [str(problem) for problem in raised.value.problems]


def test_good_settings_are_read_with_their_types(tmp_path: Path) -> None:
    (tmp_path / "nexus-sync.yaml").write_bytes(
        b"\xef\xbb\xbf# settings\r\n"
        b"posts_dir: social\r\n"
        b"timezone: Europe/Berlin\r\n"
        b"max_change_fraction: 0.5\r\n"
        b"parallelism: 8\r\n"
        b"adoption_window_days: 3\r\n"
        b"bluesky_handle: nodejs.org\r\n"
    )

    config = load_config(tmp_path, environ={"NEXUS_TOKEN": "secret"})

    assert config == Config(
        root=tmp_path,
        posts_dir="social",
        timezone="Europe/Berlin",
        token="secret",
        max_change_fraction=0.5,
        parallelism=8,
        adoption_window_days=3,
        bluesky_handle="nodejs.org",
    )
    assert "secret" not in repr(config)
    assert str(config.zone) == "Europe/Berlin"


def test_an_empty_or_missing_file_gives_the_defaults(tmp_path: Path) -> None:
    assert load_config(tmp_path, environ={}) == Config(root=tmp_path)
    (tmp_path / "nexus-sync.yaml").write_text("# nothing yet\n")
    assert load_config(tmp_path, environ={}) == Config(root=tmp_path)


@pytest.mark.parametrize(
    ("text", "messages"),
    [
        (
            "posts_dir: posts\nparallelism: four\n",
            [
                "nexus-sync.yaml:2: parallelism: expected a whole number, got the "
                "string 'four'"
            ],
        ),
        (
            "parallelism: 0\n",
            ["nexus-sync.yaml:1: parallelism: 0 is less than the minimum of 1"],
        ),
        (
            "max_change_fraction: 30%\nmin_managed_for_safety: 2.5\n",
            [
                "nexus-sync.yaml:1: max_change_fraction: expected a number, got the "
                "string '30%'",
                "nexus-sync.yaml:2: min_managed_for_safety: expected a whole number, "
                "got the number 2.5",
            ],
        ),
        (
            "max_change_fraction: 1.5\n",
            [
                "nexus-sync.yaml:1: max_change_fraction: 1.5 is greater than the "
                "maximum of 1"
            ],
        ),
        (
            "timezone: Mars/Olympus\n",
            [
                "nexus-sync.yaml:1: timezone: 'Mars/Olympus' is not an IANA time "
                "zone name such as Europe/Berlin"
            ],
        ),
        (
            "timezone: [Europe/Berlin]\n",
            ["nexus-sync.yaml:1: timezone: expected a string, got a list"],
        ),
        (
            "posts_dir:\n",
            ["nexus-sync.yaml:1: posts_dir: expected a string, got nothing (null)"],
        ),
        (
            "parallelism: true\n",
            ["nexus-sync.yaml:1: parallelism: expected a whole number, got true"],
        ),
        (
            "auth_flow: SRP\n",
            [
                "nexus-sync.yaml:1: auth_flow: 'SRP' is not one of "
                "['USER_PASSWORD_AUTH', 'USER_SRP_AUTH']"
            ],
        ),
        (
            "# comment\ntoken: abc\npost_dir: x\n",
            [
                "nexus-sync.yaml:2: unknown setting 'token'; the settings are "
                "adoption_window_days, api_url, auth_flow, bluesky_handle, client_id, "
                "max_change_fraction, min_managed_for_safety, parallelism, posts_dir, "
                "region, retry_after_cap, timezone, user_pool_id",
                "nexus-sync.yaml:3: unknown setting 'post_dir'; the settings are "
                "adoption_window_days, api_url, auth_flow, bluesky_handle, client_id, "
                "max_change_fraction, min_managed_for_safety, parallelism, posts_dir, "
                "region, retry_after_cap, timezone, user_pool_id",
            ],
        ),
        (
            "parallelism: 2\nparallelism: 3\n",
            [
                "nexus-sync.yaml:2: 'parallelism' is given twice (first on line 1); "
                "keep one"
            ],
        ),
        (
            "- posts_dir: x\n",
            [
                "nexus-sync.yaml:1: expected settings as keys and values, e.g. "
                "posts_dir: posts"
            ],
        ),
        (
            "posts_dir: [x\n",
            [
                "nexus-sync.yaml:1: invalid YAML: while parsing a flow sequence; "
                "did not find expected ',' or ']'"
            ],
        ),
        (
            b"posts_dir: caf\xe9\n",
            ["nexus-sync.yaml:1: not UTF-8 text; save the file as UTF-8"],
        ),
    ],
)
def test_wrong_settings_are_named_with_their_lines(
    tmp_path: Path, text: str | bytes, messages: list[str]
) -> None:
    assert problems(tmp_path, text) == messages


@pytest.mark.parametrize(
    "name",
    [
        # Files of the machine's zoneinfo folder that zoneinfo opens too: the
        # machine's own zone, and variants of real zones.
        "localtime",
        "posixrules",
        "right/UTC",
        "posix/Europe/Berlin",
        "/etc/localtime",
        "../zoneinfo/UTC",
        "Europe",
        "zone.tab",
        "europe/berlin",
    ],
)
def test_timezone_must_be_an_iana_name_not_a_file_of_the_machine(
    tmp_path: Path, name: str
) -> None:
    assert problems(tmp_path, f"timezone: {name}\n") == [
        f"nexus-sync.yaml:1: timezone: {name!r} is not an IANA time zone name "
        "such as Europe/Berlin"
    ]


@pytest.mark.parametrize(
    "name", ["UTC", "Etc/UTC", "US/Eastern", "America/Argentina/Buenos_Aires"]
)
def test_iana_names_and_their_aliases_are_time_zones(tmp_path: Path, name: str) -> None:
    (tmp_path / "nexus-sync.yaml").write_text(f"timezone: {name}\n")

    config = load_config(tmp_path, environ={})

    assert (config.timezone, str(config.zone)) == (name, name)


def test_wrong_flags_are_refused_too(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as raised:
        load_config(tmp_path, environ={}, overrides={"parallelism": 0})

    assert str(raised.value) == "parallelism must be at least 1"


def test_a_bad_config_stops_every_command_with_its_line(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo")
    (repo / "nexus-sync.yaml").write_text(
        "timezone: Europe/Berlin\nparallelism: four\n"
    )

    for command in (["validate"], ["plan", "--local"], ["apply", "--local"]):
        result = run_command(command, repo)

        assert result.code == 1
        sent = "" if command == ["validate"] else "; nothing was sent"
        assert result.stderr.splitlines() == [
            "nexus-sync.yaml:2: parallelism: expected a whole number, got the string "
            "'four'",
            f"1 problem(s) found{sent}.",
        ]
    assert not (repo / ".nexus-sync").exists()
