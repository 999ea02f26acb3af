"""Where pycont keeps its files: one root folder, per user.

As root: ``/var/lib/pycont``; as another user: ``$XDG_DATA_HOME/pycont`` (``~/.local/share``).
``PYCONT_ROOT`` overrides both (the tests use a temporary one).
"""

from __future__ import annotations

import os


def root() -> str:
    env = os.environ.get("PYCONT_ROOT")
    if env:
        return os.path.abspath(env)
    return default_root()


def default_root() -> str:
    """The root without PYCONT_ROOT: the system's store as root, the user's otherwise."""
    if os.geteuid() == 0:
        return "/var/lib/pycont"
    base = os.environ.get("XDG_DATA_HOME") or os.path.join(
        os.path.expanduser("~"), ".local", "share"
    )
    return os.path.join(base, "pycont")


def containers_dir() -> str:
    return os.path.join(root(), "containers")


def images_dir() -> str:
    return os.path.join(root(), "images")
