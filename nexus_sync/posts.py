"""Post files into Post values, with every problem reported at its line."""

from __future__ import annotations

import calendar
import dataclasses
import datetime as dt
import functools
import hashlib
import importlib.util
import json
import logging
import os
import re
import stat
import sys
import unicodedata
from collections.abc import Callable, Iterable
from importlib import resources
from pathlib import Path
from typing import Any

import fastjsonschema
import jsonschema
import yaml

from . import lengths, yamlstrict
from .config import Config
from .errors import PostError
from .postcache import PostCache

log = logging.getLogger(__name__)

MAX_FILE_BYTES = 1_000_000
PLATFORMS = ("x", "linkedin", "bluesky")

# The frontmatter's YAML starts on the line after the opening `---`.
_YAML_FIRST_LINE = 2


# The keys of a nexus: block, in the order it is written.
BLOCK_KEYS = ("id", "status", "publishedAt", "error", "externalIds", "urls")


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
        values = (
            self.id,
            self.status,
            self.published_at,
            self.error,
            dict(self.external_ids) or None,
            dict(self.urls) or None,
        )
        fields = dict(zip(BLOCK_KEYS, values, strict=True))
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
    moment = dt.datetime.fromisoformat(value).astimezone(dt.UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def find_post_files(config: Config) -> tuple[list[str], list[PostError]]:
    """Every `*.md` file under the posts folder in a stable order, and the
    folders that could not be searched.

    Paths come as strings: at thousands of files, making Path objects costs
    more than reading the folder.
    """
    found: list[str] = []
    problems: list[PostError] = []
    base = config.posts_path
    if not base.is_dir():
        return found, problems

    # A folder that is not searched would have its posts taken for deleted
    # files, and their messages deleted: it is an error, never a skip.
    def unreadable(error: OSError) -> None:
        name = relative_name(error.filename or base, config)
        problems.append(PostError(name, 1, f"cannot read the folder: {error.strerror}"))

    # os.walk, unlike Path.rglob, knows a folder named like a post without a
    # stat of every file.
    for folder, folders, names in os.walk(base, onerror=unreadable):
        for name in names:
            # b.MD is b.md renamed by an editor or a case-insensitive disk;
            # skipped, its post would look deleted.
            suffix = name[-3:].lower()
            if suffix == ".md" and not name.startswith(".#"):
                found.append(os.path.join(folder, name))
            elif name.lower().endswith(".markdown"):
                problems.append(
                    PostError(
                        relative_name(os.path.join(folder, name), config),
                        1,
                        f"a post file's name ends in .md; rename it to "
                        f"{name[: -len('.markdown')]}.md",
                    )
                )
        for name in folders:
            link = os.path.join(folder, name)
            if os.path.islink(link):
                problems.append(
                    PostError(
                        relative_name(link, config),
                        1,
                        "symbolic link to a folder; nexus-sync follows no links "
                        "(the posts behind one would look deleted whenever it "
                        "changed); put the folder itself here instead",
                    )
                )
    found.sort(key=lambda path: path.split(os.sep))
    return found, problems


def load_posts(
    config: Config, paths: Iterable[Path | str] | None = None
) -> tuple[list[Post], list[PostError]]:
    """Read every post file; return the good posts and all problems found."""
    posts: list[Post] = []
    problems: list[PostError] = []
    every = paths is None
    if paths is None:
        paths, problems = find_post_files(config)
    cache = PostCache.open(config.root, _fingerprint())
    checked = 0
    for path in paths:
        name = relative_name(path, config)
        try:
            data = _read_bytes(path, name, config)
            post = _from_record(cache.get(name, data), name, config)
            if post is None:
                checked += 1
                post, local_schedule = _parse(_decode(data, name), name, config)
                cache.put(name, data, _record(post, local_schedule))
            posts.append(post)
        except InvalidPost as invalid:
            problems.extend(invalid.problems)
    # Only a reading of every file knows which entries are for files now gone.
    cache.save(prune=every)
    log.info(
        "read %d post file(s) (%d checked, the others unchanged since checked), "
        "%d problem(s)",
        len(posts),
        checked,
        len(problems),
    )
    return posts, problems


class InvalidPost(Exception):
    """Every problem of one file; `load_posts` gathers them for all files."""

    def __init__(self, problems: list[PostError]) -> None:
        super().__init__(problems)
        self.problems = problems


def relative_name(path: Path | str, config: Config) -> str:
    """The file's identity: its path from the repository root."""
    root = _root_prefix(config.root)
    absolute = str(path)
    if not absolute.startswith(root):
        absolute = os.path.abspath(path)
    if absolute.startswith(root):
        return absolute[len(root) :].replace(os.sep, "/")
    return Path(path).as_posix()


@functools.lru_cache(maxsize=8)
def _root_prefix(root: Path) -> str:
    return os.path.join(os.path.abspath(root), "")


def load_post(path: Path, config: Config, schema: dict | None = None) -> Post:
    """Read one post file, raising InvalidPost with every problem in it."""
    name = relative_name(path, config)
    text = _decode(_read_bytes(path, name, config), name)
    return _parse(text, name, config, schema)[0]


def _parse(
    text: str, name: str, config: Config, schema: dict | None = None
) -> tuple[Post, str | None]:
    """The post in `text`, and its scheduledFor as written."""
    conflict = conflict_line(text)
    if conflict is not None:
        raise _refuse(
            name,
            "a merge conflict (git's <<<<<<< and >>>>>>> lines); resolve it and "
            "remove the markers",
            conflict,
        )
    front, body, body_line = _split(text, name)
    node, data = _parse_frontmatter(front, name)

    # Every check runs, so that one pass shows the author all that is wrong;
    # a check whose input the schema refused is skipped, not reported twice.
    if schema is None and _quick_check()(data):
        schema_problems = []
    else:
        validator = _validator() if schema is None else _new_validator(schema)
        schema_problems = yamlstrict.schema_problems(
            validator, data, node, _YAML_FIRST_LINE
        )
    problems = [PostError(name, line, message) for line, _, message in schema_problems]
    refused = {where[0] for _, where, _ in schema_problems if where}

    scheduled_line = yamlstrict.line_of(node, ("scheduledFor",), _YAML_FIRST_LINE)
    scheduled_for = None
    if "scheduledFor" in data and "scheduledFor" not in refused:
        try:
            scheduled_for = parse_schedule(data["scheduledFor"], config)
        except ValueError as error:
            problems.append(PostError(name, scheduled_line, str(error)))

    if data.get("draft") is True and data.get("publish") == "now":
        problems.append(
            PostError(
                name,
                yamlstrict.line_of(node, ("publish",), _YAML_FIRST_LINE),
                "publish: now and draft: true contradict each other; remove one",
            )
        )

    content = normalize_content(body)
    platforms = _platforms(data.get("platforms"))
    for message in lengths.problems(content, platforms):
        problems.append(PostError(name, body_line, message))

    if problems:
        raise InvalidPost(sorted(problems, key=lambda p: p.line))
    post = Post(
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
    # A local time is kept as written: its reading depends on the zone's rules.
    local = scheduled_for is not None and not _has_offset(data["scheduledFor"])
    return post, data["scheduledFor"] if local else None


# A date and a time, with or without a UTC offset: the form that the schema
# lets through. Whether that day, time and offset exist is checked here, so
# that the message can name the part that is wrong.
_SCHEDULE_FORM = re.compile(
    r"(?P<date>(?P<year>[0-9]{4})-(?P<month>[0-9]{2})-(?P<day>[0-9]{2}))"
    r"(?P<separator>[Tt ])(?P<hour>[0-9]{2}):(?P<minute>[0-9]{2})"
    r"(?::(?P<second>[0-9]{2})(?P<fraction>\.[0-9]+)?)?"
    r"(?P<offset>[Zz]|[+-](?P<offset_hour>[0-9]{2}):(?P<offset_minute>[0-9]{2}))?"
)
_WRITE_IT_LIKE = "write it like 2030-01-20T10:00:00+01:00"
# In English whatever the machine's locale, like every other message.
_MONTHS = (
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
)


def parse_schedule(value: str, config: Config) -> str:
    """`scheduledFor` as a UTC time, reading a local time in the configured zone."""
    form = _SCHEDULE_FORM.fullmatch(value)
    if form is None:
        raise ValueError(
            f"scheduledFor {value!r} is not a valid time; {_WRITE_IT_LIKE}"
        )
    problem = _schedule_problem(form)
    if problem is not None:
        raise ValueError(f"scheduledFor {value} {problem}")

    # RFC 3339 allows a lower-case T and Z; Python's parser does not.
    moment = dt.datetime.fromisoformat(value.upper())
    if moment.tzinfo is not None:
        return to_utc(moment.isoformat())

    zone = config.zone
    if zone is None:
        # The examples are written in the one form that takes an offset.
        written = moment.isoformat()
        raise ValueError(
            f"scheduledFor {value} has no UTC offset; add one "
            f"(e.g. {written}+01:00 or {written}Z) or set timezone in nexus-sync.yaml"
        )

    # A wall-clock time maps to one instant, to none (skipped when the clocks
    # go forward) or to two (repeated when they go back). Both readings are
    # offered, each written so that it can be pasted into the file.
    early = moment.replace(tzinfo=zone, fold=0)
    late = moment.replace(tzinfo=zone, fold=1)
    if early.utcoffset() != late.utcoffset():
        instants = sorted(t.astimezone(dt.UTC) for t in (early, late))
        choices = " or ".join(
            f"{t.astimezone(zone).isoformat()} ({_stamp(t)})" for t in instants
        )
        skipped = instants[0].astimezone(zone).replace(tzinfo=None) != moment
        what = "does not exist" if skipped else "occurs twice"
        why = "the clocks skip it" if skipped else "the clocks go back"
        raise ValueError(
            f"scheduledFor {value} {what} in {config.timezone} ({why}); write {choices}"
        )
    return _stamp(early.astimezone(dt.UTC))


def _schedule_problem(form: re.Match[str]) -> str | None:
    """What keeps a time of the right form from being a real one, or None."""
    year, month, day = int(form["year"]), int(form["month"]), int(form["day"])
    if year == 0:
        return f"names year 0000; years start at 0001; {_WRITE_IT_LIKE}"
    if not 1 <= month <= 12:
        return (
            f"names month {form['month']}; months run from 01 to 12; {_WRITE_IT_LIKE}"
        )
    days = calendar.monthrange(year, month)[1]
    if not 1 <= day <= days:
        return (
            f"names day {form['day']} of {_MONTHS[month - 1]} {year}, which has "
            f"{days} days; {_WRITE_IT_LIKE}"
        )
    for part, last in (("hour", 23), ("minute", 59), ("second", 59)):
        if form[part] is not None and int(form[part]) > last:
            return (
                f"names {part} {form[part]}; {part}s run from 00 to {last}; "
                f"{_WRITE_IT_LIKE}"
            )
    if form["offset_hour"] is not None and (
        int(form["offset_hour"]) > 23 or int(form["offset_minute"]) > 59
    ):
        return (
            f"has the UTC offset {form['offset']}; offsets run from -23:59 to "
            f"+23:59; {_WRITE_IT_LIKE}"
        )

    # A time with an offset must be an RFC 3339 date-time, as other tools that
    # read the files expect; Python's parser alone would also take a space
    # for the T, or no seconds.
    if form["offset"] is None:
        return None
    wrong, needed = [], []
    if form["separator"] == " ":
        wrong.append("a space between the date and the time")
        needed.append("a T between them")
    if form["second"] is None:
        wrong.append("no seconds")
        needed.append("seconds")
    if not wrong:
        return None
    written = (
        f"{form['date']}T{form['hour']}:{form['minute']}:{form['second'] or '00'}"
        f"{form['fraction'] or ''}{form['offset']}"
    )
    return (
        f"has {' and '.join(wrong)}; a time with a UTC offset needs "
        f"{' and '.join(needed)}: write {written}"
    )


def _has_offset(value: str) -> bool:
    return dt.datetime.fromisoformat(value.upper()).tzinfo is not None


def _stamp(moment: dt.datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def post_schema() -> dict:
    """schema/post.schema.json, the rules every frontmatter must follow."""
    return _load_schema("post.schema.json")


_schemas: dict[str, dict] = {}


def _load_schema(name: str) -> dict:
    if name not in _schemas:
        text = resources.files("nexus_sync").joinpath("schema", name).read_text("utf-8")
        _schemas[name] = json.loads(text)
    return _schemas[name]


def _new_validator(schema: dict) -> jsonschema.Draft202012Validator:
    return jsonschema.Draft202012Validator(
        schema, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER
    )


@functools.cache
def _validator() -> jsonschema.Draft202012Validator:
    # Built once: making a validator costs far more than using it on a file.
    return _new_validator(post_schema())


@functools.cache
def _quick_check() -> Callable[[Any], bool]:
    """Whether data passes the post schema, some twenty times faster.

    jsonschema walks the schema anew for every file, which costs more than
    reading and parsing the file; fastjsonschema compiles it to Python once.
    It only answers yes or no: for the messages and their lines, a file that
    fails is checked again by jsonschema. Both read the same schema, formats
    checked by the same function, and tests/test_posts.py checks that they
    agree. The schema's keywords mean the same in draft 7, which
    fastjsonschema implements, as in 2020-12.
    """
    schema = dict(
        post_schema(), **{"$schema": "http://json-schema.org/draft-07/schema#"}
    )
    check = fastjsonschema.compile(schema, formats={"date-time": _is_date_time})

    def passes(data: Any) -> bool:
        try:
            check(data)
        except fastjsonschema.JsonSchemaException:
            return False
        return True

    return passes


def _is_date_time(value: str) -> bool:
    checker = jsonschema.Draft202012Validator.FORMAT_CHECKER
    return checker.conforms(value, "date-time")


_CONFLICT_START = re.compile(r"^<{7}(?: |$)", re.MULTILINE)
_CONFLICT_END = re.compile(r"^>{7}(?: |$)", re.MULTILINE)


def conflict_line(text: str) -> int | None:
    """The line of the first merge conflict git left in `text`, if any."""
    start = _CONFLICT_START.search(text) if "<<<<<<<" in text else None
    if start is None or not _CONFLICT_END.search(text, start.end()):
        return None
    return text.count("\n", 0, start.start()) + 1


def _refuse(name: str, message: str, line: int = 1) -> InvalidPost:
    return InvalidPost([PostError(name, line, message)])


def _read_bytes(path: Path | str, name: str, config: Config) -> bytes:
    """The file's bytes, once it is known to be a regular file of a post's size."""

    def refuse(message: str, line: int = 1) -> InvalidPost:
        return _refuse(name, message, line)

    try:
        status = os.lstat(path)
        if stat.S_ISLNK(status.st_mode):
            path = Path(path)
            target = path.resolve()
            if not target.is_relative_to(config.posts_path.resolve()):
                raise refuse(
                    f"symbolic link to {target}, outside the posts folder "
                    f"{config.posts_dir}/; copy the file instead"
                )
            # A link to a post would post it twice, and a write-back would
            # replace the link with a file: a post is a file of its own.
            status = path.stat()
            shown = relative_name(target, config)
            raise refuse(
                f"symbolic link to {shown}; a post must be a file of its own "
                "(a link to a post would post it twice); copy the file instead"
            )
    except RuntimeError:
        # Path.resolve() raises it for a link that leads back to itself.
        raise refuse("symbolic link loop; the link never reaches a file") from None
    except OSError as error:
        raise refuse(f"cannot read the file: {error.strerror}") from None
    if not stat.S_ISREG(status.st_mode):
        raise refuse("not a regular file")
    if status.st_size > MAX_FILE_BYTES:
        raise refuse(
            f"the file has {status.st_size} bytes; a post file has at most "
            f"{MAX_FILE_BYTES} (1 MB)"
        )

    try:
        with open(path, "rb") as handle:
            return handle.read()
    except OSError as error:
        raise refuse(f"cannot read the file: {error.strerror}") from None


def _decode(data: bytes, name: str) -> str:
    """The file's text, with the line endings and byte-order mark of any editor."""

    def refuse(message: str, line: int = 1) -> InvalidPost:
        return _refuse(name, message, line)

    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise refuse("saved as UTF-16; save the file as UTF-8")
    if b"\x00" in data:
        line = data[: data.index(b"\x00")].count(b"\n") + 1
        raise refuse("binary file (it contains NUL bytes), not a Markdown post", line)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        line = data[: error.start].count(b"\n") + 1
        column = error.start - (data.rfind(b"\n", 0, error.start) + 1) + 1
        raise refuse(
            f"not UTF-8 text (byte 0x{data[error.start]:02x} at column {column}); "
            "save the file as UTF-8",
            line,
        ) from None

    # A byte-order mark and CR or CRLF line endings are how some editors save;
    # they must not change a single value, so they go before anything reads.
    return text.removeprefix("\ufeff").replace("\r\n", "\n").replace("\r", "\n")


# On text whose lines end in `\n` only, the same boundary as
# yamlstrict.BOUNDARY, found without splitting the body into lines.
_CLOSING = re.compile(r"^-{3,}[ \t]*$", re.MULTILINE)


def _split(text: str, name: str) -> tuple[str, str, int]:
    first_end = text.find("\n")
    first = text if first_end == -1 else text[:first_end]
    if not yamlstrict.BOUNDARY.match(first):
        raise InvalidPost(
            [PostError(name, 1, "no frontmatter: a post starts with a '---' line")]
        )
    close = None if first_end == -1 else _CLOSING.search(text, first_end + 1)
    if close is None:
        raise InvalidPost(
            [
                PostError(
                    name,
                    1,
                    "the frontmatter opened here never closes; end it with a "
                    "'---' line",
                )
            ]
        )
    front = text[first_end + 1 : close.start()]
    body = text[close.end() + 1 :]
    close_line = front.count("\n") + 2
    # Messages about the body point at its first line of text, or at the
    # closing `---` when there is none.
    leading = len(body) - len(body.lstrip())
    if body[leading:]:
        body_line = close_line + 1 + body.count("\n", 0, leading)
    else:
        body_line = close_line
    return front, body, body_line


# YAML's end-of-document marker; the write-back could not add a key after it.
_DOCUMENT_END = re.compile(r"^\.\.\.[ \t]*$", re.MULTILINE)


def _parse_frontmatter(front: str, name: str) -> tuple[yaml.Node | None, dict]:
    end = _DOCUMENT_END.search(front) if "..." in front else None
    if end is not None:
        raise _refuse(
            name,
            "a '...' line ends the YAML before the closing '---'; remove it",
            _YAML_FIRST_LINE + front.count("\n", 0, end.start()),
        )
    try:
        node, data = yamlstrict.load(front)
    except (yaml.YAMLError, RecursionError) as error:
        if isinstance(error, RecursionError):
            error = yaml.YAMLError("the frontmatter is nested too deeply")
        line, message = yamlstrict.yaml_problem(error, _YAML_FIRST_LINE, front)
        raise InvalidPost([PostError(name, line, message)]) from None

    if data is None:
        raise InvalidPost(
            [
                PostError(
                    name,
                    1,
                    "the frontmatter is empty; a post needs at least "
                    "platforms, e.g. platforms: [x]",
                )
            ]
        )
    if not isinstance(data, dict):
        kind = "a list" if isinstance(data, list) else "a single value"
        raise InvalidPost(
            [
                PostError(
                    name,
                    _YAML_FIRST_LINE,
                    f"the frontmatter is {kind}; it must be keys and values "
                    "such as platforms: [x]",
                )
            ]
        )
    _check_layout(node, name)
    if isinstance(data.get("platforms"), list):
        data["platforms"] = [
            p.lower() if isinstance(p, str) else p for p in data["platforms"]
        ]
    return node, data


def _check_layout(node: yaml.Node, name: str) -> None:
    # The write-back edits lines: it puts its block as a key at the start of
    # a line, which only a frontmatter of one unindented key per line can take.
    # Refused here, before anything is sent, rather than after a create.
    if node.flow_style:
        raise _refuse(
            name,
            "the frontmatter is one {...} mapping; write one key per line "
            "instead, e.g. platforms: [x]",
            _YAML_FIRST_LINE + node.start_mark.line,
        )
    for key, _ in node.value:
        if key.start_mark.column:
            raise _refuse(
                name,
                f"{key.value!r} is indented; start each key of the frontmatter "
                "at the beginning of its line",
                _YAML_FIRST_LINE + key.start_mark.line,
            )


def _platforms(value: Any) -> tuple[str, ...]:
    """The known platforms named, so lengths are checked even beside a typo."""
    if not isinstance(value, list):
        return ()
    names = [item for item in value if isinstance(item, str)]
    return tuple(p for p in dict.fromkeys(names) if p in PLATFORMS)


def _nexus_block(data: dict) -> NexusBlock:
    return NexusBlock(
        id=data.get("id"),
        status=data.get("status"),
        published_at=data.get("publishedAt"),
        error=data.get("error"),
        external_ids=tuple(sorted((data.get("externalIds") or {}).items())),
        urls=tuple(sorted((data.get("urls") or {}).items())),
    )


# The libraries whose answers a post's record holds: its YAML, schema check
# and lengths.
_CHECKERS = (
    "yaml",
    "fastjsonschema",
    "jsonschema",
    "rfc3339_validator",
    "regex",
    "twitter_text",
)


@functools.cache
def _fingerprint() -> str | None:
    """What a post's record depends on besides the file: code, Python, libraries.

    None when it cannot be told (nexus-sync run from a zip file, say): then
    nothing is kept.
    """
    try:
        return fingerprint_of(Path(__file__).parent, _CHECKERS)
    except (OSError, ImportError, ValueError) as error:
        log.debug("no post cache: %s", error)
        return None


def fingerprint_of(package: Path, libraries: Iterable[str]) -> str:
    """A digest of the modules and schema in `package`, of Python's version, and
    of where each of `libraries` is installed and when that folder last changed
    (which an upgrade or reinstall moves). An edited checkout changes it too.
    """
    digest = hashlib.sha256(sys.version.encode())
    for source in sorted(
        [*package.glob("*.py"), package / "schema" / "post.schema.json"]
    ):
        digest.update(source.name.encode() + source.read_bytes())
    for name in libraries:
        spec = importlib.util.find_spec(name)
        folder = os.path.dirname(spec.origin) if spec and spec.origin else ""
        changed = os.stat(folder).st_mtime_ns if folder else 0
        digest.update(f"{name} {folder} {changed}".encode())
    return digest.hexdigest()


def _record(post: Post, local_schedule: str | None) -> dict[str, Any]:
    """What the cache keeps of a good post: its fields, and a local time as written."""
    record = dataclasses.asdict(post)
    del record["path"]
    record["local_schedule"] = local_schedule
    return record


def _from_record(
    record: dict[str, Any] | None, name: str, config: Config
) -> Post | None:
    """The post that `record` holds, or None when it must be read anew."""
    if record is None or not _well_formed(record):
        return None
    fields = dict(record)
    local_schedule = fields.pop("local_schedule")
    nexus = dict(fields.pop("nexus"))
    nexus["external_ids"] = tuple(map(tuple, nexus["external_ids"]))
    nexus["urls"] = tuple(map(tuple, nexus["urls"]))
    fields["platforms"] = tuple(fields["platforms"])
    # A local time is read again: the configured zone, or its rules in the
    # time zone database, may have changed since the record was made.
    if local_schedule is not None:
        try:
            fields["scheduled_for"] = parse_schedule(local_schedule, config)
        except ValueError:
            return None
    return Post(path=name, nexus=NexusBlock(**nexus), **fields)


_OPTIONAL_TEXT = (str, type(None))
_RECORD_FIELDS = {
    "content": str,
    "platforms": list,
    "title": _OPTIONAL_TEXT,
    "scheduled_for": _OPTIONAL_TEXT,
    "draft": bool,
    "publish_now": bool,
    "nexus": dict,
    "line": int,
    "scheduled_line": int,
    "body_line": int,
    "local_schedule": _OPTIONAL_TEXT,
}
_NEXUS_FIELDS = {
    "id": _OPTIONAL_TEXT,
    "status": _OPTIONAL_TEXT,
    "published_at": _OPTIONAL_TEXT,
    "error": _OPTIONAL_TEXT,
    "external_ids": list,
    "urls": list,
}


def _well_formed(record: Any) -> bool:
    """Whether a record from the cache has every field of a Post, each of its
    type; one that does not (damaged, or of another layout) is not believed."""

    def typed(data: Any, fields: dict[str, Any]) -> bool:
        return (
            isinstance(data, dict)
            and data.keys() == fields.keys()
            and all(isinstance(data[key], kind) for key, kind in fields.items())
        )

    if not typed(record, _RECORD_FIELDS) or not typed(record["nexus"], _NEXUS_FIELDS):
        return False
    pairs = [*record["nexus"]["external_ids"], *record["nexus"]["urls"]]
    return all(platform in PLATFORMS for platform in record["platforms"]) and all(
        isinstance(pair, list)
        and len(pair) == 2
        and all(isinstance(v, str) for v in pair)
        for pair in pairs
    )
