"""``python -m dreamvideo.ui [--host H] [--port P] [--outputs DIR] ...``: the same as ``dreamvideo ui``."""

import argparse
import sys

from ..errors import DreamError


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="dreamvideo")
    from . import add_ui_parser

    add_ui_parser(parser.add_subparsers(dest="command", required=True))
    ns = parser.parse_args(["ui", *(sys.argv[1:] if argv is None else argv)])
    try:
        return ns._run(ns)
    except DreamError as e:
        print(f"dreamvideo: error: {e}", file=sys.stderr)
        return e.exit_code


if __name__ == "__main__":
    sys.exit(main())
