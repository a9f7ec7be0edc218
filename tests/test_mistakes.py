"""Mistakes people make around the post files, each through the real command."""

from __future__ import annotations

from pathlib import Path

from conftest import EmulatorServer, make_repo, run_command

POST = "---\nplatforms: [x]\n---\nHello {n}\n"


def repo_with_posts(tmp_path: Path, count: int = 3) -> Path:
    repo = make_repo(tmp_path / "repo", posts=None)
    for n in range(count):
        (repo / "posts" / f"p{n}.md").write_text(POST.format(n=n))
    assert run_command(["apply", "--local"], repo).code == 0
    return repo


def test_a_posts_dir_that_does_not_exist_stops_every_command(tmp_path: Path) -> None:
    repo = repo_with_posts(tmp_path)
    (repo / "nexus-sync.yaml").write_text("posts_dir: post\n")

    for command in (["validate"], ["plan", "--local"], ["apply", "--local"]):
        result = run_command(command, repo)
        assert result.code == 1, result.output
        assert (
            f"Error: posts_dir 'post': there is no such folder in {repo}; create it "
            "or correct posts_dir in nexus-sync.yaml"
        ) in result.stderr
    (repo / "nexus-sync.yaml").write_text("posts_dir: ../\n")
    outside = run_command(["plan", "--local"], repo)
    assert "Error: posts_dir '../' is outside the repository" in outside.stderr
    (repo / "nexus-sync.yaml").unlink()
    assert run_command(["plan", "--local", "--detailed-exitcode"], repo).code == 0


def test_an_empty_expected_checksum_is_refused(tmp_path: Path) -> None:
    repo = repo_with_posts(tmp_path, count=1)
    (repo / "posts" / "new.md").write_text(POST.format(n="new"))

    for empty in ("", "  "):
        result = run_command(["apply", "--local", "--expect-checksum", empty], repo)

        assert result.code == 1
        assert result.stdout == ""
        assert result.stderr == (
            f"Error: --expect-checksum is empty ({empty!r}); pass the checksum "
            "that `nexus-sync plan` printed on its `Checksum:` line (in CI, check "
            "that the variable holding it is set)\n"
        )
        assert "nexus:" not in (repo / "posts" / "new.md").read_text()

    saved = repo / "plan.json"
    saved.write_text('{"checksum": "", "options": {"prune_unmanaged": false}}')
    result = run_command(["apply", "--local", saved.name], repo)
    assert result.code == 1
    assert result.stderr == (
        "Error: plan.json: not a plan saved by `nexus-sync plan --out`\n"
    )
    assert "nexus:" not in (repo / "posts" / "new.md").read_text()


def test_draft_and_publish_now_together_are_an_error(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo", posts=None)
    (repo / "posts" / "p.md").write_text(
        "---\nplatforms: [x]\ndraft: true\npublish: now\n---\nHi\n"
    )

    result = run_command(["validate"], repo)

    assert result.code == 1
    assert result.stderr.splitlines()[0] == (
        "posts/p.md:4: publish: now and draft: true contradict each other; remove one"
    )


def test_a_link_to_a_post_is_refused_instead_of_posting_it_twice(
    tmp_path: Path,
) -> None:
    repo = make_repo(tmp_path / "repo", posts=None)
    (repo / "posts" / "a.md").write_text(POST.format(n="a"))
    (repo / "posts" / "link.md").symlink_to("a.md")

    result = run_command(["apply", "--local"], repo)

    assert result.code == 1
    assert (
        "posts/link.md:1: symbolic link to posts/a.md; a post must be a file of its own"
    ) in result.stderr
    assert (repo / "posts" / "link.md").is_symlink()


def test_credentials_in_the_api_url_are_refused_and_never_shown(
    tmp_path: Path,
) -> None:
    repo = make_repo(tmp_path / "repo", posts=None)

    result = run_command(
        ["-v", "plan", "--api-url", "https://user:s3cret@127.0.0.1:1/api"],
        repo,
        env={"NEXUS_TOKEN": "a.b.c"},
    )

    assert result.code == 1
    assert "the API URL carries a user or password" in result.stderr
    assert "s3cret" not in result.output


def test_a_plan_saved_where_no_folder_is_says_so(tmp_path: Path) -> None:
    repo = repo_with_posts(tmp_path, count=1)

    result = run_command(["plan", "--local", "--out", "no/such/plan.json"], repo)

    assert result.code == 1
    assert "Error: cannot save the plan to no/such/plan.json: No such file" in (
        result.stderr
    )
    assert "Traceback" not in result.output


def test_a_frontmatter_the_write_back_cannot_extend_is_refused_before_a_create(
    tmp_path: Path, emulator: EmulatorServer
) -> None:
    repo = make_repo(tmp_path / "repo", posts=None)
    layouts = {
        "flow.md": "---\n{platforms: [x], title: Launch}\n---\nHello\n",
        "json.md": '---\n{"platforms":\n  ["x"]}\n---\nHello\n',
        "indented.md": "---\n  title: Hi\n  platforms: [x]\n---\nHello\n",
        "dots.md": "---\nplatforms: [x]\npublish: now\n...\n---\nHello\n",
    }
    for name, text in layouts.items():
        (repo / "posts" / name).write_text(text)
    env = emulator.env("alice")
    emulator.clear_requests()

    for command in (["validate"], ["plan"], ["apply"]):
        result = run_command(command, repo, env)
        assert result.code == 1, result.output
        assert result.stderr.splitlines()[:4] == [
            "posts/dots.md:4: a '...' line ends the YAML before the closing '---'; "
            "remove it",
            "posts/flow.md:2: the frontmatter is one {...} mapping; write one key "
            "per line instead, e.g. platforms: [x]",
            "posts/indented.md:2: 'title' is indented; start each key of the "
            "frontmatter at the beginning of its line",
            "posts/json.md:2: the frontmatter is one {...} mapping; write one key "
            "per line instead, e.g. platforms: [x]",
        ]
    assert emulator.requests()["counts"] == {}
    assert [p.read_text() for p in sorted((repo / "posts").glob("*.md"))] == [
        layouts[name] for name in sorted(layouts)
    ]


def test_a_link_to_a_folder_stops_every_command_and_deletes_nothing(
    tmp_path: Path,
) -> None:
    repo = repo_with_posts(tmp_path, count=1)
    private = repo / "posts" / "private"
    private.mkdir()
    (private / "q.md").write_text(POST.format(n="private"))
    assert run_command(["apply", "--local"], repo).code == 0
    # The folder moves out and a link takes its place: were the link skipped,
    # the post behind it would look deleted, and its message with it.
    elsewhere = tmp_path / "elsewhere"
    private.rename(elsewhere)
    private.symlink_to(elsewhere)

    for command in (["validate"], ["plan", "--local"], ["apply", "--local"]):
        result = run_command(command, repo)
        assert result.code == 1, result.output
        assert result.stderr.splitlines()[0] == (
            "posts/private:1: symbolic link to a folder; nexus-sync follows no "
            "links (the posts behind one would look deleted whenever it changed); "
            "put the folder itself here instead"
        )
    private.unlink()
    elsewhere.rename(private)
    assert run_command(["plan", "--local", "--detailed-exitcode"], repo).code == 0


def test_a_merge_conflict_in_a_post_is_refused_where_it_starts(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo", posts=None)
    posts = repo / "posts"
    (posts / "body.md").write_text(
        "---\nplatforms: [x]\n---\n<<<<<<< HEAD\nOne\n=======\nTwo\n>>>>>>> side\n"
    )
    (posts / "front.md").write_text(
        "---\nplatforms: [x]\n<<<<<<< HEAD\ntitle: One\n=======\ntitle: Two\n"
        ">>>>>>> side\n---\nHi\n"
    )
    # A line of = signs alone is a Markdown heading, not a conflict.
    (posts / "heading.md").write_text("---\nplatforms: [x]\n---\nNews\n=======\nHi\n")

    result = run_command(["plan", "--local"], repo)

    assert result.code == 1, result.output
    assert result.stderr.splitlines() == [
        "posts/body.md:4: a merge conflict (git's <<<<<<< and >>>>>>> lines); "
        "resolve it and remove the markers",
        "posts/front.md:3: a merge conflict (git's <<<<<<< and >>>>>>> lines); "
        "resolve it and remove the markers",
        "2 problem(s) found; nothing was sent.",
    ]


def test_a_post_renamed_to_upper_case_md_keeps_its_message(tmp_path: Path) -> None:
    repo = repo_with_posts(tmp_path, count=2)
    (repo / "posts" / "p0.md").rename(repo / "posts" / "p0.MD")
    # An editor's lock file (a dangling link) is no post.
    (repo / "posts" / ".#p1.md").symlink_to("user@host.1234:1")

    plan = run_command(["plan", "--local", "--detailed-exitcode"], repo)

    assert plan.code == 2, plan.output
    assert "- delete" not in plan.stdout
    assert "posts/p0.MD" in plan.stdout
    assert run_command(["apply", "--local"], repo).code == 0
    assert run_command(["plan", "--local", "--detailed-exitcode"], repo).code == 0


def test_a_dot_markdown_file_is_told_to_end_in_md(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo", posts=None)
    (repo / "posts" / "launch.markdown").write_text(POST.format(n=1))

    result = run_command(["validate"], repo)

    assert result.code == 1
    assert result.stderr.splitlines()[0] == (
        "posts/launch.markdown:1: a post file's name ends in .md; rename it to "
        "launch.md"
    )


def test_an_inventory_that_cannot_be_read_says_so(tmp_path: Path) -> None:
    repo = repo_with_posts(tmp_path, count=1)
    inventory = repo / "nexus-sync.state.yaml"
    inventory.write_bytes(b"\xff\xfe")

    result = run_command(["plan", "--local"], repo)

    assert result.code == 1
    assert result.stderr == (
        "Error: nexus-sync.state.yaml: cannot be read (not UTF-8 text); restore it "
        "from git\n"
    )


def test_a_new_posts_dir_does_not_delete_the_posts_left_in_the_old_one(
    tmp_path: Path,
) -> None:
    repo = repo_with_posts(tmp_path, count=2)
    (repo / "content").mkdir()
    (repo / "nexus-sync.yaml").write_text("posts_dir: content\n")
    inventory = (repo / "nexus-sync.state.yaml").read_text()

    for command in (["plan", "--local"], ["apply", "--local"]):
        result = run_command(command, repo)
        assert result.code == 1, result.output
        assert [
            line.split(": its message ")[0] for line in result.stderr.splitlines()
        ] == [
            "posts/p0.md:1",
            "posts/p1.md:1",
            "2 problem(s) found; nothing was sent.",
        ]
        assert result.stderr.splitlines()[0].endswith(
            "is managed, but the file is outside posts_dir 'content'; move it into "
            "content/, or delete it to cancel its message"
        )
    assert (repo / "nexus-sync.state.yaml").read_text() == inventory

    for name in ("p0.md", "p1.md"):
        (repo / "posts" / name).rename(repo / "content" / name)
    assert run_command(["apply", "--local"], repo).code == 0
    assert run_command(["plan", "--local", "--detailed-exitcode"], repo).code == 0
