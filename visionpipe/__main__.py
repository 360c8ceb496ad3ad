"""``python -m visionpipe``: the same as the ``visionpipe`` command."""

import sys

from visionpipe.cli import main

sys.exit(main())
