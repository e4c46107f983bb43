"""``python -m glitchflow_stack`` is the ``glitchflow`` command."""

import sys

from glitchflow_stack.cli import main

sys.exit(main())
