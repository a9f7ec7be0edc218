"""The strict YAML loader: no guessing, no duplicates, no tags, exact lines."""

from __future__ import annotations

import string

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from nexus_sync import yamlstrict


def load(text: str) -> object:
    node = yamlstrict.compose(text)
    return yamlstrict.construct(node) if node is not None else None


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("No", "No"),
        ("no", "no"),
        ("yes", "yes"),
        ("on", "on"),
        ("off", "off"),
        ("True", "True"),
        ("true", True),
        ("false", False),
        ("2030-01-20", "2030-01-20"),
        ("2030-01-20T10:00:00Z", "2030-01-20T10:00:00Z"),
        ("2030-01-20 10:00:00+01:00", "2030-01-20 10:00:00+01:00"),
        ("1:20", "1:20"),
        ("190:20:30", "190:20:30"),
        ("0755", "0755"),
        ("0o755", "0o755"),
        ("0x1F", "0x1F"),
        ("1_000", "1_000"),
        ("2012087424487219563", 2012087424487219563),
        ("-7", -7),
        ("0", 0),
        ("1.5", 1.5),
        (".5", 0.5),
        ("1e3", 1000.0),
        ("~", None),
        ("null", None),
        ("", None),
    ],
)
def test_scalars_are_read_as_yaml_1_2_without_guessing(
    text: str, value: object
) -> None:
    assert load(f"key: {text}") == {"key": value}


def test_a_duplicate_key_is_an_error_naming_both_lines() -> None:
    with pytest.raises(yamlstrict.DuplicateKey) as raised:
        load("title: A\nplatforms: [x]\ntitle: B\n")

    assert raised.value.key == "title"
    assert raised.value.first_mark.line == 0
    assert raised.value.problem_mark.line == 2
    assert yamlstrict.yaml_problem(raised.value, 2) == (
        4,
        "'title' is given twice (first on line 2); keep one",
    )


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("a: !!timestamp 2030-01-01", "the tag !!timestamp is not allowed"),
        ("a: !!binary aGk=", "the tag !!binary is not allowed"),
        ("a: !!python/name:os.system", "the tag !!python/name:os.system is not"),
        ("a: !!set {x}", "the tag !!set is not allowed"),
        ("a: !local x", "the tag !local is not allowed"),
        ("a: !!int 0755", "'0755' is not a valid !!int"),
        ("a: !!int 1:20", "'1:20' is not a valid !!int"),
        ("a: !!bool yes", "'yes' is not a valid !!bool"),
        ("a: !!float 1_0.5", "'1_0.5' is not a valid !!float"),
        ("1: one", "a key must be a name, not 1"),
        ("[a]: one", "a key must be a name, not ['a']"),
        ("a: &x 1\nb: *x", "anchors and aliases are not allowed"),
        ("<<: {a: 1}\nb: 2", None),
    ],
)
def test_tags_aliases_and_odd_keys_are_refused(text: str, message: str | None) -> None:
    if message is None:
        # With no merge-key rule, `<<` is an ordinary (if odd) key.
        assert load(text) == {"<<": {"a": 1}, "b": 2}
        return
    with pytest.raises(yaml.YAMLError) as raised:
        load(text)
    assert message in str(raised.value)


def test_explicit_str_tag_is_allowed() -> None:
    assert load("a: !!str 12") == {"a": "12"}


def test_yaml_problem_points_at_the_start_of_an_unfinished_value() -> None:
    with pytest.raises(yaml.YAMLError) as raised:
        load('platforms: [x]\ntitle: "Launch day\n')

    assert yamlstrict.yaml_problem(raised.value, 2) == (
        3,
        "invalid YAML: while scanning a quoted scalar; found unexpected end of stream",
    )


def test_line_of_finds_keys_items_and_falls_back_to_the_parent() -> None:
    node = yamlstrict.compose(
        "title: A\nplatforms:\n  - x\n  - bluesky\nnexus:\n  id: 1\n"
    )

    assert yamlstrict.line_of(node, (), 2) == 2
    assert yamlstrict.line_of(node, ("platforms",), 2) == 3
    assert yamlstrict.line_of(node, ("platforms", 1), 2) == 5
    assert yamlstrict.line_of(node, ("platforms", 9), 2) == 3
    assert yamlstrict.line_of(node, ("nexus", "id"), 2) == 7
    assert yamlstrict.line_of(node, ("missing", "id"), 2) == 2


@pytest.mark.parametrize(
    ("text", "lines"),
    [
        ("a\nb\n", ["a\n", "b\n"]),
        ("a\r\nb", ["a\r\n", "b"]),
        ("a\rb\r", ["a\r", "b\r"]),
        ("a\u2028b\x85c\n", ["a\u2028b\x85c\n"]),
        ("\n\n", ["\n", "\n"]),
        ("", []),
    ],
)
def test_split_lines_ends_lines_only_at_cr_lf_and_crlf(
    text: str, lines: list[str]
) -> None:
    assert yamlstrict.split_lines(text) == lines


@pytest.mark.parametrize(
    ("text", "close"),
    [
        ("---\na: 1\n---\nbody\n", 2),
        ("--- \t\r\na: 1\r\n----\r\n", 2),
        ("---\n---\n", 1),
        ("---\na: 1\nbody\n", -1),
        ("---", -1),
        ("\n---\na: 1\n---\n", None),
        ("--- a\n---\n", None),
        ("text\n", None),
        ("", None),
    ],
)
def test_closing_line(text: str, close: int | None) -> None:
    assert yamlstrict.closing_line(yamlstrict.split_lines(text)) == close


_TRICKY = st.sampled_from(
    [
        "2012087424487219563",
        "1.5e3",
        ".5",
        "1e3",
        "0755",
        "1:20",
        "no",
        "No",
        "true",
        "null",
        "~",
        "",
        "2030-01-20",
        "POST|alice|1736853600000",
        "- dash",
        "# hash",
        "a: b",
        "'quoted'",
        "  spaced  ",
        "multi\nline",
    ]
)


@settings(max_examples=300, derandomize=True, deadline=None)
@given(
    st.one_of(_TRICKY, st.text(alphabet=string.printable + "é日🚀\u2028", max_size=30))
)
def test_dumped_strings_read_back_as_the_same_strings_in_both_loaders(
    value: str,
) -> None:
    text = yamlstrict.dump({"nexus": {"id": value}})

    assert load(text) == {"nexus": {"id": value}}
    assert yaml.safe_load(text) == {"nexus": {"id": value}}


def test_yaml_infinity_and_nan_are_floats_not_a_crash() -> None:
    from nexus_sync import yamlstrict

    _, data = yamlstrict.load("a: .inf\nb: -.Inf\nc: 1.5\n")

    assert data == {"a": float("inf"), "b": float("-inf"), "c": 1.5}


def test_parse_errors_people_make_say_what_to_do() -> None:
    from nexus_sync import yamlstrict

    def message(text: str) -> str:
        try:
            yamlstrict.load(text)
        except yaml.YAMLError as error:
            return yamlstrict.yaml_problem(error, 2, text)[1]
        raise AssertionError("no error")

    assert message("title: @team\n").endswith(
        "; a value that starts with @ or ` or holds ': ' must be quoted, "
        'e.g. title: "@team: hello"'
    )
    assert message("title: a: b\n").endswith('must be quoted, e.g. title: "@team: hello"')
    assert message("platforms:\n\t- x\n").endswith(
        "; YAML cannot indent with tabs: use spaces"
    )
