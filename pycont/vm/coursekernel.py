"""The IPython kernel the course's kernelspec starts, here or in the lab VM.

It is IPython's own kernel with one difference: its ``language_info`` has no Python
``version``. JupyterLab copies a kernel's language_info into the notebook's metadata when it
opens one; a committed chapter that says 3.11.7 opened on a machine with 3.11.2 would then be
"modified" at once, and autosave would rewrite a file the learner never touched. The chapters
are committed with this same versionless language_info (notebooks/_src/build.py).
"""

from __future__ import annotations

from typing import Any

from ipykernel.ipkernel import IPythonKernel


class CourseKernel(IPythonKernel):
    language_info: dict[str, Any] = {  # noqa: RUF012 - IPythonKernel's own is a class dict
        k: v for k, v in IPythonKernel.language_info.items() if k != "version"
    }
