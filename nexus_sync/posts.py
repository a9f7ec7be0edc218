"""Post files into Post values, with every problem reported at its line."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import logging
import unicodedata
from importlib import resources
from pathlib import Path
from typing import Any, Iterable

import frontmatter
import jsonschema
import yaml

from . import lengths, yamlstrict
from .config import Config
from .errors import PostError

log = logging.getLogger(__name__)

MAX_FILE_BYTES = 1_000_000
PLATFORMS = ("x", "linkedin", "bluesky")

# The frontmatter text starts with the newline of the opening `---` line, and
# YAML counts lines from 0, so line 0 of the YAML is line 1 of the file.
_FRONTMATTER_LINE_OFFSET = 1

_handler = frontmatter.YAMLHandler()


@dataclasses.dataclass(frozen=True)
class NexusBlock:
    """What nexus-sync last wrote into a file's `nexus:` block."""

    id: str | None = None
    status: str | None = None
    published_at: str | None = None
    error: str | None = None
    external_ids: tuple[tuple[str, str], ...] = ()
    urls: tuple[tuple[str, str], ...] = ()

    def as_yaml(self) -> dict[str, Any]:
        """The block in the order and spelling that the file shows."""
        fields = {
            "id": self.id,
            "status": self.status,
            "publishedAt": self.published_at,
            "error": self.error,
            "externalIds": dict(self.external_ids) or None,
            "urls": dict(self.urls) or None,
        }
        return {key: value for key, value in fields.items() if value is not None}


@dataclasses.dataclass(frozen=True)
class Post:
    """One post file as the service should see it."""

    path: str
    content: str
    platforms: tuple[str, ...]
    title: str | None = None
    scheduled_for: str | None = None
    draft: bool = False
    publish_now: bool = False
    nexus: NexusBlock = NexusBlock()
    line: int = 1
    scheduled_line: int = 1
    body_line: int = 1

    @property
    def desired_schedule(self) -> str | None:
        """The UTC time to send, or None for a draft."""
        return None if self.draft else self.scheduled_for


def normalize_content(text: str) -> str:
    """The content as compared and sent: the same rule for files and the service."""
    text = text.removeprefix("\ufeff").replace("\r\n", "\n").replace("\r", "\n")
    lines = unicodedata.normalize("NFC", text).split("\n")
    while lines and not lines[0].strip():
        lines.pop(0)
    while lines and not lines[-1].strip():
        lines.pop()
    return "\n".join(lines)


def to_utc(value: str) -> str:
    """An ISO 8601 time with an offset, in the `...Z` form the service uses."""
    moment = dt.datetime.fromisoformat(value).astimezone(dt.timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def find_post_files(config: Config) -> list[Path]:
    """Every `*.md` file under the posts folder, in a stable order."""
    base = config.posts_path
    if not base.is_dir():
        return []
    return sorted(base.rglob("*.md"))


def load_posts(
    config: Config, paths: Iterable[Path] | None = None
) -> tuple[list[Post], list[PostError]]:
    """Read every post file; return the good posts and all problems found."""
    schema = post_schema()
    posts: list[Post] = []
    problems: list[PostError] = []
    for path in find_post_files(config) if paths is None else paths:
        try:
            posts.append(load_post(path, config, schema))
        except InvalidPost as invalid:
            problems.extend(invalid.problems)
    log.info("read %d post file(s), %d problem(s)", len(posts), len(problems))
    return posts, problems


class InvalidPost(Exception):
    def __init__(self, problems: list[PostError]) -> None:
        super().__init__(problems)
        self.problems = problems


def relative_name(path: Path, config: Config) -> str:
    try:
        return path.absolute().relative_to(config.root.absolute()).as_posix()
    except ValueError:
        return path.as_posix()


def load_post(path: Path, config: Config, schema: dict | None = None) -> Post:
    """Read one post file, raising InvalidPost with every problem in it."""
    name = relative_name(path, config)
    text = _read_text(path, name, config)
    front, body, body_line = _split(text, name)
    node, data = _parse_frontmatter(front, name)

    problems = list(_schema_problems(data, node, name, schema or post_schema()))
    if problems:
        raise InvalidPost(problems)

    content = normalize_content(body)
    platforms = tuple(p.lower() for p in data["platforms"])
    scheduled_line = _line_of(node, ("scheduledFor",))
    scheduled_for = None
    if "scheduledFor" in data:
        try:
            scheduled_for = parse_schedule(data["scheduledFor"], config)
        except ValueError as error:
            problems.append(PostError(name, scheduled_line, str(error)))

    for message in lengths.problems(content, platforms):
        problems.append(PostError(name, body_line, message))
    if problems:
        raise InvalidPost(problems)

    return Post(
        path=name,
        content=content,
        platforms=platforms,
        title=data.get("title"),
        scheduled_for=scheduled_for,
        draft=data.get("draft", False),
        publish_now=data.get("publish") == "now",
        nexus=_nexus_block(data.get("nexus") or {}),
        line=1,
        scheduled_line=scheduled_line,
        body_line=body_line,
    )


def parse_schedule(value: str, config: Config) -> str:
    """`scheduledFor` as a UTC time, reading a local time in the configured zone."""
    try:
        moment = dt.datetime.fromisoformat(value)
    except ValueError:
        raise ValueError(f"scheduledFor {value!r} is not an ISO 8601 time") from None
    if moment.tzinfo is not None:
        return to_utc(value)

    zone = config.zone
    if zone is None:
        raise ValueError(
            f"scheduledFor {value!r} has no UTC offset; add one "
            f"(e.g. {value}+01:00 or {value}Z) or set timezone in nexus-sync.yaml"
        )

    # A wall-clock time maps to one instant, to none (skipped by a DST jump)
    # or to two (repeated when the clocks go back); only the first is usable.
    early = moment.replace(tzinfo=zone, fold=0)
    late = moment.replace(tzinfo=zone, fold=1)
    if early.utcoffset() != late.utcoffset():
        first, second = (t.astimezone(dt.timezone.utc) for t in (early, late))
        round_trip = first.astimezone(zone).replace(tzinfo=None)
        stamp = "%Y-%m-%dT%H:%M:%SZ"
        if round_trip != moment:
            raise ValueError(
                f"scheduledFor {value} does not exist in {config.timezone} (the "
                f"clocks skip it); did you mean {second.strftime(stamp)} or "
                f"{first.strftime(stamp)}? Write the time with its offset"
            )
        raise ValueError(
            f"scheduledFor {value} occurs twice in {config.timezone}: "
            f"{first.strftime(stamp)} or {second.strftime(stamp)}; write the "
            "time with its offset to choose"
        )
    return to_utc(early.isoformat())


def post_schema() -> dict:
    return _load_schema("post.schema.json")


_schemas: dict[str, dict] = {}


def _load_schema(name: str) -> dict:
    if name not in _schemas:
        text = resources.files("nexus_sync").joinpath("schema", name).read_text("utf-8")
        _schemas[name] = json.loads(text)
    return _schemas[name]


def _read_text(path: Path, name: str, config: Config) -> str:
    if path.is_symlink():
        target = path.resolve()
        if not target.is_relative_to(config.posts_path.resolve()):
            raise InvalidPost(
                [PostError(name, 1, "symbolic link to a file outside the posts folder")]
            )
    try:
        size = path.stat().st_size
    except OSError as error:
        raise InvalidPost([PostError(name, 1, f"cannot read: {error.strerror}")])
    if size > MAX_FILE_BYTES:
        raise InvalidPost(
            [PostError(name, 1, f"file is {size} bytes; posts are at most 1 MB")]
        )

    data = path.read_bytes()
    if b"\x00" in data:
        raise InvalidPost([PostError(name, 1, "binary file, not a Markdown post")])
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        line = data[: error.start].count(b"\n") + 1
        raise InvalidPost(
            [PostError(name, line, f"not UTF-8 (byte {error.start}); save as UTF-8")]
        ) from None
    return text.removeprefix("\ufeff").replace("\r\n", "\n")


def _split(text: str, name: str) -> tuple[str, str, int]:
    if not _handler.detect(text):
        raise InvalidPost(
            [PostError(name, 1, "no frontmatter: a post starts with a '---' line")]
        )
    try:
        front, body = _handler.split(text)
    except ValueError:
        raise InvalidPost(
            [PostError(name, 1, "the frontmatter opened here never closes with '---'")]
        ) from None
    body_line = front.count("\n") + 2
    return front, body, body_line


def _parse_frontmatter(front: str, name: str) -> tuple[yaml.Node | None, dict]:
    try:
        node = yamlstrict.compose(front)
        data = yamlstrict.construct(node) if node is not None else {}
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        line = mark.line + _FRONTMATTER_LINE_OFFSET if mark else 1
        raise InvalidPost([PostError(name, line, _yaml_message(error))]) from None
    except (yaml.YAMLError, RecursionError) as error:
        raise InvalidPost([PostError(name, 1, f"invalid YAML: {error}")]) from None
    if not isinstance(data, dict):
        raise InvalidPost(
            [PostError(name, 2, "the frontmatter must be a mapping of keys")]
        )
    if isinstance(data.get("platforms"), list):
        data["platforms"] = [
            p.lower() if isinstance(p, str) else p for p in data["platforms"]
        ]
    return node, data


def _yaml_message(error: yaml.MarkedYAMLError) -> str:
    parts = [error.context, error.problem]
    return "invalid YAML: " + "; ".join(p for p in parts if p)


def _schema_problems(
    data: dict, node: yaml.Node | None, name: str, schema: dict
) -> Iterable[PostError]:
    validator = jsonschema.Draft202012Validator(
        schema, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER
    )
    for error in sorted(validator.iter_errors(data), key=lambda e: list(e.path)):
        where = tuple(error.absolute_path)
        line = _line_of(node, where) if node is not None else 1
        field = ".".join(str(p) for p in where) or "frontmatter"
        yield PostError(name, line, f"{field}: {_schema_message(error)}")


def _schema_message(error: jsonschema.ValidationError) -> str:
    if error.validator == "additionalProperties":
        return error.message.replace("Additional properties", "unknown key(s)")
    if error.validator == "anyOf" and error.schema_path[-2:] and "scheduledFor" in [
        *error.path
    ]:
        return (
            f"{error.instance!r} is not an ISO 8601 time such as "
            "2030-01-20T10:00:00+01:00"
        )
    return error.message


def _line_of(node: yaml.Node | None, where: tuple) -> int:
    """The file line of the value at `where`, or of its nearest parent."""
    line = 1 if node is None else node.start_mark.line + _FRONTMATTER_LINE_OFFSET
    for step in where:
        if isinstance(node, yaml.MappingNode):
            match = [(k, v) for k, v in node.value if k.value == step]
            if not match:
                break
            key, node = match[0]
            line = key.start_mark.line + _FRONTMATTER_LINE_OFFSET
        elif isinstance(node, yaml.SequenceNode) and isinstance(step, int):
            node = node.value[step]
            line = node.start_mark.line + _FRONTMATTER_LINE_OFFSET
        else:
            break
    return line


def _nexus_block(data: dict) -> NexusBlock:
    return NexusBlock(
        id=data.get("id"),
        status=data.get("status"),
        published_at=data.get("publishedAt"),
        error=data.get("error"),
        external_ids=tuple(sorted((data.get("externalIds") or {}).items())),
        urls=tuple(sorted((data.get("urls") or {}).items())),
    )
