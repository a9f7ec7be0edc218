"""Per-platform length rules, counted the way each platform counts.

X counts with twitter-text v3 (twitter-text-parser, a port of X's own library
that passes its conformance data): a URL counts 23, CJK and emoji count 2,
most other characters 1. Bluesky counts extended grapheme clusters (the
`regex` module's `\\X`, kept current with Unicode), so an emoji ZWJ sequence
such as a family counts one, and it also limits the UTF-8 size.
"""

from __future__ import annotations

import regex
from twitter_text import parse_tweet

SERVICE_MAX = 10_000
X_MAX = 280
BLUESKY_MAX_GRAPHEMES = 300
BLUESKY_MAX_BYTES = 3_000
LINKEDIN_MAX = 3_000

_GRAPHEME = regex.compile(r"\X")
# The characters twitter-text refuses in a tweet whatever its length.
_X_INVALID = regex.compile("[\ufffe\ufeff\uffff]")


def x_weighted_length(content: str) -> int:
    """twitter-text v3: URLs count 23, CJK and emoji count 2, the rest 1."""
    return parse_tweet(content).weightedLength


def graphemes(content: str) -> int:
    """Extended grapheme clusters, as Bluesky counts them."""
    return len(_GRAPHEME.findall(content))


def problems(content: str, platforms: tuple[str, ...]) -> list[str]:
    """A message for each rule the content breaks on the given platforms."""
    if not content:
        return ["the post has no content; write the message below the closing '---'"]

    found = []
    if len(content) > SERVICE_MAX:
        found.append(f"{len(content)}/{SERVICE_MAX} characters (Nexus Share limit)")
    if "x" in platforms:
        found.extend(_x_problems(content))
    if "bluesky" in platforms:
        count = graphemes(content)
        if count > BLUESKY_MAX_GRAPHEMES:
            found.append(f"{count}/{BLUESKY_MAX_GRAPHEMES} graphemes for bluesky")
        size = len(content.encode("utf-8"))
        if size > BLUESKY_MAX_BYTES:
            found.append(f"{size}/{BLUESKY_MAX_BYTES} UTF-8 bytes for bluesky")
    if "linkedin" in platforms and len(content) > LINKEDIN_MAX:
        found.append(f"{len(content)}/{LINKEDIN_MAX} characters for linkedin")
    return found


def _x_problems(content: str) -> list[str]:
    parsed = parse_tweet(content)
    if parsed.weightedLength > X_MAX:
        return [f"{parsed.weightedLength}/{X_MAX} weighted characters for x"]
    if not parsed.valid:
        invalid = _X_INVALID.search(content)
        what = f"U+{ord(invalid.group()):04X}" if invalid else "a character"
        return [f"the text contains {what}, which x does not accept; remove it"]
    return []
