"""The `nexus-sync` command: the only module that prints."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import json
import logging
import os
import socket
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import click

from . import __version__, render
from . import plan as plans
from .apply import Result, apply_plan
from .auth import RedactingFormatter, redact
from .config import Config, load_config
from .errors import (
    ConfigError,
    FileProblem,
    InvalidConfig,
    InvalidPosts,
    NexusSyncError,
)
from .importer import import_messages
from .plan import Message, Plan, check_apply
from .posts import load_posts
from .session import (
    LOCAL_STATE_DIR,
    check_posts_dir,
    ignore_state_dir,
    open_client,
    plan_for,
)

log = logging.getLogger("nexus_sync")

FORMATS = ("text", "json", "markdown")


def _setup_logging(verbose: int) -> None:
    level = logging.WARNING if verbose == 0 else logging.INFO
    if verbose > 1:
        level = logging.DEBUG
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(RedactingFormatter("%(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # botocore's debug lines carry request and answer bodies (a password, the
    # tokens), escaped in ways no redaction can be sure to catch.
    for name in ("botocore", "boto3", "urllib3"):
        logging.getLogger(name).setLevel(max(level, logging.WARNING))


def _errors_as_exit(function: Callable, sends: bool = True) -> Callable:
    """Turn the errors people cause into a message and exit status 1.

    `sends` says whether the command would send anything to the service, so
    that the list of problems can say that nothing was.
    """

    @functools.wraps(function)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return function(*args, **kwargs)
        except (InvalidPosts, InvalidConfig) as invalid:
            _report_problems(invalid.problems, sends)
            sys.exit(1)
        except NexusSyncError as error:
            click.echo(redact(f"Error: {error}"), err=True)
            sys.exit(1)
        except click.ClickException:
            raise
        except Exception as error:
            # A bug of ours, or an answer no one foresaw: said in one line,
            # secrets hidden; the traceback is in the debug log (-vv).
            log.debug("unexpected error", exc_info=True)
            click.echo(
                redact(
                    f"Error: unexpected {type(error).__name__}: {error} (run "
                    "`nexus-sync -vv ...` to see where; please report it)"
                ),
                err=True,
            )
            sys.exit(1)

    return wrapper


def _report_problems(problems: list[FileProblem], sends: bool) -> None:
    """Each problem as `path:line: message`, and as an annotation in Actions."""
    in_actions = os.environ.get("GITHUB_ACTIONS") == "true"
    for problem in problems:
        click.echo(str(problem), err=True)
        if in_actions:
            click.echo(
                f"::error file={_escape_property(problem.path)},"
                f"line={problem.line}::{_escape_data(problem.message)}"
            )
    found = f"{len(problems)} problem(s) found"
    click.echo(f"{found}; nothing was sent." if sends else f"{found}.", err=True)


def _escape_data(text: str) -> str:
    # GitHub's workflow-command escaping (actions/toolkit, command.ts).
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _escape_property(text: str) -> str:
    return _escape_data(text).replace(":", "%3A").replace(",", "%2C")


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="nexus-sync")
@click.option(
    "-C",
    "--root",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    default=".",
    help="The repository root (where nexus-sync.yaml and posts/ are).",
)
@click.option(
    "-v", "--verbose", count=True, help="More logging on stderr (-vv: debug)."
)
@click.pass_context
def main(ctx: click.Context, root: Path, verbose: int) -> None:
    """Keep social posts as Markdown files and reconcile them with Nexus Share."""
    _setup_logging(verbose)
    ctx.obj = {"root": root.resolve()}


def _connection_options(function: Callable) -> Callable:
    options = [
        click.option(
            "--local",
            is_flag=True,
            help=f"Use the embedded emulator (state in {LOCAL_STATE_DIR}/).",
        ),
        click.option(
            "--api-url",
            envvar="NEXUS_API_URL",
            show_envvar=True,
            help="Base URL of the Nexus Share API.",
        ),
    ]
    for option in reversed(options):
        function = option(function)
    return function


def _config(ctx: click.Context, **overrides: Any) -> Config:
    return load_config(ctx.obj["root"], overrides=overrides)


@main.command()
@_connection_options
@click.option(
    "--format",
    "output_format",
    type=click.Choice(FORMATS),
    default="text",
    help="How to print the plan.",
)
@click.option(
    "--detailed-exitcode",
    is_flag=True,
    help="Exit 0 when there is nothing to do, 2 when there are changes, 1 on error.",
)
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Also save the plan as JSON, for `nexus-sync apply FILE`.",
)
@click.option(
    "--prune-unmanaged",
    is_flag=True,
    help="Also delete drafts and scheduled messages that no post file manages.",
)
@click.pass_context
@_errors_as_exit
def plan(
    ctx: click.Context,
    local: bool,
    api_url: str | None,
    output_format: str,
    detailed_exitcode: bool,
    out: Path | None,
    prune_unmanaged: bool,
) -> None:
    """Show what apply would change, without changing anything."""
    config = _config(ctx, api_url=api_url)

    async def run() -> Plan:
        async with open_client(config, local) as client:
            return (await plan_for(config, client, prune_unmanaged))[0]

    result = asyncio.run(run())
    _print_plan(result, output_format)
    if out:
        try:
            out.write_text(render.as_json(result), encoding="utf-8")
        except OSError as error:
            raise NexusSyncError(
                f"cannot save the plan to {out}: {error.strerror}"
            ) from None
    if detailed_exitcode and result.has_changes:
        sys.exit(2)


def _print_plan(result: Plan, output_format: str) -> None:
    if output_format == "json":
        click.echo(render.as_json(result), nl=False)
    elif output_format == "markdown":
        click.echo(render.as_markdown(result), nl=False)
    else:
        color = sys.stdout.isatty() and not os.environ.get("NO_COLOR")
        click.echo(render.as_text(result, color=color), nl=False, color=color)


@main.command()
@_connection_options
@click.argument(
    "plan_file",
    required=False,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
)
@click.option("--expect-checksum", help="Refuse unless the plan has this checksum.")
@click.option("--force", is_flag=True, help="Apply even past the safety thresholds.")
@click.option(
    "--prune-unmanaged",
    is_flag=True,
    help="Also delete drafts and scheduled messages that no post file manages.",
)
@click.option(
    "--parallelism", type=click.IntRange(min=1), help="Changes in flight at once."
)
@click.pass_context
@_errors_as_exit
def apply(
    ctx: click.Context,
    local: bool,
    api_url: str | None,
    plan_file: Path | None,
    expect_checksum: str | None,
    force: bool,
    prune_unmanaged: bool,
    parallelism: int | None,
) -> None:
    """Plan, then make the account match the post files."""
    _check_expected(expect_checksum)
    config = _config(ctx, api_url=api_url, parallelism=parallelism)
    if plan_file:
        expect_checksum, saved_prune = _saved_plan(plan_file)
        prune_unmanaged = prune_unmanaged or saved_prune

    async def run() -> Result | None:
        async with open_client(config, local) as client:
            current, inventory = await plan_for(config, client, prune_unmanaged)
            click.echo(render.as_text(current), nl=False)
            check_apply(current, config, expect_checksum, force)
            if not current.has_changes:
                return None
            with _progress(current) as advance:
                return await apply_plan(
                    current, client, config, inventory, config.parallelism, advance
                )

    result = asyncio.run(run())
    if result is None:
        return
    _print_result(result)
    if not result.ok:
        sys.exit(1)


def _check_expected(expect_checksum: str | None) -> None:
    # An unset variable in CI gives an empty checksum; it is no plan at all,
    # and saying "the plan changed" would send the user looking for a change.
    if expect_checksum is not None and not expect_checksum.strip():
        raise ConfigError(
            f"--expect-checksum is empty ({expect_checksum!r}); pass the checksum "
            "that `nexus-sync plan` printed on its `Checksum:` line (in CI, check "
            "that the variable holding it is set)"
        )


def _saved_plan(plan_file: Path) -> tuple[str, bool]:
    """The checksum and the options of a plan saved by `plan --out`."""
    try:
        saved = json.loads(plan_file.read_text("utf-8"))
        checksum = saved["checksum"]
        if not isinstance(checksum, str) or not checksum.strip():
            raise ValueError("no checksum")
        return checksum, bool(saved["options"]["prune_unmanaged"])
    except (ValueError, KeyError, TypeError):
        raise NexusSyncError(
            f"{plan_file}: not a plan saved by `nexus-sync plan --out`"
        ) from None


@contextlib.contextmanager
def _progress(current: Plan) -> Iterator[Callable[[Any], None]]:
    """A progress bar on stderr when it is a terminal; nothing in logs or CI."""
    if not sys.stderr.isatty():
        yield lambda change: None
        return
    with click.progressbar(
        length=len(current.changes), label="Applying", file=sys.stderr
    ) as bar:
        yield lambda change: bar.update(1)


def _print_result(result: Result) -> None:
    for change, what in sorted(result.done, key=_by_path):
        click.echo(f"{change.where}: {what}")
    for change, error in result.failed:
        click.echo(redact(f"{change.where}: FAILED: {error}"), err=True)
    for change in result.not_started:
        click.echo(f"{change.where}: not started ({change.action})", err=True)
    click.echo(
        f"Apply: {len(result.done)} done, {len(result.failed)} failed, "
        f"{len(result.not_started)} not started."
    )


def _by_path(item: tuple[Any, str]) -> str:
    return item[0].where


@main.command()
@_connection_options
@click.pass_context
@_errors_as_exit
def refresh(ctx: click.Context, local: bool, api_url: str | None) -> None:
    """Write back what changed remotely (published, failed); change nothing else."""
    config = _config(ctx, api_url=api_url)

    async def run() -> Result:
        async with open_client(config, local) as client:
            current, inventory = await plan_for(config, client)
            writebacks = tuple(
                c for c in current.changes if c.action == plans.WRITEBACK
            )
            only = dataclasses.replace(current, changes=writebacks)
            return await apply_plan(only, client, config, inventory, 1)

    result = asyncio.run(run())
    for change, _ in result.done:
        written = ", ".join(
            f"{f.name.removeprefix('nexus.')} {render.show(f.new)}"
            for f in change.fields
        )
        click.echo(f"{change.path}: {written or 'recorded in the inventory'}")
    click.echo(f"Refresh: {len(result.done)} post file(s) updated.")
    if not result.ok:
        _print_result(result)
        sys.exit(1)


@main.command("import")
@_connection_options
@click.pass_context
@_errors_as_exit
def import_(ctx: click.Context, local: bool, api_url: str | None) -> None:
    """Write a post file for each message that no file manages, and record it."""
    config = _config(ctx, api_url=api_url)
    config.posts_path.mkdir(parents=True, exist_ok=True)

    async def run() -> list[tuple[str, Message]]:
        async with open_client(config, local) as client:
            current, inventory = await plan_for(config, client)
            return import_messages(list(current.unmanaged), config, inventory)

    written = asyncio.run(run())
    for path, message in written:
        click.echo(f"{path}: imported {message.id} ({message.status})")
    click.echo(f"Import: {len(written)} post file(s) written.")

    # The service may hold content that a post file may not (too long for a
    # platform, say); the next plan would stop on it, so say so now.
    _, problems = load_posts(config, [config.root / path for path, _ in written])
    for problem in problems:
        click.echo(f"Warning: {problem}", err=True)
    if problems:
        click.echo(
            f"{len(problems)} problem(s) in imported files; fix them before the "
            "next plan.",
            err=True,
        )


@main.command()
@click.argument("paths", nargs=-1, type=click.Path(path_type=Path))
@click.pass_context
@functools.partial(_errors_as_exit, sends=False)
def validate(ctx: click.Context, paths: tuple[Path, ...]) -> None:
    """Check post files offline: schema, lengths and times.

    PATHS are files or folders (default: the posts folder). Every problem of
    every file is listed as `path:line: message`; the exit status is 1 when
    there is any.
    """
    config = _config(ctx)
    if not paths:
        check_posts_dir(config)
    files = _expand(paths) if paths else None
    posts, problems = load_posts(config, files)
    if problems:
        raise InvalidPosts(problems)
    click.echo(f"{len(posts)} post file(s) valid.")


def _expand(paths: tuple[Path, ...]) -> list[Path]:
    files: dict[Path, None] = {}
    for path in paths:
        if path.is_dir():
            files.update(dict.fromkeys(sorted(path.rglob("*.md"))))
        else:
            files[path] = None
    return [path for path in files if not path.is_dir()]


@main.group()
def emulator() -> None:
    """A local Nexus Share for trying nexus-sync and for tests."""


def _knob_options(command: Callable) -> Callable:
    """A flag for each emulator knob; only the flags given are set."""
    from .emulator.faults import ENDPOINTS

    endpoints = click.Choice(ENDPOINTS)
    rate = click.FloatRange(0, 1)
    seconds = click.FloatRange(min=0)
    options = [
        ("--latency-ms", seconds, "Delay of every API request, in milliseconds."),
        ("--error-rate", rate, "Fraction of requests answered 500/502/503."),
        (
            "--error-status",
            click.Choice(["500", "502", "503", "504"]),
            "A status error answers use (repeatable; default 500, 502, 503).",
        ),
        (
            "--error-endpoint",
            endpoints,
            "Fail only this endpoint, e.g. 'POST /messages' (repeatable).",
        ),
        ("--rate-429", rate, "Fraction of requests answered 429."),
        (
            "--throttle-every",
            click.IntRange(min=0),
            "Answer every Nth request 429 (0: never).",
        ),
        ("--retry-after", seconds, "Retry-After of 429 answers, in seconds."),
        ("--throttle-endpoint", endpoints, "Throttle only this endpoint (repeatable)."),
        (
            "--drop-rate",
            rate,
            "Fraction of requests that commit and then drop the connection.",
        ),
        ("--drop-endpoint", endpoints, "Drop only this endpoint (repeatable)."),
        ("--publish-failure-rate", rate, "Fraction of publishes that end FAILED."),
        (
            "--publish-delay-seconds",
            seconds,
            "How long a publish stays DIRECT, on the emulator clock.",
        ),
        ("--seed", int, "Seed of the fault and id randomness, for repeatable runs."),
    ]
    for flag, kind, text in reversed(options):
        repeatable = flag in (
            "--error-status",
            "--error-endpoint",
            "--throttle-endpoint",
            "--drop-endpoint",
        )
        metavar = "ENDPOINT" if kind is endpoints else None
        command = click.option(
            flag,
            type=kind,
            default=None,
            multiple=repeatable,
            metavar=metavar,
            help=text,
        )(command)
    return command


def _jwks_source(value: str | None) -> dict[str, Any] | str | None:
    if value is None or value.startswith(("http://", "https://")):
        return value
    try:
        jwks = json.loads(Path(value).read_text())
    except (OSError, ValueError) as error:
        raise click.BadParameter(f"cannot read a JWKS from {value}: {error}") from None
    if not isinstance(jwks, dict) or not isinstance(jwks.get("keys"), list):
        raise click.BadParameter(f'{value} is not a JWKS (no "keys" list)')
    return jwks


def _knob_values(flags: dict[str, Any]) -> dict[str, Any]:
    renamed = {
        "error_status": "error_statuses",
        "error_endpoint": "error_endpoints",
        "throttle_endpoint": "throttle_endpoints",
        "drop_endpoint": "drop_endpoints",
    }
    values = {renamed.get(name, name): value for name, value in flags.items()}
    if values.get("error_statuses"):
        values["error_statuses"] = [int(status) for status in values["error_statuses"]]
    return {name: value for name, value in values.items() if value not in (None, ())}


@emulator.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8765, show_default=True, type=int)
@click.option(
    "--state-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=LOCAL_STATE_DIR,
    show_default=True,
    help="Where the database and the signing key live.",
)
@click.option(
    "--trust-jwks",
    metavar="FILE_OR_URL",
    callback=lambda context, parameter, value: _jwks_source(value),
    help="Accept tokens signed by this JWKS (e.g. a Cognito user pool's) "
    "instead of the emulator's own. A URL is fetched when first needed.",
)
@_knob_options
def emulator_serve(
    host: str,
    port: int,
    state_dir: Path,
    trust_jwks: dict[str, Any] | str | None,
    **flags: Any,
) -> None:
    """Serve the emulator over HTTP until interrupted."""
    import uvicorn

    from .emulator import Emulator, Knobs, create_app
    from .emulator.faults import check_knobs

    # The flags are the knobs it starts with, and returns to on a reset.
    knobs = Knobs(**check_knobs(_knob_values(flags)))
    # Bound here, so that a port in use is told before anything is announced.
    # IPPROTO_TCP named, or asyncio leaves Nagle's algorithm on for each
    # connection, and every answer waits 40 ms for a delayed ACK.
    listening = socket.socket(
        socket.AF_INET6 if ":" in host else socket.AF_INET,
        socket.SOCK_STREAM,
        socket.IPPROTO_TCP,
    )
    listening.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        listening.bind((host, port))
    except OSError as error:
        listening.close()
        raise click.ClickException(
            f"cannot listen on {host}:{port}: {error.strerror}; choose another --port"
        ) from None
    instance = Emulator(state_dir, knobs=knobs, trusted_jwks=trust_jwks)
    ignore_state_dir(state_dir)
    click.echo(f"Nexus Share emulator on http://{host}:{port} (state in {state_dir})")
    server = uvicorn.Server(
        uvicorn.Config(create_app(instance), host=host, port=port, log_level="warning")
    )
    server.run(sockets=[listening])


@emulator.command("token")
@click.option("--user", required=True, help="The user the token is for.")
@click.option("--ttl", default=3600.0, show_default=True, help="Seconds it is valid.")
@click.option(
    "--state-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=LOCAL_STATE_DIR,
    show_default=True,
)
def emulator_token(user: str, ttl: float, state_dir: Path) -> None:
    """Print a token that the emulator with this state folder accepts."""
    from .emulator.tokens import KEY_FILE, Signer

    # A new key here would sign tokens that the running emulator refuses.
    if not (state_dir / KEY_FILE).exists():
        raise click.ClickException(
            f"no emulator in {state_dir}/ (it has no {KEY_FILE}): run this where "
            "`nexus-sync emulator serve` runs, or give the --state-dir it uses"
        )
    click.echo(Signer(state_dir).mint(user, ttl))
