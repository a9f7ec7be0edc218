"""The pre-commit hook, run the way pre-commit runs it: its entry on the changed
files its `files` pattern selects, from the repository root."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import yaml
from conftest import git, run_command

PROJECT = Path(__file__).resolve().parent.parent


def load_hook() -> dict:
    [hook] = yaml.safe_load((PROJECT / ".pre-commit-hooks.yaml").read_text())
    return hook


def run_hook(repo: Path, staged: list[str]):
    hook = load_hook()
    selected = [path for path in staged if re.search(hook["files"], path)]
    program, *args = shlex.split(hook["entry"])
    assert program == "nexus-sync"
    return selected, run_command([*args, *selected], repo)


def test_the_hook_is_a_python_hook_running_validate() -> None:
    hook = load_hook()

    assert hook["id"] == "nexus-sync-validate"
    assert hook["language"] == "python"
    assert hook["entry"] == "nexus-sync validate"
    # pre-commit passes the changed files unless told otherwise.
    assert "pass_filenames" not in hook


def test_the_hook_checks_only_changed_post_files_and_names_the_bad_line(
    repo: Path,
) -> None:
    (repo / "posts" / "bad.md").write_text("---\nplatforms: [myspace]\n---\nHi\n")
    (repo / "notes.md").write_text("not a post\n")
    git(repo, "add", "-A")
    staged = git(repo, "diff", "--cached", "--name-only").split()

    selected, result = run_hook(repo, staged)

    assert selected == ["posts/bad.md"]
    assert result.code == 1
    assert result.stderr.splitlines() == [
        (
            "posts/bad.md:2: platforms.0: 'myspace' is not one of ['x', 'linkedin', "
            "'bluesky']"
        ),
        "1 problem(s) found.",
    ]


def test_the_hook_passes_valid_changed_posts(repo: Path) -> None:
    path = repo / "posts" / "2030-03-10-short-tip.md"
    path.write_text(path.read_text().replace("\n---\n", "\n---\nEdited. ", 1))
    staged = ["posts/2030-03-10-short-tip.md", "README.md"]

    selected, result = run_hook(repo, staged)

    assert selected == ["posts/2030-03-10-short-tip.md"]
    assert result.code == 0, result.output
    assert result.stdout == "1 post file(s) valid.\n"
