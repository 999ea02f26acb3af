"""The build context: .dockerignore as docker reads it, COPY's sources, and the cache digest.

The ignore table follows docker's documented examples (docs.docker.com, "Build context",
.dockerignore) and moby/patternmatcher's rules. The context tests make real files in a tmp dir;
none needs root.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from pycont.builder.context import Context, IgnoreRules, go_clean
from pycont.errors import UsageError

IGNORE_TABLE = [
    # docker's documented examples
    (["*/temp*"], "somedir/temporary.txt", True),
    (["*/temp*"], "somedir/temp", True),
    (["*/temp*"], "somedir/temp/inside.txt", True),  # a directory excluded, its content too
    (["*/temp*"], "temp", False),
    (["*/temp*"], "a/b/temp", False),
    (["*/*/temp*"], "somedir/subdir/temporary.txt", True),
    (["*/*/temp*"], "somedir/temporary.txt", False),
    (["temp?"], "tempa", True),
    (["temp?"], "tempab", False),
    (["temp?"], "temp", False),
    (["temp?"], "dir/tempa", False),
    (["**/*.go"], "main.go", True),
    (["**/*.go"], "a/b/c.go", True),
    (["**/*.go"], "a/b/c.gox", False),
    (["*.md", "!README.md"], "README.md", False),
    (["*.md", "!README.md"], "CHANGES.md", True),
    (["*.md", "!README*.md", "README-secret.md"], "README-secret.md", True),
    (["*.md", "!README*.md", "README-secret.md"], "README-public.md", False),
    # the last matching line wins
    (["!a", "a"], "a", True),
    (["a", "!a"], "a", False),
    (["a", "!a", "a"], "a", True),
    # a leading "/" is dropped; patterns are cleaned as filepath.Clean does
    (["/foo"], "foo", True),
    (["/foo/bar"], "foo/bar", True),
    (["./foo/../bar"], "bar", True),
    (["foo/./bar/"], "foo/bar", True),
    (["//foo"], "foo", True),
    (["../x"], "x", False),
    # a directory excluded, with part of it re-included
    (["build"], "build/out/a.o", True),
    (["build", "!build/keep"], "build/keep", False),
    (["build", "!build/keep"], "build/keep/x", False),
    (["build", "!build/keep"], "build/other", True),
    # ** spans any number of path elements, * and ? stay within one
    (["**"], "any/thing", True),
    (["foo/**"], "foo", False),
    (["foo/**"], "foo/x/y", True),
    (["**/foo"], "foo", True),
    (["**/foo"], "a/b/foo", True),
    (["**/foo"], "a/foo/b", True),
    (["a/**/b"], "a/b", True),
    (["a/**/b"], "a/x/y/b", True),
    (["a?b"], "a/b", False),
    (["*"], "x/y", True),  # through the parent "x"
    (["file[0-9].txt"], "file1.txt", True),
    (["file[0-9].txt"], "filea.txt", False),
    (["[^a]*"], "b", True),
    (["[^a]*"], "a", False),
    (["\\*"], "*", True),
    (["\\*"], "a", False),
    (["a.b"], "axb", False),  # "." is literal
    # comments and blank lines
    (["# comment", "", "   "], "# comment", False),
    (["  spaced  "], "spaced", True),
]


@pytest.mark.parametrize(("lines", "path", "ignored"), IGNORE_TABLE)
def test_dockerignore_table(lines: list[str], path: str, ignored: bool) -> None:
    assert IgnoreRules(lines).matches(path) is ignored


def test_the_context_itself_is_never_ignored() -> None:
    assert not IgnoreRules(["*", "**"]).matches(".")


def test_bad_patterns_are_usage_errors() -> None:
    with pytest.raises(UsageError, match="illegal exclusion"):
        IgnoreRules(["!"])
    with pytest.raises(UsageError, match="bad pattern"):
        IgnoreRules(["[a-"])


@pytest.mark.parametrize(
    ("path", "clean"),
    [("", "."), ("a//b/", "a/b"), ("/../x", "/x"), ("../../x", "../../x"), ("a/../..", ".."),
     ("//a", "/a"), ("./", ".")],
)  # fmt: skip
def test_go_clean(path: str, clean: str) -> None:
    assert go_clean(path) == clean


# -- a context on disk ---------------------------------------------------------------------------
def write(path: Path, data: str = "x", mode: int = 0o644) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(data)
    path.chmod(mode)
    return path


@pytest.fixture
def ctx_dir(tmp_path: Path) -> Path:
    root = tmp_path / "pc-h2-ctx"
    write(root / "Dockerfile", "FROM scratch\n")
    write(root / "a.txt", "a")
    write(root / "b.txt", "b")
    write(root / "c.py", "c")
    write(root / "src/main.py", "main")
    write(root / "src/lib/util.py", "util")
    write(root / "src/notes.md", "notes")
    write(root / "build/out.o", "obj")
    write(root / "build/keep/k.txt", "keep")
    return root


def test_context_must_be_a_directory(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="not a directory"):
        Context(str(tmp_path / "nope"))
    with pytest.raises(UsageError, match="not a directory"):
        Context(str(write(tmp_path / "file")))


def test_dockerignore_is_read_with_bom_and_comments(ctx_dir: Path) -> None:
    (ctx_dir / ".dockerignore").write_bytes(b"\xef\xbb\xbf*.txt\n# b.txt\n\n!b.txt\n")
    ctx = Context(str(ctx_dir))
    assert ctx.ignored("a.txt") and not ctx.ignored("b.txt") and not ctx.ignored("c.py")


def test_dockerfile_specific_ignore_file_wins(ctx_dir: Path) -> None:
    write(ctx_dir / ".dockerignore", "a.txt\n")
    write(ctx_dir / "Dockerfile.dockerignore", "b.txt\n")
    ctx = Context(str(ctx_dir))
    assert ctx.ignored("b.txt") and not ctx.ignored("a.txt")


def test_sources_clean_sort_and_deduplicate(ctx_dir: Path) -> None:
    ctx = Context(str(ctx_dir))
    assert ctx.sources(["b.txt", "./a.txt", "/a.txt", "a.txt/", "src/../b.txt"]) == [
        "a.txt",
        "b.txt",
    ]
    assert ctx.sources(["."]) == ["."]
    assert ctx.sources(["/"]) == ["."]


@pytest.mark.parametrize("pattern", ["../x", "/../x", "a/../../x", "..", "src/../../a.txt"])
def test_sources_outside_the_context_are_refused(ctx_dir: Path, pattern: str) -> None:
    with pytest.raises(UsageError) as err:
        Context(str(ctx_dir)).sources([pattern])
    assert str(err.value) == f"COPY failed: forbidden path outside the build context: {pattern}"


def test_sources_globs(ctx_dir: Path) -> None:
    ctx = Context(str(ctx_dir))
    assert ctx.sources(["*.txt"]) == ["a.txt", "b.txt"]
    assert ctx.sources(["[ab].txt", "c.?y"]) == ["a.txt", "b.txt", "c.py"]
    assert ctx.sources(["src/*.py"]) == ["src/main.py"]  # * stays in one path element
    assert ctx.sources(["*/*.py"]) == ["src/main.py"]
    assert ctx.sources(["s*/l*/u*"]) == ["src/lib/util.py"]


def test_sources_not_found(ctx_dir: Path) -> None:
    ctx = Context(str(ctx_dir))
    with pytest.raises(UsageError) as err:
        ctx.sources(["nope"])
    assert str(err.value) == "COPY failed: file not found in build context: nope"
    with pytest.raises(UsageError, match="file not found in build context: \\*.rs$"):
        ctx.sources(["*.rs"])


def test_ignored_files_are_invisible_to_copy(ctx_dir: Path) -> None:
    write(ctx_dir / ".dockerignore", "a.txt\nsrc/lib\n")
    ctx = Context(str(ctx_dir))
    with pytest.raises(UsageError) as err:
        ctx.sources(["a.txt"])
    assert str(err.value) == (
        "COPY failed: file not found in build context: a.txt (excluded by .dockerignore?)"
    )
    assert ctx.sources(["*.txt"]) == ["b.txt"]
    assert [p for p, _ in ctx.walk("src")] == ["src", "src/main.py", "src/notes.md"]
    assert "a.txt" not in [p for p, _ in ctx.walk(".")]


def test_copy_dot_drops_the_dockerfile_only_if_a_pattern_says_so(ctx_dir: Path) -> None:
    assert "Dockerfile" in [p for p, _ in Context(str(ctx_dir)).walk(".")]
    write(ctx_dir / ".dockerignore", "Dockerfile\n.dockerignore\n")
    names = [p for p, _ in Context(str(ctx_dir)).walk(".")]
    assert "Dockerfile" not in names and ".dockerignore" not in names


def test_reincluded_content_of_an_ignored_directory(ctx_dir: Path) -> None:
    write(ctx_dir / ".dockerignore", "build\n!build/keep\n")
    ctx = Context(str(ctx_dir))
    assert ctx.ignored("build") and ctx.ignored("build/out.o") and not ctx.ignored("build/keep")
    assert ctx.sources(["build"]) == ["build"]  # still there: it holds build/keep
    walked = [p for p, _ in ctx.walk("build")]
    assert walked == ["build", "build/keep", "build/keep/k.txt"]


def test_symlinks_are_never_followed(ctx_dir: Path, tmp_path: Path) -> None:
    outside = tmp_path / "pc-h2-outside"
    write(outside / "secret", "secret")
    os.symlink(str(outside), ctx_dir / "out")
    os.symlink("src", ctx_dir / "inner")
    ctx = Context(str(ctx_dir))
    assert ctx.sources(["out"]) == ["out"]
    assert [p for p, _ in ctx.walk("out")] == ["out"]  # a link, not descended
    with pytest.raises(UsageError, match="file not found"):
        ctx.sources(["out/secret"])  # a symlink in the middle of the path is not followed
    with pytest.raises(UsageError, match="file not found"):
        ctx.sources(["inner/main.py"])


# -- the digest ----------------------------------------------------------------------------------
def test_digest_ignores_mtime_but_not_mode_or_content(ctx_dir: Path) -> None:
    ctx = Context(str(ctx_dir))
    first = ctx.digest(["src", "a.txt"])
    assert first.startswith("sha256:") and len(first) == 7 + 64
    assert ctx.digest(["a.txt", "src", "a.txt"]) == first  # order and duplicates do not count
    os.utime(ctx_dir / "src/main.py", (1, 1))
    os.utime(ctx_dir / "src", (2, 2))
    assert ctx.digest(["src", "a.txt"]) == first
    (ctx_dir / "src/main.py").chmod(0o755)
    moded = ctx.digest(["src", "a.txt"])
    assert moded != first
    write(ctx_dir / "src/main.py", "changed", 0o755)
    assert ctx.digest(["src", "a.txt"]) != moded


def test_digest_does_not_see_ignored_files_or_host_owners(ctx_dir: Path) -> None:
    write(ctx_dir / ".dockerignore", "src/notes.md\n")
    ctx = Context(str(ctx_dir))
    first = ctx.digest(["src"])
    write(ctx_dir / "src/notes.md", "other notes")
    assert ctx.digest(["src"]) == first
    if os.geteuid() == 0:
        os.chown(ctx_dir / "src/main.py", 1234, 1234)
        assert ctx.digest(["src"]) == first


def test_digest_hashes_symlinks_as_links(ctx_dir: Path, tmp_path: Path) -> None:
    target = write(tmp_path / "pc-h2-target", "one")
    os.symlink(str(target), ctx_dir / "link")
    ctx = Context(str(ctx_dir))
    first = ctx.digest(["link"])
    write(target, "two")  # outside the context: never read
    assert ctx.digest(["link"]) == first
    os.unlink(ctx_dir / "link")
    os.symlink(str(target) + "x", ctx_dir / "link")
    assert ctx.digest(["link"]) != first


def test_digest_sees_renames(ctx_dir: Path) -> None:
    ctx = Context(str(ctx_dir))
    first = ctx.digest(["src"])
    os.rename(ctx_dir / "src/notes.md", ctx_dir / "src/notes2.md")
    assert ctx.digest(["src"]) != first
