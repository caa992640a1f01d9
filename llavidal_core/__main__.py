"""``python -m llavidal_core`` runs the ``llavidal`` command line."""

import sys

from llavidal_core.cli import main

sys.exit(main())
