"""``python -m dreamvideo.cli``: the command line."""

import sys

from dreamvideo.cli import main

sys.exit(main())
