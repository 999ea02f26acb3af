"""Image references: docker/distribution's grammar, docker.io normalisation, one-line errors."""

from __future__ import annotations

import pytest

from pycont.errors import UsageError
from pycont.images.reference import Reference

DIGEST = "sha256:" + "ab" * 32


@pytest.mark.parametrize(
    ("text", "registry", "repository", "tag", "digest", "short"),
    [
        ("busybox", "docker.io", "library/busybox", "latest", None, "busybox:latest"),
        ("busybox:1.36", "docker.io", "library/busybox", "1.36", None, "busybox:1.36"),
        ("library/busybox", "docker.io", "library/busybox", "latest", None, "busybox:latest"),
        ("docker.io/library/busybox:1", "docker.io", "library/busybox", "1", None, "busybox:1"),
        (
            "index.docker.io/busybox",
            "docker.io",
            "library/busybox",
            "latest",
            None,
            "busybox:latest",
        ),
        ("user/app:v2", "docker.io", "user/app", "v2", None, "user/app:v2"),
        ("ghcr.io/org/app", "ghcr.io", "org/app", "latest", None, "ghcr.io/org/app:latest"),
        ("localhost/app", "localhost", "app", "latest", None, "localhost/app:latest"),
        ("localhost:5000/a/b:t", "localhost:5000", "a/b", "t", None, "localhost:5000/a/b:t"),
        ("[::1]:5000/app", "[::1]:5000", "app", "latest", None, "[::1]:5000/app:latest"),
        ("Registry/app", "Registry", "app", "latest", None, "Registry/app:latest"),
        ("a.b-c/e__f.g-h", "a.b-c", "e__f.g-h", "latest", None, "a.b-c/e__f.g-h:latest"),
        ("my-app---x", "docker.io", "library/my-app---x", "latest", None, "my-app---x:latest"),
        (f"busybox@{DIGEST}", "docker.io", "library/busybox", None, DIGEST, f"busybox@{DIGEST}"),
        (f"busybox:1@{DIGEST}", "docker.io", "library/busybox", "1", DIGEST, f"busybox:1@{DIGEST}"),
        ("app:" + "t" * 128, "docker.io", "library/app", "t" * 128, None, "app:" + "t" * 128),
        ("app:_x.Y-z", "docker.io", "library/app", "_x.Y-z", None, "app:_x.Y-z"),
    ],
)
def test_parse(
    text: str, registry: str, repository: str, tag: str | None, digest: str | None, short: str
) -> None:
    ref = Reference.parse(text)
    assert (ref.registry, ref.repository, ref.tag, ref.digest) == (
        registry,
        repository,
        tag,
        digest,
    )
    assert str(ref) == short
    assert Reference.parse(str(ref)) == ref  # the short form parses back to the same thing
    assert Reference.parse(ref.canonical) == ref


def test_canonical_and_familiar_forms() -> None:
    ref = Reference.parse("busybox")
    assert ref.canonical == "docker.io/library/busybox:latest"
    assert ref.name == "docker.io/library/busybox"
    assert ref.familiar_name == "busybox"
    assert str(Reference.parse("user/app")) == "user/app:latest"
    assert Reference.parse("busybox").with_tag("v2").canonical == "docker.io/library/busybox:v2"


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("Foo", 'invalid reference format "Foo": repository name must be lowercase'),
        ("user/App", "repository name must be lowercase"),
        ("", "at least one component"),
        (":tag", "at least one component"),
        ("a/", "repository name components"),
        ("/a", "repository name components"),
        ("a//b", "repository name components"),
        ("a_-b", "repository name components"),
        ("-a", "repository name components"),
        ("a.", "repository name components"),
        ("a b", "repository name components"),
        ("app:", "invalid tag"),
        ("app:.x", "invalid tag"),
        ("app:-x", "invalid tag"),
        ("app:" + "t" * 129, "invalid tag"),
        ("app@sha256:abc", "invalid digest"),
        ("app@sha256:" + "AB" * 32, "invalid digest"),
        ("app@sha512:" + "ab" * 64, "only sha256"),
        ("ab" * 32, "64-byte hexadecimal"),
        ("a" * 256, "must not be more than 255 characters"),
        ("-bad.host/app", "invalid registry host"),
        ("host:port/app", "invalid registry host"),
        ("a.b-c__d/app", "invalid registry host"),
    ],
)
def test_invalid(text: str, why: str) -> None:
    with pytest.raises(UsageError) as info:
        Reference.parse(text)
    msg = str(info.value)
    assert why in msg
    assert msg.startswith(f'invalid reference format "{text}": ')
    assert "\n" not in msg


def test_name_length_counts_the_registry() -> None:
    host = "r.io/"
    Reference.parse(host + "a" * (255 - len(host)))
    with pytest.raises(UsageError, match="255"):
        Reference.parse(host + "a" * (256 - len(host)))


def test_colon_before_last_slash_is_a_port_not_a_tag() -> None:
    ref = Reference.parse("localhost:5000/app")
    assert (ref.registry, ref.tag) == ("localhost:5000", "latest")
