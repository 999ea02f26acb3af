"""``python -m pycont ARGS``: the same as the ``pycont`` command (the thin client,
:mod:`pycont.client`)."""

import sys

from pycont.client import main

sys.exit(main())
