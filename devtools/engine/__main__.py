"""``python3 -m devtools.engine COMMAND``: see ``devtools.engine.cli``."""

import sys

from .cli import main

sys.exit(main())
