"""``python -m dreamvideo.ui [--host H] [--port P] [--outputs DIR] ...``: the same as ``dreamvideo ui``."""

import sys

from ..cli import main

if __name__ == "__main__":
    sys.exit(main(["ui", *sys.argv[1:]]))
