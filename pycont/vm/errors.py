"""The one error the VM tools raise on purpose."""

from __future__ import annotations

from pycont.errors import PycontError


class VMError(PycontError):
    """The VM could not be prepared or booted (no qemu, no kernel, a boot that never ended)."""
