"""Per-platform lengths, counted as X (twitter-text v3) and Bluesky count."""

from __future__ import annotations

import subprocess
import sys
import unicodedata
from pathlib import Path

import pytest
import yaml
from conftest import DATA
from hypothesis import given, settings
from hypothesis import strategies as st

from nexus_sync import lengths

# Through nexus_sync.lengths, which lets twitter-text-parser import without
# pkg_resources.
parse_tweet = lengths.parse_tweet
extract_emojis_with_indices = lengths.twitter_text().extract_emojis_with_indices
_config = lengths.twitter_text().config

CONFORMANCE = yaml.safe_load(
    (DATA / "twitter-text" / "twitter-text-v3-lengths.yml").read_text("utf-8")
)
CASES = [
    pytest.param(case, id=f"{section}: {case['description']}")
    for section, cases in CONFORMANCE["tests"].items()
    for case in cases
]

FAMILY = "\U0001f468\u200d\U0001f469\u200d\U0001f467\u200d\U0001f466"
RAINBOW_FLAG = "\U0001f3f3\ufe0f\u200d\U0001f308"


def test_the_conformance_data_is_all_there() -> None:
    assert len(CASES) == 24


@pytest.mark.parametrize("case", CASES)
def test_x_counts_every_twitter_text_conformance_case(case: dict) -> None:
    parsed = parse_tweet(case["text"])

    assert parsed.weightedLength == case["expected"]["weightedLength"]
    assert parsed.valid == case["expected"]["valid"]
    assert lengths.x_weighted_length(case["text"]) == case["expected"]["weightedLength"]
    assert (lengths.problems(case["text"], ("x",)) == []) == case["expected"]["valid"]


def mixed_x_text(weighted: int) -> str:
    # 23 for the URL, 2 for each CJK character and emoji, 1 for the rest.
    head = "Launch 🚀 https://example.com/a/very/long/path/that/still/counts/23 日本語 "
    assert parse_tweet(head).weightedLength == 7 + 2 + 1 + 23 + 1 + 6 + 1
    return head + "x" * (weighted - 41)


def test_x_280_weighted_characters_with_url_cjk_and_emoji_pass() -> None:
    text = mixed_x_text(280)

    assert lengths.x_weighted_length(text) == 280
    assert len(text) == 310
    assert lengths.problems(text, ("x",)) == []


def test_x_281_weighted_characters_fail_with_count_and_limit() -> None:
    text = mixed_x_text(281)

    assert lengths.problems(text, ("x",)) == ["281/280 weighted characters for x"]


def test_x_refuses_the_characters_twitter_text_refuses() -> None:
    assert lengths.problems("Hello \ufffe world", ("x",)) == [
        "the text contains U+FFFE, which x does not accept; remove it"
    ]
    assert lengths.problems("Hello \ufffe world", ("linkedin",)) == []


def test_a_zwj_sequence_is_one_grapheme() -> None:
    assert lengths.graphemes(FAMILY) == 1
    assert lengths.graphemes(RAINBOW_FLAG) == 1
    assert lengths.graphemes("\U0001f1e9\U0001f1ea\U0001f1ef\U0001f1f5") == 2
    assert lengths.graphemes("e\u0301") == 1
    assert lengths.graphemes("\U0001f44b\U0001f3fd") == 1
    # An emoji of Unicode 15 (shaking face) and a ZWJ sequence of Emoji 15.1
    # (phoenix): current Unicode, not the tables of an old library.
    assert lengths.graphemes("\U0001fae8") == 1
    assert lengths.graphemes("\U0001f426\u200d\U0001f525") == 1


def test_bluesky_300_graphemes_pass_and_301_fail_counting_zwj_sequences_once() -> None:
    text = FAMILY * 50 + RAINBOW_FLAG * 50 + "é" * 100 + "a" * 100
    assert len(text) == 50 * 7 + 50 * 4 + 100 + 100
    assert len(text.encode("utf-8")) == 1250 + 700 + 200 + 100

    assert lengths.problems(text, ("bluesky",)) == []
    assert lengths.problems(text + "a", ("bluesky",)) == [
        "301/300 graphemes for bluesky"
    ]


def test_bluesky_limits_utf8_bytes_too() -> None:
    text = FAMILY * 120 + "a" * 1

    assert lengths.problems(text, ("bluesky",)) == ["3001/3000 UTF-8 bytes for bluesky"]


def test_linkedin_and_the_service_limits() -> None:
    assert lengths.problems("l" * 3000, ("linkedin",)) == []
    assert lengths.problems("l" * 3001, ("linkedin",)) == [
        "3001/3000 characters for linkedin"
    ]
    assert lengths.problems("s" * 10_001, ("linkedin",)) == [
        "10001/10000 characters (Nexus Share limit)",
        "10001/3000 characters for linkedin",
    ]


def test_empty_content_is_a_problem_whatever_the_platform() -> None:
    assert lengths.problems("", ()) == [
        "the post has no content; write the message below the closing '---'"
    ]


def test_every_platform_is_checked_at_once() -> None:
    text = unicodedata.normalize("NFC", "é" * 3001)

    assert lengths.problems(text, ("x", "linkedin", "bluesky")) == [
        "3001/280 weighted characters for x",
        "3001/300 graphemes for bluesky",
        "6002/3000 UTF-8 bytes for bluesky",
        "3001/3000 characters for linkedin",
    ]


def test_the_light_emoji_are_exactly_those_twitter_text_counts_as_emoji() -> None:
    ranges = _config.config["defaults"]["ranges"]
    light = [
        chr(code)
        for span in ranges
        if span["weight"] == 100
        for code in range(span["start"], span["end"] + 1)
    ]

    counted_as_emoji = [char for char in light if extract_emojis_with_indices(char)]

    assert counted_as_emoji == ["\u00a9", "\u00ae"]
    assert all(lengths._X_LIGHT_EMOJI.fullmatch(char) for char in counted_as_emoji)


_PIECES = st.sampled_from(
    [
        "a",
        " ",
        ".",
        "Node.js",
        "\n",
        "日本",
        "é",
        "\u00a9",
        "\u00ae",
        "\u2014",
        "\U0001f680",
        FAMILY,
        RAINBOW_FLAG,
        "\U0001f1e9\U0001f1ea",
        "1\ufe0f\u20e3",
        "https://example.com/path",
        "http://t.co/abc",
        "example.org",
        "a.co",
        "t.co",
        "x.io/",
        "nodejs.org/en",
        "x" * 40,
        "\ufffe",
    ]
)


@settings(max_examples=400, derandomize=True, deadline=None)
@given(st.lists(_PIECES, max_size=60).map("".join))
def test_the_quick_bound_never_changes_the_verdict_of_twitter_text(
    text: str,
) -> None:
    parsed = parse_tweet(text)
    problems = lengths._x_problems(text) if text else []

    assert (problems == []) == (parsed.valid or not text)
    if not lengths._X_INVALID.search(text):
        assert lengths._x_upper_bound(text) >= parsed.weightedLength


def test_x_counting_imports_without_pkg_resources(tmp_path: Path) -> None:
    # twitter-text-parser imports pkg_resources, which setuptools 81 removed.
    script = (
        "import importlib.abc, sys, warnings\n"
        "warnings.simplefilter('error')\n"
        "class Block(importlib.abc.MetaPathFinder):\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name == 'pkg_resources':\n"
        "            raise ModuleNotFoundError(name=name)\n"
        "sys.meta_path.insert(0, Block())\n"
        "from nexus_sync import lengths\n"
        "print(lengths.x_weighted_length('Hi https://example.com 日本 🚀'))\n"
        "print('pkg_resources' in sys.modules)\n"
    )

    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True
    )

    assert done.stdout == "34\nFalse\n"


def test_the_light_ranges_are_twitter_texts_own() -> None:
    ranges = _config.config["defaults"]["ranges"]

    assert lengths.X_LIGHT_RANGES == tuple(
        (span["start"], span["end"]) for span in ranges if span["weight"] == 100
    )
