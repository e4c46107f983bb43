"""``python -m gwclient``: the same as the ``gwclient`` command."""

import sys

from gwclient.cli import main

if __name__ == "__main__":
    sys.exit(main())
