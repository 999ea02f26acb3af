import sys

from pycont.cli import main

sys.exit(main())
