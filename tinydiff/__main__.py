"""``python -m tinydiff``: the same command line as the ``tinydiff`` console script."""
import sys

from tinydiff.cli import main

sys.exit(main())
