"""`python -m pumpwatch` runs the `pumpwatch` command."""

import sys

from pumpwatch.cli import main

sys.exit(main())
