"""``python -m reindex_fsm.cli``: the same as the ``reindex-fsm`` command."""

from . import main

main()
