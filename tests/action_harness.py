"""Runs the steps of action.yml the way the Actions runner does, on this machine.

Each `run:` step runs as `bash --noprofile --norc -eo pipefail FILE` with the
runner's environment: GITHUB_EVENT_NAME and GITHUB_EVENT_PATH (an event file),
GITHUB_OUTPUT and GITHUB_STEP_SUMMARY (files, read back after the step),
GITHUB_API_URL (the local fake), RUNNER_TEMP, and the `${{ }}` expressions
the action uses (inputs with their defaults, github.*, steps.*.outputs). The
runner's workflow commands are read from stdout: `::add-mask::` lines are
consumed as the runner consumes them, annotations are collected.

Skipped: `uses:` steps (setup-python is GitHub's) and the `install` step,
whose `pip install` of this checkout is what the test environment already
has; both only provide the `python` with nexus-sync that is first on PATH here.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

PROJECT = Path(__file__).resolve().parent.parent
SKIPPED_IDS = {"install"}
EXPRESSION = re.compile(r"\$\{\{\s*(.*?)\s*\}\}")
COMMAND = re.compile(r"^::([\w-]+)(?: ([^:]*))?::(.*)$")


@dataclasses.dataclass
class ActionRun:
    """Everything a run left behind that a person could see."""

    code: int
    log: str
    masks: list[str]
    annotations: list[tuple[str, str]]
    outputs: dict[str, str]
    summary: str
    skipped: list[str]

    def captured(self) -> str:
        return "\n".join(
            [self.log, self.summary, json.dumps(self.outputs)]
            + [message for _, message in self.annotations]
        )


class Unsupported(Exception):
    """action.yml uses something this harness does not emulate."""


def run_action(
    workspace: Path,
    event_name: str,
    event: dict[str, Any],
    ref: str,
    inputs: dict[str, str],
    github: dict[str, str],
    temp: Path,
) -> ActionRun:
    """Run action.yml in `workspace` (a checkout) for one event."""
    action = yaml.safe_load((PROJECT / "action.yml").read_text(encoding="utf-8"))
    temp.mkdir(parents=True, exist_ok=True)
    event_path = temp / "event.json"
    event_path.write_text(json.dumps(event), encoding="utf-8")
    summary_path = temp / "step_summary.md"
    summary_path.write_text("")

    context: dict[str, Any] = {
        "github": {
            "action_path": str(PROJECT),
            "workspace": str(workspace),
            "event_name": event_name,
            "ref": ref,
            **github,
        },
        "steps": {},
    }
    given = {name.lower(): value for name, value in inputs.items()}
    unknown = set(given) - set(action["inputs"])
    if unknown:
        raise Unsupported(f"inputs action.yml does not declare: {sorted(unknown)}")
    context["inputs"] = {
        name: given.get(name, _evaluate(str(spec.get("default", "")), context))
        for name, spec in action["inputs"].items()
    }

    base = {
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        "HOME": str(temp / "home"),
        "LANG": "C.UTF-8",
        "CI": "true",
        "GITHUB_ACTIONS": "true",
        "GITHUB_EVENT_NAME": event_name,
        "GITHUB_EVENT_PATH": str(event_path),
        "GITHUB_REF": ref,
        "GITHUB_REPOSITORY": github["repository"],
        "GITHUB_API_URL": github["api_url"],
        "GITHUB_SERVER_URL": "https://github.com",
        "GITHUB_RUN_ID": "4242",
        "GITHUB_WORKSPACE": str(workspace),
        "GITHUB_ACTION_PATH": str(PROJECT),
        "GITHUB_STEP_SUMMARY": str(summary_path),
        "RUNNER_TEMP": str(temp),
        "NO_COLOR": "1",
    }
    (temp / "home").mkdir(exist_ok=True)

    log: list[str] = []
    masks: list[str] = []
    annotations: list[tuple[str, str]] = []
    skipped: list[str] = []
    code = 0
    for index, step in enumerate(action["runs"]["steps"]):
        name = step.get("id") or step.get("name") or step.get("uses")
        if "uses" in step or step.get("id") in SKIPPED_IDS:
            skipped.append(name)
            continue
        if step.get("shell") != "bash" or "if" in step:
            raise Unsupported(f"step {name}: only unconditional bash steps")

        output_path = temp / f"output-{index}"
        output_path.write_text("")
        script = temp / f"step-{index}.sh"
        script.write_text(_evaluate(step["run"], context), encoding="utf-8")
        environment = {**base, "GITHUB_OUTPUT": str(output_path)}
        for key, value in (step.get("env") or {}).items():
            environment[key] = _evaluate(str(value), context)
        directory = workspace / _evaluate(step.get("working-directory", "."), context)

        done = subprocess.run(
            ["bash", "--noprofile", "--norc", "-eo", "pipefail", str(script)],
            check=False,
            cwd=directory,
            env=environment,
            capture_output=True,
            text=True,
            timeout=300,
        )
        for line in done.stdout.splitlines():
            command = COMMAND.match(line)
            if command and command.group(1) == "add-mask":
                masks.append(command.group(3))
                continue
            if command:
                annotations.append((command.group(1), command.group(3)))
            log.append(line)
        log.extend(done.stderr.splitlines())
        if "id" in step:
            context["steps"][step["id"]] = {"outputs": _read_outputs(output_path)}
        code = done.returncode
        if code != 0:
            break

    outputs = {
        name: _evaluate(spec["value"], context)
        for name, spec in action.get("outputs", {}).items()
    }
    return ActionRun(
        code=code,
        log="\n".join(log),
        masks=masks,
        annotations=annotations,
        outputs=outputs,
        summary=summary_path.read_text(encoding="utf-8"),
        skipped=skipped,
    )


def _evaluate(text: str, context: dict[str, Any]) -> str:
    def value(match: re.Match[str]) -> str:
        path = match.group(1)
        if not re.fullmatch(r"(inputs|github|steps)(\.[\w-]+)+", path):
            raise Unsupported(f"expression ${{{{ {path} }}}}")
        found: Any = context
        for part in path.split("."):
            if not isinstance(found, dict):
                raise Unsupported(f"expression ${{{{ {path} }}}}")
            # GitHub gives an empty string for what a context lacks.
            found = found.get(part, {})
        return found if isinstance(found, str) else ""

    return EXPRESSION.sub(value, text)


def _read_outputs(path: Path) -> dict[str, str]:
    """GITHUB_OUTPUT in both of its forms: `name=value` and `name<<DELIMITER`."""
    outputs: dict[str, str] = {}
    lines = iter(path.read_text(encoding="utf-8").splitlines())
    for line in lines:
        if "<<" in line and ("=" not in line or line.index("<<") < line.index("=")):
            name, delimiter = line.split("<<", 1)
            value = []
            for more in lines:
                if more == delimiter:
                    break
                value.append(more)
            outputs[name] = "\n".join(value)
        elif "=" in line:
            name, value = line.split("=", 1)
            outputs[name] = value
    return outputs
