"""``python -m tests.chaos.lincheck check FILE``: see cli.py."""

import sys

from .cli import main

sys.exit(main())
