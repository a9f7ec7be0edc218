"""A YAML loader for hand-written frontmatter that guesses nothing.

PyYAML follows YAML 1.1, where `no` is false, `1:20` is a number of minutes,
`0755` is octal and a timestamp becomes a datetime. In a post file each of
those would silently change what the author wrote, so this loader keeps them
all as strings: only `true`/`false` are booleans, only plain decimal numbers
are numbers, and a key given twice is an error instead of a quiet overwrite.

It also finds the frontmatter block of a file, and the file line of any value
in it, so that every message can say where the mistake is.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import Any

import jsonschema
import yaml

_Base = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

# A frontmatter boundary is a line of three or more dashes, nothing else.
BOUNDARY = re.compile(r"-{3,}[ \t]*(?:\r\n|\r|\n)?\Z")

_TAG = "tag:yaml.org,2002:"


class DuplicateKey(yaml.constructor.ConstructorError):
    """A key given twice in one mapping; `first_mark` is where it was first."""

    def __init__(self, key: str, first_mark: yaml.Mark, mark: yaml.Mark) -> None:
        super().__init__(None, None, f"duplicate key {key!r}", mark)
        self.key = key
        self.first_mark = first_mark


class StrictLoader(_Base):  # type: ignore[misc,valid-type]
    """SafeLoader with YAML 1.2-like scalars, no duplicate keys and no aliases."""

    yaml_implicit_resolvers: dict[str, list[tuple[str, re.Pattern[str]]]] = {}
    yaml_constructors: dict[str | None, Any] = {}

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:
        mapping: dict[str, Any] = {}
        first_seen: dict[str, yaml.Node] = {}
        for key_node, value_node in node.value:
            key = self.construct_object(key_node, deep=True)
            if not isinstance(key, str):
                raise yaml.constructor.ConstructorError(
                    None,
                    None,
                    f"a key must be a name, not {key!r}",
                    key_node.start_mark,
                )
            if key in first_seen:
                raise DuplicateKey(key, first_seen[key].start_mark, key_node.start_mark)
            first_seen[key] = key_node
            mapping[key] = self.construct_object(value_node, deep=deep)
        return mapping

    def construct_strict_int(self, node: yaml.ScalarNode) -> int:
        return self._scalar(node, int, _INT)

    def construct_strict_float(self, node: yaml.ScalarNode) -> float:
        return self._scalar(node, _float, _FLOAT)

    def construct_strict_bool(self, node: yaml.ScalarNode) -> bool:
        return self._scalar(node, lambda text: text == "true", _BOOL)

    def construct_strict_null(self, node: yaml.ScalarNode) -> None:
        self._scalar(node, lambda text: None, _NULL)

    def construct_refused(self, node: yaml.Node) -> None:
        raise yaml.constructor.ConstructorError(
            None,
            None,
            f"the tag {_short(node.tag)} is not allowed; write the value without it",
            node.start_mark,
        )

    def _scalar(self, node: yaml.ScalarNode, convert: Any, pattern: re.Pattern) -> Any:
        # An explicit tag (`!!int 0755`) must not bring back the YAML 1.1 forms.
        text = self.construct_scalar(node)
        if not pattern.match(text):
            raise yaml.constructor.ConstructorError(
                None,
                None,
                f"{text!r} is not a valid {_short(node.tag)}",
                node.start_mark,
            )
        return convert(text)


_BOOL = re.compile(r"^(?:true|false)$")
_INT = re.compile(r"^[-+]?(?:0|[1-9][0-9]*)$")
# YAML 1.2 floats, except that a leading zero (`0755`) stays a string.
_FLOAT = re.compile(
    r"""^(?:[-+]?(?:(?:0|[1-9][0-9]*)(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][-+]?[0-9]+)?
    |[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$""",
    re.VERBOSE,
)
_NULL = re.compile(r"^(?:~|null|Null|NULL|)$")


def _float(text: str) -> float:
    # YAML spells infinity and not-a-number `.inf` and `.nan`; Python does not.
    sign, magnitude = ("-" if text.startswith("-") else ""), text.lstrip("+-")
    if magnitude.lower() in (".inf", ".nan"):
        return float(sign + magnitude[1:])
    return float(text)


StrictLoader.add_implicit_resolver(_TAG + "bool", _BOOL, list("tf"))
StrictLoader.add_implicit_resolver(_TAG + "int", _INT, list("-+0123456789"))
StrictLoader.add_implicit_resolver(_TAG + "float", _FLOAT, list("-+0123456789."))
StrictLoader.add_implicit_resolver(_TAG + "null", _NULL, ["~", "n", "N", ""])

StrictLoader.add_constructor(_TAG + "str", _Base.construct_yaml_str)
StrictLoader.add_constructor(_TAG + "seq", _Base.construct_yaml_seq)
StrictLoader.add_constructor(_TAG + "map", _Base.construct_yaml_map)
StrictLoader.add_constructor(_TAG + "int", StrictLoader.construct_strict_int)
StrictLoader.add_constructor(_TAG + "float", StrictLoader.construct_strict_float)
StrictLoader.add_constructor(_TAG + "bool", StrictLoader.construct_strict_bool)
StrictLoader.add_constructor(_TAG + "null", StrictLoader.construct_strict_null)
StrictLoader.add_constructor(None, StrictLoader.construct_refused)


class StrictDumper(yaml.SafeDumper):
    """Writes a string in quotes when PyYAML or the strict loader would not read
    it back as a string, so `"2012087424487219563"` stays a string for both."""

    yaml_implicit_resolvers = {
        first: list(resolvers)
        for first, resolvers in yaml.SafeDumper.yaml_implicit_resolvers.items()
    }


for _first, _resolvers in StrictLoader.yaml_implicit_resolvers.items():
    StrictDumper.yaml_implicit_resolvers.setdefault(_first, []).extend(_resolvers)


def _short(tag: str) -> str:
    return "!!" + tag.removeprefix(_TAG) if tag.startswith(_TAG) else tag


_LINE = re.compile(r"[^\r\n]*(?:\r\n|\r|\n)|[^\r\n]+\Z")


def split_lines(text: str) -> list[str]:
    """The lines of `text` with their endings; only CR, LF and CRLF end a line."""
    return _LINE.findall(text)


def compose(text: str) -> yaml.Node | None:
    """Parse `text` into one node tree, refusing anchors and aliases."""
    loader = StrictLoader(text)
    try:
        node = loader.get_single_node()
    finally:
        loader.dispose()
    if node is not None and ("&" in text or "*" in text):
        _refuse_aliases(node)
    return node


def construct(node: yaml.Node) -> Any:
    """Turn a composed node tree into Python values under the strict rules."""
    loader = StrictLoader("")
    try:
        return loader.construct_document(node)
    finally:
        loader.dispose()


def load(text: str) -> tuple[yaml.Node | None, Any]:
    """The node tree of `text` (for lines) and its values, in one pass."""
    loader = StrictLoader(text)
    try:
        node = loader.get_single_node()
        # Without `&` or `*` there can be no anchor and no alias.
        if node is not None and ("&" in text or "*" in text):
            _refuse_aliases(node)
        return node, loader.construct_document(node) if node is not None else None
    finally:
        loader.dispose()


def dump(data: Any) -> str:
    """`data` as block-style YAML that both PyYAML and this loader read back."""
    return yaml.dump(
        data,
        Dumper=StrictDumper,
        sort_keys=False,
        default_flow_style=False,
        allow_unicode=True,
        width=1_000_000,
    )


def closing_line(lines: Sequence[str]) -> int | None:
    """The index of the line that closes the frontmatter opened by `lines[0]`.

    None when `lines[0]` opens no frontmatter; -1 when it opens one that never
    closes.
    """
    if not lines or not BOUNDARY.match(lines[0]):
        return None
    for index in range(1, len(lines)):
        if BOUNDARY.match(lines[index]):
            return index
    return -1


def yaml_problem(
    error: yaml.YAMLError, first_line: int, text: str = ""
) -> tuple[int, str]:
    """A parse error of `text` as (file line, message).

    `first_line` is the file line on which `text` starts.
    """
    if isinstance(error, DuplicateKey):
        first = error.first_mark.line + first_line
        return (
            error.problem_mark.line + first_line,
            f"{error.key!r} is given twice (first on line {first}); keep one",
        )
    if not isinstance(error, yaml.MarkedYAMLError):
        return first_line, f"invalid YAML: {error}"
    # At the end of the text, the line where the unfinished thing began helps
    # more than the end itself.
    mark = error.problem_mark or error.context_mark
    at_end = mark is not None and mark.index >= len(text.rstrip())
    if error.context_mark and (at_end or "end of stream" in (error.problem or "")):
        mark = error.context_mark
    line = mark.line + first_line if mark else first_line
    parts = [error.context, error.problem]
    source = (
        text.splitlines()[mark.line]
        if mark and mark.line < len(text.splitlines())
        else ""
    )
    message = "invalid YAML: " + "; ".join(part for part in parts if part)
    return line, message + _hint(error.problem or "", source)


def _hint(problem: str, source: str) -> str:
    """What to do about the parse errors that hand-written posts run into."""
    if "\t" in source[: len(source) - len(source.lstrip())]:
        return "; YAML cannot indent with tabs: use spaces"
    if (
        "cannot start any token" in problem
        or "mapping values are not allowed" in problem
    ):
        return (
            "; a value that starts with @ or ` or holds ': ' must be quoted, "
            'e.g. title: "@team: hello"'
        )
    return ""


def line_of(node: yaml.Node | None, where: Iterable[Any], first_line: int) -> int:
    """The file line of the value at `where`, or of its nearest parent.

    `first_line` is the file line on which the YAML text starts.
    """
    line = first_line if node is None else node.start_mark.line + first_line
    for step in where:
        if isinstance(node, yaml.MappingNode):
            match = [(k, v) for k, v in node.value if k.value == step]
            if not match:
                break
            key, node = match[0]
            line = key.start_mark.line + first_line
        elif isinstance(node, yaml.SequenceNode) and isinstance(step, int):
            if not 0 <= step < len(node.value):
                break
            node = node.value[step]
            line = node.start_mark.line + first_line
        else:
            break
    return line


def schema_problems(
    validator: jsonschema.protocols.Validator,
    data: Any,
    node: yaml.Node | None,
    first_line: int,
) -> list[tuple[int, tuple[Any, ...], str]]:
    """Every way `data` breaks the schema as (file line, path, message), in order."""
    found = []
    for error in validator.iter_errors(data):
        for key in _offending_keys(error):
            where = tuple(error.absolute_path) + key
            field = ".".join(_step_name(step) for step in where) or "frontmatter"
            line = line_of(node, where, first_line)
            found.append((line, where, f"{field}: {describe_error(error)}"))
    return sorted(found, key=lambda problem: (problem[0], problem[2]))


def _step_name(step: Any) -> str:
    # A key of blanks or control characters would break the `path:line:
    # message` line (and a GitHub annotation), so such a key is quoted.
    text = str(step)
    if text and text.isprintable() and text.strip() == text:
        return text
    return repr(text)


def _offending_keys(error: jsonschema.ValidationError) -> list[tuple[str, ...]]:
    # Each unknown key is shown on its own line, not once on its parent's.
    if error.validator == "additionalProperties" and isinstance(error.instance, dict):
        known = error.schema.get("properties", {})
        return [(key,) for key in error.instance if key not in known]
    return [()]


def describe_error(error: jsonschema.ValidationError) -> str:
    """A schema error in words for the person who wrote the file."""
    instance = error.instance
    if error.validator == "type":
        expected = _TYPE_WORDS.get(str(error.validator_value), error.validator_value)
        return f"expected {expected}, got {_kind(instance)}"
    if error.validator == "additionalProperties":
        known = ", ".join(error.schema.get("properties", {}))
        return f"unknown key; the keys are {known}"
    if error.validator == "required":
        missing = [key for key in error.validator_value if key not in instance]
        return f"missing key {', '.join(repr(key) for key in missing)}"
    if error.validator == "maxLength":
        return f"{len(instance)}/{error.validator_value} characters"
    if error.validator == "const":
        return f"must be {error.validator_value!r}, not {instance!r}"
    if error.validator == "minItems" and error.validator_value == 1:
        return "must list at least one"
    if error.validator == "uniqueItems":
        return f"{instance!r} lists a value more than once"
    if error.validator == "format":
        return f"{instance!r} is not a valid {error.validator_value}"
    if "description" in error.schema and error.validator in ("anyOf", "oneOf"):
        return f"{instance!r} is not {error.schema['description']}"
    return error.message


_TYPE_WORDS = {
    "string": "a string",
    "boolean": "true or false",
    "array": "a list",
    "object": "a mapping of keys",
    "integer": "a whole number",
    "number": "a number",
}


def _kind(value: Any) -> str:
    if value is None:
        return "nothing (null)"
    if isinstance(value, bool):
        return f"{str(value).lower()}"
    if isinstance(value, str):
        return f"the string {value!r}"
    if isinstance(value, (int, float)):
        return f"the number {value!r}"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    return type(value).__name__


def _refuse_aliases(root: yaml.Node) -> None:
    # A shared node is an alias; frontmatter never needs one, and refusing
    # them keeps a small hostile file from expanding into a huge document.
    seen: set[int] = set()
    stack = [root]
    while stack:
        node = stack.pop()
        if id(node) in seen:
            raise yaml.composer.ComposerError(
                None, None, "anchors and aliases are not allowed", node.start_mark
            )
        seen.add(id(node))
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                stack.extend((key, value))
        elif isinstance(node, yaml.SequenceNode):
            stack.extend(node.value)
