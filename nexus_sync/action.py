"""The GitHub Action: read the event, run nexus-sync, report, commit the write-back.

`action.yml` runs `python -m nexus_sync.action` with its inputs in `INPUT_*`
environment variables. This module is the Action's command layer: like cli.py
it prints, but what it prints is for the runner (workflow commands such as
`::add-mask::` and `::error::`, the job log), and it reports through the files
the runner names in GITHUB_OUTPUT and GITHUB_STEP_SUMMARY. It runs the real
`nexus-sync` command for each step, so the log shows exactly what a person
would see running it by hand.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import subprocess
import sys
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .config import load_config
from .errors import NexusSyncError
from .github import GitHub, GitHubError
from .inventory import INVENTORY_FILE, load_inventory, save_inventory

log = logging.getLogger(__name__)

COMMANDS = ("auto", "validate", "plan", "apply", "refresh")
BOT_NAME = "github-actions[bot]"
BOT_EMAIL = "41898282+github-actions[bot]@users.noreply.github.com"
WRITEBACK_SUBJECT = "nexus-sync: write back"
PUSH_TRIES = 3
SECRETS = (
    "INPUT_TOKEN",
    "INPUT_PASSWORD",
    "INPUT_GITHUB_TOKEN",
    "NEXUS_TOKEN",
    "NEXUS_PASSWORD",
)
PULL_REQUEST_EVENTS = ("pull_request", "pull_request_target")


@dataclasses.dataclass(frozen=True)
class Inputs:
    """The Action's inputs, as action.yml hands them over."""

    command: str = "auto"
    api_url: str = ""
    token: str = dataclasses.field(default="", repr=False)
    user: str = ""
    password: str = dataclasses.field(default="", repr=False)
    github_token: str = dataclasses.field(default="", repr=False)
    comment: bool = True
    commit: bool = True
    working_directory: str = "."

    @classmethod
    def from_environ(cls, environ: Mapping[str, str]) -> Inputs:
        def text(name: str, default: str = "") -> str:
            return environ.get(f"INPUT_{name}", default).strip() or default

        # Credentials may also come from the job's env, as for the command.
        def credential(name: str, variable: str) -> str:
            return environ.get(f"INPUT_{name}") or environ.get(variable, "")

        command = text("COMMAND", "auto").lower()
        if command not in COMMANDS:
            raise NexusSyncError(
                f"input command: {command!r} is not one of {', '.join(COMMANDS)}"
            )
        return cls(
            command=command,
            api_url=credential("API_URL", "NEXUS_API_URL").strip(),
            token=credential("TOKEN", "NEXUS_TOKEN").strip(),
            user=credential("USER", "NEXUS_USER").strip(),
            password=credential("PASSWORD", "NEXUS_PASSWORD"),
            github_token=text("GITHUB_TOKEN"),
            comment=_flag(text("COMMENT", "true"), "comment"),
            commit=_flag(text("COMMIT", "true"), "commit"),
            working_directory=text("WORKING_DIRECTORY", "."),
        )

    @property
    def has_credentials(self) -> bool:
        return bool(self.token or (self.user and self.password))

    def nexus_environment(self) -> dict[str, str]:
        """What the `nexus-sync` command reads; nothing else secret reaches it."""
        values = {
            "NEXUS_API_URL": self.api_url,
            "NEXUS_TOKEN": self.token,
            "NEXUS_USER": self.user,
            "NEXUS_PASSWORD": self.password,
        }
        return {name: value for name, value in values.items() if value}


def _flag(value: str, name: str) -> bool:
    lowered = value.lower()
    if lowered in ("true", "yes", "1"):
        return True
    if lowered in ("false", "no", "0"):
        return False
    raise NexusSyncError(f"input {name}: {value!r} is not true or false")


@dataclasses.dataclass(frozen=True)
class Event:
    """The event that started the workflow run."""

    name: str
    payload: dict[str, Any]
    ref: str
    repository: str

    @classmethod
    def from_environ(cls, environ: Mapping[str, str]) -> Event:
        payload: dict[str, Any] = {}
        path = environ.get("GITHUB_EVENT_PATH")
        if path and Path(path).is_file():
            payload = json.loads(Path(path).read_text(encoding="utf-8"))
        return cls(
            name=environ.get("GITHUB_EVENT_NAME", ""),
            payload=payload,
            ref=environ.get("GITHUB_REF", ""),
            repository=environ.get("GITHUB_REPOSITORY", ""),
        )

    @property
    def pull_request(self) -> dict[str, Any] | None:
        if self.name in PULL_REQUEST_EVENTS:
            return self.payload.get("pull_request")
        return None

    @property
    def fork(self) -> str | None:
        """The fork a pull request comes from, or None when it is this repository."""
        pull = self.pull_request
        if not pull:
            return None
        head = (pull.get("head") or {}).get("repo") or {}
        base = (pull.get("base") or {}).get("repo") or {}
        # A deleted fork leaves no head repository: it is still not ours.
        head_name = head.get("full_name") or "a deleted fork"
        return None if head_name == base.get("full_name") else head_name

    @property
    def branch(self) -> str | None:
        prefix = "refs/heads/"
        return self.ref[len(prefix) :] if self.ref.startswith(prefix) else None

    @property
    def on_default_branch(self) -> bool:
        default = (self.payload.get("repository") or {}).get("default_branch")
        return self.branch is not None and (default is None or self.branch == default)

    @property
    def is_own_writeback(self) -> bool:
        """A push made only of nexus-sync's write-back commits."""
        commits = self.payload.get("commits") or []
        return (
            self.name == "push"
            and bool(commits)
            and all(
                commit.get("message", "").startswith(WRITEBACK_SUBJECT)
                and (commit.get("author") or {}).get("email") == BOT_EMAIL
                for commit in commits
            )
        )

    def command(self) -> str:
        """What `command: auto` means for this event."""
        if self.name == "schedule":
            return "refresh"
        if self.name in ("push", "workflow_dispatch") and self.on_default_branch:
            return "apply"
        return "plan"


class Runner:
    """Talks to the Actions runner: workflow commands, outputs, the job summary."""

    def __init__(self, environ: Mapping[str, str]) -> None:
        self.environ = environ
        # Every output is set, so that a workflow never reads a missing one.
        self.outputs = {"has-changes": "false", "checksum": "", "plan-path": ""}

    def mask(self, secret: str) -> None:
        # The runner masks line by line, so every line of a value is its own mask.
        for line in secret.splitlines():
            if line.strip():
                self.command("add-mask", line)

    def command(self, name: str, message: str, **properties: str) -> None:
        attributes = ",".join(
            f"{key}={_escape(value, True)}" for key, value in properties.items()
        )
        separator = " " if attributes else ""
        self.echo(f"::{name}{separator}{attributes}::{_escape(message)}")

    def echo(self, text: str) -> None:
        print(text, flush=True)

    def output(self, name: str, value: str) -> None:
        if "\n" in value:
            raise ValueError(f"output {name} must be one line")
        self.outputs[name] = value

    def write_outputs(self) -> None:
        lines = "".join(f"{name}={value}\n" for name, value in self.outputs.items())
        self._append("GITHUB_OUTPUT", lines)

    def summary(self, markdown: str) -> None:
        self._append("GITHUB_STEP_SUMMARY", markdown.rstrip("\n") + "\n\n")

    def _append(self, variable: str, text: str) -> None:
        path = self.environ.get(variable)
        if not path:
            log.info("%s is not set; not written: %s", variable, text.strip())
            return
        with open(path, "a", encoding="utf-8") as file:
            file.write(text)


def _escape(value: str, property_value: bool = False) -> str:
    value = value.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")
    if property_value:
        value = value.replace(":", "%3A").replace(",", "%2C")
    return value


class Action:
    """One run of the Action in the current directory (the working directory)."""

    def __init__(self, inputs: Inputs, event: Event, runner: Runner) -> None:
        self.inputs = inputs
        self.event = event
        self.runner = runner
        self.environ = runner.environ
        self.root = Path.cwd()

    def run(self) -> int:
        command = self.inputs.command
        if command == "auto":
            command = self.event.command()
        self.runner.echo(f"nexus-sync: {command} (event {self.event.name or 'none'})")

        if command in ("apply", "refresh") and self.event.is_own_writeback:
            self.runner.command(
                "notice",
                "This push holds only nexus-sync's own write-back commit: "
                "nothing to do.",
            )
            self.runner.summary(
                "### nexus-sync\n\nNothing to do: this push is "
                "nexus-sync's own write-back commit."
            )
            return 0
        if command == "validate":
            return self.validate()
        if command == "plan":
            return self.plan()
        return self.change(command)

    # The steps.

    def validate(self) -> int:
        code = self._nexus(["validate"]).returncode
        if code == 0:
            self.runner.summary("### nexus-sync validate\n\nEvery post file is valid.")
        else:
            self.runner.summary(
                "### nexus-sync validate\n\nSome post files have problems; they are "
                "annotated on the files and listed in the job log."
            )
        return code

    def plan(self) -> int:
        reason = self._why_validate_only()
        if reason:
            self.runner.command(
                "notice", f"nexus-sync only validated the files: {reason}"
            )
            code = self._nexus(["validate"]).returncode
            verdict = (
                "Every post file is valid."
                if code == 0
                else ("Some post files have problems; see the annotations.")
            )
            self.runner.summary(
                f"### nexus-sync\n\nOnly validated the files: {reason}\n\n{verdict}"
            )
            return code

        if self.event.pull_request and self._nexus(["validate"]).returncode != 0:
            self._report_on_pull_request(
                "### nexus-sync plan\n\n:x: Some post files have problems; they are "
                f"annotated on the files. {self._run_link()}"
            )
            self.runner.summary("### nexus-sync plan\n\nValidation failed: no plan.")
            return 1

        made = self._make_plan()
        if made is None:
            self._report_on_pull_request(
                "### nexus-sync plan\n\n:x: nexus-sync could not make a plan. "
                f"{self._run_link()}"
            )
            return 1
        markdown, _ = made
        self.runner.summary(markdown)
        self._report_on_pull_request(markdown)
        return 0

    def change(self, command: str) -> int:
        if not self.inputs.has_credentials:
            raise NexusSyncError(
                f"{command} needs Nexus Share credentials: set the input token, or "
                "user and password, from the repository's secrets"
            )
        branch = self.event.branch
        if self.inputs.commit and branch is None:
            raise NexusSyncError(
                f"{command} commits its write-back to a branch, but {self.event.ref!r} "
                "is not one; run it on a branch or set the input commit: false"
            )
        if branch:
            self._catch_up(branch)

        if command == "apply":
            code = self._apply()
        else:
            result = self._nexus(["refresh"], capture=True)
            self.runner.summary(_folded("nexus-sync refresh", result.stdout))
            code = result.returncode
            changed = _git(["status", "--porcelain"], self.root).stdout.strip()
            self.runner.output("has-changes", "true" if changed else "false")

        # Even a failed apply wrote the ids of what it did; they must be kept.
        if self.inputs.commit and branch:
            sha = commit_writeback(branch, command, self.root, self.runner)
            if sha:
                self.runner.summary(
                    f"Write-back commit `{sha[:12]}` pushed to `{branch}`."
                )
        return code

    def _apply(self) -> int:
        made = self._make_plan()
        if made is None:
            return 1
        markdown, plan_path = made
        self.runner.summary(markdown)
        if self.runner.outputs["has-changes"] != "true":
            return 0
        # Apply exactly the plan shown in the summary: it refuses if it changed.
        result = self._nexus(["apply", str(plan_path)], capture=True)
        self.runner.summary(_folded("nexus-sync apply", result.stdout))
        return result.returncode

    # Helpers.

    def _why_validate_only(self) -> str | None:
        fork = self.event.fork
        if fork:
            return (
                f"this pull request comes from the fork {fork}. GitHub gives a "
                "fork's workflow no secrets, and nexus-sync does not send a fork's "
                "files to the account; the plan is made once the branch is pushed "
                "to this repository or merged."
            )
        if not self.inputs.has_credentials:
            return (
                "no Nexus Share credentials were given (the input token, or user "
                "and password). Pass them from the repository's secrets to see a "
                "plan."
            )
        return None

    def _make_plan(self) -> tuple[str, Path] | None:
        """Plan once: Markdown for people, JSON saved for apply and the outputs."""
        folder = Path(
            tempfile.mkdtemp(prefix="nexus-sync-", dir=self.environ.get("RUNNER_TEMP"))
        )
        plan_path = folder / "plan.json"
        result = self._nexus(
            [
                "plan",
                "--format",
                "markdown",
                "--out",
                str(plan_path),
                "--detailed-exitcode",
            ],
            capture=True,
        )
        if result.returncode not in (0, 2):
            self.runner.summary(
                "### nexus-sync plan\n\nnexus-sync could not make a "
                "plan; the job log says why."
            )
            return None
        saved = json.loads(plan_path.read_text(encoding="utf-8"))
        self.runner.output("has-changes", "true" if saved["has_changes"] else "false")
        self.runner.output("checksum", saved["checksum"])
        self.runner.output("plan-path", str(plan_path))
        return result.stdout, plan_path

    def _report_on_pull_request(self, markdown: str) -> None:
        pull = self.event.pull_request
        if not pull or not self.inputs.comment:
            return
        if not self.inputs.github_token:
            self.runner.command(
                "warning",
                "No GitHub token: the plan is in the job "
                "summary only, not in a pull-request comment.",
            )
            return

        marker = f"<!-- nexus-sync plan: {self.inputs.working_directory} -->"
        sha = ((pull.get("head") or {}).get("sha") or "")[:7]
        where = (
            f" in `{self.inputs.working_directory}`"
            if self.inputs.working_directory != "."
            else ""
        )
        footer = f"\n\n<sub>Commit {sha}{where}. {self._run_link()}</sub>"
        body = f"{marker}\n{markdown.rstrip()}{footer}"
        api_url = self.environ.get("GITHUB_API_URL", "https://api.github.com")
        try:
            with GitHub(api_url, self.inputs.github_token) as github:
                comment, created = github.upsert_comment(
                    self.event.repository, pull["number"], marker, body
                )
        except GitHubError as error:
            # The plan is in the summary already; a missing comment is no failure.
            self.runner.command("warning", f"The plan comment was not posted: {error}")
            return
        self.runner.echo(
            f"{'Posted' if created else 'Updated'} the plan comment {comment.url}"
        )

    def _run_link(self) -> str:
        server = self.environ.get("GITHUB_SERVER_URL", "https://github.com")
        run_id = self.environ.get("GITHUB_RUN_ID")
        if not (run_id and self.event.repository):
            return ""
        return f"[Job log]({server}/{self.event.repository}/actions/runs/{run_id})"

    def _catch_up(self, branch: str) -> None:
        # A queued run may start after later pushes; it applies the branch as
        # it is now, which already holds any earlier run's write-back.
        fetched = _git(
            ["fetch", "--quiet", "origin", f"refs/heads/{branch}"], self.root
        )
        if fetched.returncode != 0:
            raise NexusSyncError(f"could not fetch {branch}: {fetched.stderr.strip()}")
        merged = _git(["merge", "--ff-only", "--quiet", "FETCH_HEAD"], self.root)
        if merged.returncode != 0:
            self.runner.command(
                "warning",
                f"The checkout is not behind origin/{branch}; applying it as is.",
            )

    def _nexus(
        self, args: list[str], capture: bool = False
    ) -> subprocess.CompletedProcess[str]:
        """Run `nexus-sync ARGS`; stderr, and stdout unless captured, go to the log."""
        environment = {
            name: value
            for name, value in self.environ.items()
            if not name.startswith("INPUT_") and name != "GITHUB_TOKEN"
        }
        environment.update(self.inputs.nexus_environment())
        environment["GITHUB_ACTIONS"] = "true"
        sys.stdout.flush()
        result = subprocess.run(
            [sys.executable, "-m", "nexus_sync", *args],
            check=False,
            cwd=self.root,
            env=environment,
            stdout=subprocess.PIPE if capture else None,
            text=True,
        )
        if capture and result.stdout:
            self.runner.echo(result.stdout.rstrip("\n"))
        return result


def _folded(title: str, text: str) -> str:
    block = f"```\n{text.rstrip()}\n```"
    return f"<details><summary>{title}</summary>\n\n{block}\n\n</details>"


def _git(
    args: list[str], cwd: Path, *, identity: bool = False
) -> subprocess.CompletedProcess[str]:
    prefix = ["git"]
    if identity:
        prefix += ["-c", f"user.name={BOT_NAME}", "-c", f"user.email={BOT_EMAIL}"]
    return subprocess.run(
        [*prefix, *args], check=False, cwd=cwd, capture_output=True, text=True
    )


def commit_writeback(
    branch: str, command: str, root: Path, runner: Runner
) -> str | None:
    """Commit the `nexus:` blocks and the inventory and push them to `branch`.

    When the push is refused because the branch moved, the commit is rebased
    on the new tip and pushed again, up to PUSH_TRIES pushes. Returns the
    pushed commit, or None when nothing was written back.
    """
    config = load_config(root)
    _git(["add", "--update", "--", config.posts_dir], root)
    if (root / INVENTORY_FILE).exists():
        _git(["add", "--", INVENTORY_FILE], root)
    if _git(["diff", "--cached", "--quiet"], root).returncode == 0:
        runner.echo("Nothing written back: no commit.")
        return None

    message = f"{WRITEBACK_SUBJECT} after {command} [skip ci]"
    committed = _git(["commit", "--quiet", "-m", message], root, identity=True)
    if committed.returncode != 0:
        raise NexusSyncError(
            f"could not commit the write-back: {committed.stderr.strip()}"
        )

    for attempt in range(1, PUSH_TRIES + 1):
        pushed = _git(["push", "--quiet", "origin", f"HEAD:refs/heads/{branch}"], root)
        if pushed.returncode == 0:
            sha = _git(["rev-parse", "HEAD"], root).stdout.strip()
            runner.echo(f"Pushed the write-back commit {sha} to {branch}.")
            return sha

        fetched = _git(["fetch", "--quiet", "origin", f"refs/heads/{branch}"], root)
        moved = (
            fetched.returncode == 0
            and _git(
                ["merge-base", "--is-ancestor", "FETCH_HEAD", "HEAD"], root
            ).returncode
            != 0
        )
        if not moved:
            raise NexusSyncError(
                f"could not push the write-back to {branch}: {pushed.stderr.strip()}"
            )
        if attempt == PUSH_TRIES:
            break
        runner.echo(
            f"{branch} moved during the run; "
            f"rebasing the write-back (try {attempt + 1})."
        )
        rebased = _git(["rebase", "--quiet", "FETCH_HEAD"], root, identity=True)
        if rebased.returncode != 0:
            _git(["rebase", "--abort"], root)
            runner.echo(
                f"The write-back conflicts with post files changed on {branch} "
                "during the run; committing the inventory alone, and the next run "
                "writes the ids into the files."
            )
            _inventory_only(root, message)
    raise NexusSyncError(
        f"could not push the write-back: {branch} moved {PUSH_TRIES} times during "
        "the run; run the workflow again to write the ids back"
    )


def _inventory_only(root: Path, message: str) -> None:
    """Put the inventory of the write-back alone on the branch's new tip.

    The inventory names the message of each post file, so a file whose
    `nexus:` block did not land still keeps its message on the next run
    (never a second create); that run writes the block.
    """
    ours = load_inventory(root)
    _git(["reset", "--quiet", "--hard", "FETCH_HEAD"], root)
    save_inventory(root, {**load_inventory(root), **ours})
    _git(["add", "--", INVENTORY_FILE], root)
    if _git(["diff", "--cached", "--quiet"], root).returncode == 0:
        raise NexusSyncError(
            "the write-back conflicts with commits pushed during the run; run "
            "the workflow again to write it back"
        )
    committed = _git(["commit", "--quiet", "-m", message], root, identity=True)
    if committed.returncode != 0:
        raise NexusSyncError(
            f"could not commit the inventory: {committed.stderr.strip()}"
        )


def run(environ: Mapping[str, str]) -> int:
    """Run the Action with the inputs and event the runner put in `environ`."""
    runner = Runner(environ)
    # Mask first, before anything else can print.
    for secret in dict.fromkeys(environ.get(name) for name in SECRETS):
        if secret:
            runner.mask(secret)
    try:
        inputs = Inputs.from_environ(environ)
        return Action(inputs, Event.from_environ(environ), runner).run()
    except NexusSyncError as error:
        runner.command("error", str(error))
        return 1
    finally:
        runner.write_outputs()


def main() -> None:
    logging.basicConfig(
        level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s"
    )
    sys.exit(run(os.environ))


if __name__ == "__main__":
    main()
