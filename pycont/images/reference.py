"""Image references: the ``[registry/]path[:tag][@digest]`` names that docker run accepts.

A reference names an image in a registry: ``busybox`` is short for
``docker.io/library/busybox:latest``. The grammar is the one of docker/distribution's
``reference`` package (``reference.go``); it is reproduced here rule by rule::

    reference        := name [ ":" tag ] [ "@" digest ]
    name             := [domain "/"] path-component ["/" path-component]*
    domain           := host [":" port-number]
    host             := domain-name | "[" IPv6 "]"
    domain-name      := domain-component ["." domain-component]*
    domain-component := /([a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])/
    path-component   := /[a-z0-9]+/ [separator /[a-z0-9]+/]*
    separator        := /[_.]|__|[-]+/
    tag              := /[\\w][\\w.-]{0,127}/
    digest           := "sha256:" /[0-9a-f]{64}/      (pycont knows sha256 only)

The first component is a registry when it contains ``.`` or ``:``, is ``localhost``, or has
an upper-case letter (docker's ``splitDockerDomain``); otherwise the registry is Docker Hub,
and a one-component name gets the ``library/`` namespace of its official images.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

from pycont.errors import UsageError

__all__ = ["DEFAULT_REGISTRY", "DEFAULT_TAG", "Reference"]

DEFAULT_REGISTRY = "docker.io"
DEFAULT_TAG = "latest"
OFFICIAL_NAMESPACE = "library"
NAME_TOTAL_LENGTH_MAX = 255

_ALNUM = r"[a-z0-9]+"
_SEPARATOR = r"(?:[._]|__|[-]+)"
_PATH_COMPONENT = rf"{_ALNUM}(?:{_SEPARATOR}{_ALNUM})*"
_PATH = re.compile(rf"{_PATH_COMPONENT}(?:/{_PATH_COMPONENT})*")
_DOMAIN_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_HOST = rf"(?:{_DOMAIN_COMPONENT}(?:\.{_DOMAIN_COMPONENT})*|\[[a-fA-F0-9:]+\])"
_DOMAIN = re.compile(rf"{_HOST}(?::[0-9]+)?")
_TAG = re.compile(r"[\w][\w.-]{0,127}", re.ASCII)
_DIGEST = re.compile(r"sha256:[0-9a-f]{64}")
_ANY_DIGEST = re.compile(r"[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}")
_IMAGE_ID = re.compile(r"[0-9a-f]{64}")


def _invalid(text: str, why: str) -> UsageError:
    # json.dumps quotes as docker does, and escapes a newline so the message stays one line.
    return UsageError(f"invalid reference format {json.dumps(text, ensure_ascii=False)}: {why}")


@dataclass(frozen=True)
class Reference:
    """A parsed, normalised image reference. ``str()`` gives docker's short familiar form."""

    registry: str  # "docker.io", "localhost:5000", "ghcr.io"
    repository: str  # "library/busybox", "user/app"
    tag: str | None = None  # None only when a digest pins the image
    digest: str | None = None  # "sha256:<64 hex>"

    @classmethod
    def parse(cls, text: str) -> Reference:
        """Parse ``text``; raise UsageError (one line, naming the rule broken) if invalid."""
        if not isinstance(text, str) or not text:
            raise _invalid(str(text), "repository name must have at least one component")
        if _IMAGE_ID.fullmatch(text):
            raise _invalid(text, "cannot specify 64-byte hexadecimal strings as a repository name")
        rest, digest = text, None
        if "@" in rest:
            rest, _, digest = rest.rpartition("@")
            if not _DIGEST.fullmatch(digest):
                if _ANY_DIGEST.fullmatch(digest) and not digest.startswith("sha256:"):
                    raise _invalid(text, f"unsupported digest {digest!r}: only sha256 is known")
                raise _invalid(text, f"invalid digest {digest!r}: expected sha256:<64 hex digits>")
        tag = None
        colon, slash = rest.rfind(":"), rest.rfind("/")
        if colon > slash:  # a ":" before the last "/" is a registry port, not a tag
            rest, tag = rest[:colon], rest[colon + 1 :]
            if not _TAG.fullmatch(tag):
                raise _invalid(
                    text, f"invalid tag {tag!r}: letters, digits, '_', '.' and '-', at most 128"
                )
        if not rest:
            raise _invalid(text, "repository name must have at least one component")
        registry, path = _split_registry(rest)
        if registry is not None and not _DOMAIN.fullmatch(registry):
            raise _invalid(text, f"invalid registry host {registry!r}")
        if not _PATH.fullmatch(path):
            if _PATH.fullmatch(path.lower()):
                raise _invalid(text, "repository name must be lowercase")
            raise _invalid(
                text,
                "repository name components are lower-case letters and digits, separated by "
                "'.', '_', '__' or '-', joined by '/'",
            )
        if registry in (None, "index.docker.io"):
            registry = DEFAULT_REGISTRY
        if registry == DEFAULT_REGISTRY and "/" not in path:
            path = f"{OFFICIAL_NAMESPACE}/{path}"
        # docker checks the normalised name (ParseNormalizedNamed): "a" * 250 is too long as
        # docker.io/library/aaa..., and its canonical form must parse again.
        if len(registry) + 1 + len(path) > NAME_TOTAL_LENGTH_MAX:
            raise _invalid(
                text, f"repository name must not be more than {NAME_TOTAL_LENGTH_MAX} characters"
            )
        if tag is None and digest is None:
            tag = DEFAULT_TAG
        return cls(registry, path, tag, digest)

    # -- forms ---------------------------------------------------------------------------
    @property
    def name(self) -> str:
        """The full repository name: ``docker.io/library/busybox``."""
        return f"{self.registry}/{self.repository}"

    @property
    def familiar_name(self) -> str:
        """The name as docker prints it: ``busybox``, ``user/app``, ``ghcr.io/x/y``."""
        if self.registry != DEFAULT_REGISTRY or _split_registry(self.repository)[0] is not None:
            # docker.io/0.0/app without its registry would read as registry 0.0: keep it
            return self.name
        return self.repository.removeprefix(f"{OFFICIAL_NAMESPACE}/")

    def _suffix(self) -> str:
        return (f":{self.tag}" if self.tag else "") + (f"@{self.digest}" if self.digest else "")

    @property
    def canonical(self) -> str:
        """Fully qualified: ``docker.io/library/busybox:latest``. The store's index key."""
        return self.name + self._suffix()

    def __str__(self) -> str:
        return self.familiar_name + self._suffix()

    def with_tag(self, tag: str) -> Reference:
        if not _TAG.fullmatch(tag):
            raise _invalid(tag, "invalid tag")
        return Reference(self.registry, self.repository, tag, None)


def _split_registry(name: str) -> tuple[str | None, str]:
    """docker's splitDockerDomain: is the first component a registry host?"""
    first, sep, rest = name.partition("/")
    if not sep:
        return None, name
    if "." in first or ":" in first or first == "localhost" or first.lower() != first:
        return first, rest
    return None, name
