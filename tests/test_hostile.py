"""Hostile input: generated and mutated post files never make a traceback or hang.

Hypothesis feeds files to `validate` and to `plan` (against the emulator over
HTTP) through the real command code: click's CliRunner, in process, because a
subprocess per example would take an hour. Every outcome must be either success or exit status 1 with
`path:line: message` lines; a traceback, another exit status or a hang fails.
The refusals of dangerous files are also checked through the installed
command.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import traceback
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner, Result
from conftest import EXAMPLE_POSTS, EmulatorServer, make_repo, run_command
from crashserver import HoldingServer
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nexus_sync.cli import main

# A generous guard: the slowest honest example takes milliseconds.
HANG_SECONDS = 20
VALIDATE_EXAMPLES = int(os.environ.get("NEXUS_SYNC_HOSTILE_EXAMPLES", "2000"))
PLAN_EXAMPLES = max(VALIDATE_EXAMPLES // 4, 1)
NAME = "posts/fuzz.md"
PROBLEM_LINE = re.compile(rf"{re.escape(NAME)}:[1-9][0-9]*: \S")
VALIDATE_SUMMARY = re.compile(r"[1-9][0-9]* problem\(s\) found\.")
PLAN_SUMMARY = re.compile(r"[1-9][0-9]* problem\(s\) found; nothing was sent\.")

SEEDS = [path.read_bytes() for path in sorted(EXAMPLE_POSTS.rglob("*.md"))] + [
    (
        b"---\ntitle: No\nplatforms: [X, Bluesky]\nscheduledFor: 2031-03-29T02:30:00\n"
        b"nexus:\n  id: POST|alice|1736853600000\n  status: PUBLISHED\n"
        b"  externalIds: {x: '2012087424487219563'}\n---\nBody\r\nwith CRLF\r\n"
    ),
    (
        "\ufeff---\nplatforms:\n  - linkedin\ndraft: true\npublish: now\n---\n\n"
        "Caf\u00e9 \U0001f389 \u4e2d\u6587 https://example.com/a\n\n"
    ).encode(),
    b"---\nplatforms: [x]\n---\n" + b"x" * 281 + b"\n",
]
TOKENS = [
    b"---",
    b"---\n",
    b"\n",
    b"\r\n",
    b"\r",
    b":",
    b": ",
    b" ",
    b"  ",
    b"\t",
    b"- ",
    b"[",
    b"]",
    b"{",
    b"}",
    b",",
    b"'",
    b'"',
    b"#",
    b"|",
    b">",
    b"? ",
    b"&a ",
    b"*a",
    b"!!python/object/apply:os.system ['true']",
    b"!!binary",
    b"!!set",
    b"%YAML 1.1\n",
    b"...",
    b"\x00",
    b"\xff",
    b"\xc3",
    b"\xef\xbb\xbf",
    b"\xed\xa0\x80",
    b"nexus:",
    b"\n  id: ",
    b"platforms: [x]",
    b"platforms: ",
    b"scheduledFor: ",
    b"2031-02-30T25:61:00+01:00",
    b"2031-10-26T02:30:00",
    b"1999-01-01T00:00:00Z",
    b"title: ",
    b"draft: ",
    b"publish: now",
    b"yes",
    b"no",
    b"0o17",
    b"0x1F",
    b"1:20",
    b"~",
    b"null",
    b"1e309",
    b"-.inf",
    b"9" * 40,
    "\u00e9".encode(),
    "\U0001f389".encode(),
    "\u0301".encode(),
    "\u202e".encode(),
    b"<<: *a",
    b"status: PUBLISHED",
    b"id: ''",
    b"externalIds: ",
    b"[" * 200,
    b"{a: " * 50,
]


def mutate(seed: bytes, edits: list[tuple[int, float, int]]) -> bytes:
    data = bytearray(seed)
    for operation, where, token in edits:
        at = int(where * len(data))
        piece = TOKENS[token]
        if operation == 0:
            data[at:at] = piece
        elif operation == 1:
            del data[at : at + len(piece)]
        else:
            data[at : at + len(piece)] = piece
    return bytes(data)


mutated_files = st.builds(
    mutate,
    st.sampled_from(SEEDS),
    st.lists(
        st.tuples(
            st.integers(0, 2),
            st.floats(0, 1, allow_nan=False),
            st.integers(0, len(TOKENS) - 1),
        ),
        min_size=1,
        max_size=8,
    ),
)

scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats()
    | st.text(max_size=40)
    | st.sampled_from(
        [
            "x",
            "X",
            "linkedin",
            "bluesky",
            "now",
            "2031-05-05T10:00:00+02:00",
            "2031-05-05 10:00",
            "PUBLISHED",
            "DRAFT",
            "POST|a|1",
        ]
    )
)
values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(
            st.text(max_size=12) | st.sampled_from(["id", "status"]), inner, max_size=4
        )
    ),
    max_leaves=12,
)
keys = st.sampled_from(
    ["title", "platforms", "scheduledFor", "draft", "publish", "nexus"]
) | st.text(max_size=15)


@st.composite
def generated_files(draw: st.DrawFn) -> bytes:
    frontmatter = draw(st.dictionaries(keys, values, max_size=6))
    if draw(st.booleans()):
        frontmatter.setdefault(
            "platforms",
            draw(
                st.lists(
                    st.sampled_from(["x", "linkedin", "bluesky", "X"]),
                    min_size=1,
                    max_size=3,
                )
            ),
        )
    style = draw(st.sampled_from([False, True, None]))
    text = yaml.safe_dump(frontmatter, default_flow_style=style, allow_unicode=True)
    body = draw(st.text(max_size=400))
    newline = draw(st.sampled_from(["\n", "\r\n"]))
    return f"---\n{text}---\n{body}".replace("\n", newline).encode(
        "utf-8", "surrogatepass"
    )


post_files = mutated_files | generated_files()


@contextlib.contextmanager
def no_hang(what: str) -> Iterator[None]:
    def alarm(signum: int, frame: object) -> None:
        raise TimeoutError(f"{what} still running after {HANG_SECONDS} s")

    previous = signal.signal(signal.SIGALRM, alarm)
    signal.alarm(HANG_SECONDS)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def check_outcome(result: Result, success: str, summary: re.Pattern) -> None:
    """Success, or status 1 with a `path:line: message` for each problem."""
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise AssertionError(
            "".join(traceback.format_exception(result.exception))
        ) from None
    output = result.stdout + result.stderr
    assert "Traceback" not in output
    if result.exit_code == 0:
        assert success in result.stdout
        return
    assert result.exit_code == 1, output
    lines = result.stderr.splitlines()
    if lines and lines[0].startswith("Error: "):
        return  # a problem the reconciler found, said in one sentence
    assert lines, output
    assert summary.fullmatch(lines[-1]), output
    assert all(PROBLEM_LINE.match(line) for line in lines[:-1]), output
    assert len(lines) >= 2, output


@pytest.fixture(scope="module")
def fuzz_repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_repo(tmp_path_factory.mktemp("hostile") / "repo", posts=None)


class Account(dict):
    """The environment that points at the emulator; its repr keeps the token out
    of Hypothesis's report of a failing example."""

    def __repr__(self) -> str:
        return f"Account({self['NEXUS_API_URL']})"


@pytest.fixture(scope="module")
def account(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Account]:
    """The emulator over HTTP; one server for every example of the plan run."""
    server = HoldingServer()
    server.use(tmp_path_factory.mktemp("hostile-emulator"))
    yield Account(server.env("alice"))
    server.stop()


def invoke(
    repo: Path, args: list[str], content: bytes, env: dict[str, str] | None = None
) -> Result:
    (repo / NAME).write_bytes(content)
    with no_hang(" ".join(args)):
        return CliRunner().invoke(
            main, ["-C", str(repo), *args], env={"NO_COLOR": "1", **(env or {})}
        )


FUZZ = settings(
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@settings(FUZZ, max_examples=VALIDATE_EXAMPLES)
@given(content=post_files)
def test_validate_never_crashes(fuzz_repo: Path, content: bytes) -> None:
    check_outcome(
        invoke(fuzz_repo, ["validate"], content),
        "1 post file(s) valid.",
        VALIDATE_SUMMARY,
    )


@settings(FUZZ, max_examples=PLAN_EXAMPLES)
@given(content=post_files)
def test_plan_never_crashes(fuzz_repo: Path, account: Account, content: bytes) -> None:
    check_outcome(invoke(fuzz_repo, ["plan"], content, account), "Plan: ", PLAN_SUMMARY)


# -- files that are refused outright, through the installed command ----------


def test_dangerous_files_are_refused_with_a_message_and_nothing_is_sent(
    tmp_path: Path, emulator: EmulatorServer
) -> None:
    repo = make_repo(tmp_path / "repo")
    secret = tmp_path / "repo" / "secret.md"
    secret.write_text("---\nplatforms: [x]\n---\nThe secret plan, not a post.\n")
    (repo / "posts" / "leak.md").symlink_to(secret)
    huge = b"---\nplatforms: [linkedin]\n---\n" + b"word " * 200_001
    (repo / "posts" / "huge.md").write_bytes(huge)
    (repo / "posts" / "binary.md").write_bytes(
        b"---\nplatforms: [x]\n---\n\x89PNG\x00\x01"
    )
    latin1 = "---\nplatforms: [x]\ntitle: Caf\u00e9\n---\nBonjour\n".encode("latin-1")
    (repo / "posts" / "latin1.md").write_bytes(latin1)
    env = emulator.env("alice")
    emulator.clear_requests()
    # The messages of the `posts` branch, which owns their wording.
    expected = [
        "posts/binary.md:4: binary file (it contains NUL bytes), not a Markdown post",
        (
            f"posts/huge.md:1: the file has {len(huge)} bytes; a post file has at most "
            "1000000 (1 MB)"
        ),
        (
            "posts/latin1.md:3: not UTF-8 text (byte 0xe9 at column 11); save the file "
            "as UTF-8"
        ),
        (
            f"posts/leak.md:1: symbolic link to {secret}, outside the posts folder "
            "posts/; copy the file instead"
        ),
    ]

    for command in (["validate"], ["plan"], ["apply"]):
        result = run_command(command, repo, env)

        sent = "" if command == ["validate"] else "; nothing was sent"
        assert result.code == 1, result.output
        assert result.stderr.splitlines() == [*expected, f"4 problem(s) found{sent}."]
        assert "Traceback" not in result.output
        assert "secret plan" not in result.output
    assert emulator.requests()["counts"] == {}
    assert emulator.messages("alice") == []


def test_a_folder_named_like_a_post_is_skipped_and_its_posts_read(
    tmp_path: Path,
) -> None:
    repo = make_repo(tmp_path / "repo")
    folder = repo / "posts" / "ideas.md"
    folder.mkdir()
    (folder / "one.md").write_text("---\nplatforms: [x]\n---\nAn idea\n")

    result = run_command(["validate"], repo)

    assert "Traceback" not in result.output
    assert result.code == 0, result.output
    assert result.stdout == "8 post file(s) valid.\n"


def test_a_symlink_loop_is_a_message_not_a_traceback(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo")
    (repo / "posts" / "a.md").symlink_to("b.md")
    (repo / "posts" / "b.md").symlink_to("a.md")

    result = run_command(["validate"], repo)

    assert "Traceback" not in result.output
    assert result.code == 1, result.output
    first, second = result.stderr.splitlines()[:2]
    assert first.startswith("posts/a.md:1: "), result.output
    assert second.startswith("posts/b.md:1: "), result.output


@pytest.mark.parametrize(
    "content",
    [
        # A mapping inside the platforms list (a missing line break).
        b"---\nplatforms:\n  - linkeddraft: true\npublish: now\n---\nHi\n",
        # A key that is a carriage return: the message must stay one line.
        b'---\n"\\r": null\nplatforms: [x]\n---\nHi\n',
        # An invalid scheduledFor string.
        b"---\nplatforms: [x]\nscheduledFor: 2030-01-15T09:00:00+01:---00\n---\nHi\n",
    ],
    ids=["mapping-in-platforms", "carriage-return-key", "bad-schedule"],
)
def test_examples_hypothesis_found(fuzz_repo: Path, content: bytes) -> None:
    check_outcome(
        invoke(fuzz_repo, ["validate"], content),
        "1 post file(s) valid.",
        VALIDATE_SUMMARY,
    )
