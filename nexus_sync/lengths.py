"""Per-platform length rules, counted the way each platform counts.

X counts with twitter-text v3 through twitter-text-parser, the one Python port
of X's library that implements v3 and passes its conformance data: a URL
counts 23, CJK and emoji count 2, most other characters 1. Bluesky counts
extended grapheme clusters (the `regex` module's `\\X`, kept current with
Unicode), so an emoji ZWJ sequence such as a family counts one; it also limits
the UTF-8 size.

twitter-text-parser is slow (a few milliseconds a post, mostly its emoji
pattern), so the count is first bounded from above with cheap exact rules;
only a post that might be over the limit is parsed in full.
"""

from __future__ import annotations

import functools
import importlib.resources
import sys
import types
import unicodedata
from typing import Any

import regex


def _import_twitter_text() -> types.ModuleType:
    # twitter-text-parser 3.0.0 (its last release, 2023) reads its emoji list
    # with pkg_resources, which setuptools 81 removed, which Python 3.12+
    # venvs lack and which older setuptools warns about on import. Lend it the
    # one function it calls, for its import only.
    if "pkg_resources" in sys.modules:
        import twitter_text

        return twitter_text

    shim = types.ModuleType("pkg_resources")

    def resource_string(module: str, name: str) -> bytes:
        # pkg_resources reads a file beside the module, in its package.
        package = sys.modules[module].__package__ or module
        return importlib.resources.files(package).joinpath(name).read_bytes()

    shim.resource_string = resource_string  # type: ignore[attr-defined]
    sys.modules["pkg_resources"] = shim
    try:
        import twitter_text

        return twitter_text
    finally:
        if sys.modules.get("pkg_resources") is shim:
            del sys.modules["pkg_resources"]


@functools.cache
def twitter_text() -> types.ModuleType:
    """The library, imported on first use: compiling its patterns takes most of
    a second, and most posts are judged by the quick bound alone."""
    return _import_twitter_text()


def parse_tweet(content: str) -> Any:
    return twitter_text().parse_tweet(content)


def _extract_urls(content: str) -> list[dict]:
    return twitter_text().extract_urls_with_indices(content)


# twitter-text v3's ranges of weight 1 (its config's "defaults"), as code
# points; tests/test_lengths.py checks them against the library's own config.
X_LIGHT_RANGES = ((0, 4351), (8192, 8205), (8208, 8223), (8242, 8247))

SERVICE_MAX = 10_000
X_MAX = 280
BLUESKY_MAX_GRAPHEMES = 300
BLUESKY_MAX_BYTES = 3_000
LINKEDIN_MAX = 3_000

_GRAPHEME = regex.compile(r"\X")
# The characters twitter-text refuses in a tweet whatever its length.
_X_INVALID = regex.compile("[\ufffe\ufeff\uffff]")


def _heavy_characters() -> regex.Pattern:
    """Characters that weigh 2 in twitter-text v3: all outside its light ranges."""
    light = "".join(f"\\U{start:08x}-\\U{end:08x}" for start, end in X_LIGHT_RANGES)
    return regex.compile(f"[^{light}]")


_X_HEAVY = _heavy_characters()
# The only characters of weight 1 that twitter-text counts as an emoji (of
# weight 2) on their own; tests/test_lengths.py checks this against the library.
_X_LIGHT_EMOJI = regex.compile("[\u00a9\u00ae]")
# Every URL twitter-text finds has a dot followed by its top-level domain.
_X_URL_DOT = regex.compile(r"\.\w")
_X_URL_WEIGHT = 23
_X_URL_MIN_WEIGHT = 3


def x_weighted_length(content: str) -> int:
    """twitter-text v3: URLs count 23, CJK and emoji count 2, the rest 1."""
    return parse_tweet(content).weightedLength


def graphemes(content: str) -> int:
    """Extended grapheme clusters, as Bluesky counts them."""
    return len(_GRAPHEME.findall(content))


def problems(content: str, platforms: tuple[str, ...]) -> list[str]:
    """A message for each rule the content breaks on the given platforms.

    `content` is normalized (`posts.normalize_content`): NFC, `\\n` line ends.
    """
    if not content:
        return ["the post has no content; write the message below the closing '---'"]

    found = []
    if len(content) > SERVICE_MAX:
        found.append(f"{len(content)}/{SERVICE_MAX} characters (Nexus Share limit)")
    if "x" in platforms:
        found.extend(_x_problems(content))
    if "bluesky" in platforms:
        # A grapheme cluster has at least one code point.
        count = graphemes(content) if len(content) > BLUESKY_MAX_GRAPHEMES else 0
        if count > BLUESKY_MAX_GRAPHEMES:
            found.append(f"{count}/{BLUESKY_MAX_GRAPHEMES} graphemes for bluesky")
        size = len(content.encode("utf-8"))
        if size > BLUESKY_MAX_BYTES:
            found.append(f"{size}/{BLUESKY_MAX_BYTES} UTF-8 bytes for bluesky")
    if "linkedin" in platforms and len(content) > LINKEDIN_MAX:
        found.append(f"{len(content)}/{LINKEDIN_MAX} characters for linkedin")
    return found


def _x_problems(content: str) -> list[str]:
    content = unicodedata.normalize("NFC", content)
    if not _X_INVALID.search(content) and _x_upper_bound(content) <= X_MAX:
        return []

    parsed = parse_tweet(content)
    if parsed.weightedLength > X_MAX:
        return [f"{parsed.weightedLength}/{X_MAX} weighted characters for x"]
    if not parsed.valid:
        invalid = _X_INVALID.search(content)
        what = f"U+{ord(invalid.group()):04X}" if invalid else "a character"
        return [f"the text contains {what}, which x does not accept; remove it"]
    return []


def _x_upper_bound(content: str) -> int:
    """A weighted length that twitter-text's count never exceeds.

    Each character weighs 1 or 2; a URL counts 23 in place of its characters;
    an emoji counts 2 in place of its characters, which weigh 2 or more except
    for a lone light emoji. Every URL holds a dot followed by its top-level
    domain, after a name of at least one character, so it weighs 3 or more and
    adds at most 20. Only when that bound is too loose are the URLs found.
    """
    weight = len(content) + len(_X_HEAVY.findall(content))
    weight += len(_X_LIGHT_EMOJI.findall(content))
    possible_urls = len(_X_URL_DOT.findall(content))
    bound = weight + (_X_URL_WEIGHT - _X_URL_MIN_WEIGHT) * possible_urls
    if bound <= X_MAX or not possible_urls:
        return bound

    for url in _extract_urls(content):
        text = url["url"]
        weight += _X_URL_WEIGHT - len(text) - len(_X_HEAVY.findall(text))
    return weight
