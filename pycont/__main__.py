"""``python -m pycont ARGS``: the same as the ``pycont`` command."""

import sys

from pycont.cli import main

sys.exit(main())
