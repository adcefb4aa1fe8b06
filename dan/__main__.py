"""``python -m dan`` is the ``dan`` command."""

import sys

from dan.cli.main import main

sys.exit(main())
