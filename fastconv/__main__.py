"""`python -m fastconv` runs the command line (see fastconv.cli)."""

import sys

from fastconv.cli import main

sys.exit(main())
