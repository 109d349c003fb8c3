"""``python -m fishsym`` (:mod:`fishsym.cli`)."""

import sys

from fishsym.cli import main

try:
    import matplotlib
except ImportError:  # the report's figure says how to install it
    pass
else:
    # a batch job writing files: no window, whatever the desktop has
    matplotlib.use("Agg")
sys.exit(main())
