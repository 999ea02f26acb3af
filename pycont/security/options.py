"""docker run's security flags, checked once into a :class:`SecurityOptions`.

``--cap-add``/``--cap-drop`` (capabilities(7) names, or ``ALL``), ``--privileged``,
``--security-opt seccomp=unconfined|PROFILE.json``, ``--security-opt no-new-privileges[=true]``
and ``--read-only``. What the container keeps is fixed here, when it is created; its first
process applies it just before exec (:mod:`pycont.runtime.pid1`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from pycont.errors import UsageError

DEFAULT = "default"
UNCONFINED = "unconfined"
# docker accepts these on machines without AppArmor or SELinux: they ask for nothing.
_NO_OPS = ("apparmor=unconfined", "label=disable", "label:disable", "apparmor:unconfined")
ACCEPTED = (
    "seccomp=unconfined, seccomp=PROFILE.json, no-new-privileges[=true|false], "
    "apparmor=unconfined, label=disable"
)


def _split(opt: str) -> tuple[str, str, str]:
    """``KEY=VALUE``, or docker's older ``KEY:VALUE``: whichever separator comes first, so a
    profile path with a colon in it stays whole."""
    eq, colon = opt.find("="), opt.find(":")
    sep = ":" if colon != -1 and (eq == -1 or colon < eq) else "="
    return opt.partition(sep)


def _default_caps() -> frozenset[str]:
    from pycont.security import capabilities

    return capabilities.DOCKER_DEFAULT


@dataclass(frozen=True)
class SecurityOptions:
    """What a container keeps: its capabilities, its seccomp profile and its view of the kernel.

    ``seccomp`` is ``"default"`` (Docker's profile), ``"unconfined"`` (no filter) or a profile
    read from a file when the container was created (docker reads it at create, too)."""

    caps: frozenset[str] = field(default_factory=_default_caps)
    seccomp: str | dict[str, Any] = DEFAULT
    no_new_privileges: bool = False
    privileged: bool = False
    read_only: bool = False

    @property
    def masked(self) -> bool:
        """Whether Docker's masked and read-only /proc and /sys paths apply (not privileged)."""
        return not self.privileged

    @classmethod
    def from_options(
        cls,
        cap_add: Sequence[str] = (),
        cap_drop: Sequence[str] = (),
        privileged: bool = False,
        security_opt: Sequence[str] = (),
        read_only: bool = False,
    ) -> SecurityOptions:
        from pycont.security import capabilities

        caps = capabilities.resolve(list(cap_add), list(cap_drop), privileged)
        seccomp: str | dict[str, Any] = UNCONFINED if privileged else DEFAULT
        nnp = False
        for opt in security_opt:
            key, sep, value = _split(opt)
            if opt in _NO_OPS:
                continue
            if key == "seccomp" and sep and value:
                if value == UNCONFINED:
                    seccomp = UNCONFINED
                elif not privileged:  # docker: --privileged wins over a profile
                    from pycont.security import seccomp as seccomp_mod

                    seccomp = seccomp_mod.load_profile(value)
            elif key == "no-new-privileges" and value in ("", "true", "false"):
                nnp = value != "false"
            else:
                raise UsageError(f"invalid --security-opt {opt!r}: accepted are {ACCEPTED}")
        return cls(
            caps=caps,
            seccomp=seccomp,
            no_new_privileges=nnp,
            privileged=privileged,
            read_only=read_only,
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "caps": sorted(self.caps),
            "seccomp": self.seccomp,
            "no_new_privileges": self.no_new_privileges,
            "privileged": self.privileged,
            "read_only": self.read_only,
        }

    @classmethod
    def from_json(cls, doc: Mapping[str, Any] | None) -> SecurityOptions:
        """The inverse of :meth:`to_json`; a config written before pycont had these flags
        (``None``) gets Docker's defaults."""
        if not doc:
            return cls()
        return cls(
            caps=frozenset(doc.get("caps", ())),
            seccomp=doc.get("seccomp", DEFAULT),
            no_new_privileges=bool(doc.get("no_new_privileges")),
            privileged=bool(doc.get("privileged")),
            read_only=bool(doc.get("read_only")),
        )

    def summary(self) -> str:
        """One line for inspect and the narration: what the container keeps."""
        seccomp = self.seccomp if isinstance(self.seccomp, str) else "custom profile"
        parts = [
            f"{len(self.caps)} capabilities",
            f"seccomp {seccomp}",
            "masked paths" if self.masked else "no masked paths",
        ]
        if self.no_new_privileges:
            parts.append("no-new-privileges")
        if self.read_only:
            parts.append("read-only root")
        return ", ".join(parts)
