"""nexus_sync.github against a local fake of GitHub's comment endpoints."""

from __future__ import annotations

import pytest
from conftest import free_port
from fake_github import BOT, FakeGitHub

from nexus_sync.github import GitHub, GitHubError

REPO = "octo/posts"
MARKER = "<!-- nexus-sync plan: . -->"
PERSON = {"login": "alice", "type": "User"}


def test_upsert_creates_one_comment_then_edits_it_in_place(
    fake_github: FakeGitHub,
) -> None:
    with GitHub(fake_github.url, fake_github.token) as github:
        first, created = github.upsert_comment(REPO, 7, MARKER, f"{MARKER}\nfirst")
        second, created_again = github.upsert_comment(
            REPO, 7, MARKER, f"{MARKER}\nsecond"
        )

    assert (created, created_again) == (True, False)
    assert second.id == first.id
    assert fake_github.bodies(REPO, 7) == [f"{MARKER}\nsecond"]
    assert [(r.method, r.path) for r in fake_github.requests] == [
        ("GET", "/repos/octo/posts/issues/7/comments"),
        ("POST", "/repos/octo/posts/issues/7/comments"),
        ("GET", "/repos/octo/posts/issues/7/comments"),
        ("PATCH", f"/repos/octo/posts/issues/comments/{first.id}"),
    ]


def test_upsert_finds_its_comment_on_a_later_page_and_ignores_quotes(
    fake_github: FakeGitHub,
) -> None:
    for index in range(150):
        fake_github.add_comment(REPO, 7, f"comment {index}", PERSON)
    fake_github.add_comment(REPO, 7, f"> {MARKER}\n> quoted plan", PERSON)
    mine = fake_github.add_comment(REPO, 7, f"{MARKER}\nold plan", BOT)

    with GitHub(fake_github.url, fake_github.token) as github:
        assert len(github.comments(REPO, 7)) == 152
        comment, created = github.upsert_comment(REPO, 7, MARKER, f"{MARKER}\nnew")

    assert (comment.id, created) == (mine, False)
    bodies = fake_github.bodies(REPO, 7)
    assert bodies[-2:] == [f"> {MARKER}\n> quoted plan", f"{MARKER}\nnew"]
    assert len(bodies) == 152


def test_a_refused_write_names_the_missing_permission_and_not_the_token(
    fake_github: FakeGitHub,
) -> None:
    fake_github.deny_writes = True

    with (
        GitHub(fake_github.url, fake_github.token) as github,
        pytest.raises(GitHubError) as raised,
    ):
        github.create_comment(REPO, 7, f"{MARKER}\nplan")

    assert str(raised.value) == (
        "GitHub answered 403 to commenting on #7: Resource not accessible by "
        "integration; the workflow needs `permissions: pull-requests: write` "
        "(pull requests from forks get a read-only token)"
    )
    assert fake_github.token not in repr(github)


def test_a_wrong_token_is_reported_without_echoing_it(fake_github: FakeGitHub) -> None:
    with (
        GitHub(fake_github.url, "ghs_not_the_right_one") as github,
        pytest.raises(GitHubError) as raised,
    ):
        github.comments(REPO, 7)

    assert str(raised.value) == (
        "GitHub answered 401 to listing comments of #7: Bad credentials"
    )


def test_a_body_without_its_marker_is_refused_before_any_call(
    fake_github: FakeGitHub,
) -> None:
    with (
        GitHub(fake_github.url, fake_github.token) as github,
        pytest.raises(ValueError),
    ):
        github.upsert_comment(REPO, 7, MARKER, "no marker")

    assert fake_github.requests == []


def test_a_server_that_does_not_answer_is_named_without_a_traceback() -> None:
    with (
        GitHub(f"http://127.0.0.1:{free_port()}", "ghs_token") as github,
        pytest.raises(GitHubError) as raised,
    ):
        github.comments(REPO, 7)

    assert str(raised.value) == (
        "GitHub did not answer while listing comments of #7: ConnectError"
    )
