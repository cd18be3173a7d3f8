"""mkdocs hook: the command-line reference, generated from the CLI's parser (which is built from the settings
dataclasses, the single source of defaults and ranges), so the docs cannot drift from the code.

Also shows the docstrings' Sphinx roles (:class:`~a.B`), which mkdocstrings leaves as text, as code.

A page writes ``<!-- cli-reference COMMAND -->`` (``plan video`` for a nested command) and gets that command's
usage and one table per group of flags: the flag, its value and the ``--help`` text with its range and default.
``python docs/hooks/cli_reference.py video`` prints the same markdown.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
MARKER = re.compile(r"<!-- cli-reference ([a-z ]+?) -->")


def _parser(command: str) -> argparse.ArgumentParser:
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    from dreamvideo.cli import build_parser

    parser = build_parser()
    for word in command.split():
        sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
        if word not in sub.choices:
            raise KeyError(f"no command {command!r} (have: {', '.join(sub.choices)})")
        parser = sub.choices[word]
    return parser


def _cell(text: str) -> str:
    return " ".join(str(text).split()).replace("|", "\\|")


def _flag(action: argparse.Action) -> str:
    names = ", ".join(f"`{s}`" for s in action.option_strings) or f"`{action.metavar or action.dest}`"
    if action.nargs == 0:
        return names
    if action.choices is not None:
        value = "{" + ",".join(str(c) for c in action.choices) + "}"
    else:
        value = action.metavar or action.dest.split(".")[-1].upper()
        if isinstance(value, tuple):
            value = " ".join(value)
    return names if not action.option_strings else f"{names} `{value}`"


def reference(command: str, skip: frozenset = frozenset()) -> str:
    """The markdown reference of ``dreamvideo COMMAND``: usage, description and a table per flag group
    (without the flags named in ``skip``)."""
    parser = _parser(command)
    formatter = parser._get_formatter()
    out = [f"```text\n{parser.format_usage().strip()}\n```", ""]
    if parser.description:
        out += [_cell(parser.description), ""]
    for group in parser._action_groups:
        actions = [a for a in group._group_actions
                   if a.help is not argparse.SUPPRESS and not isinstance(a, argparse._SubParsersAction)
                   and not ((set(a.option_strings) or {a.dest}) & skip)]
        if not actions:
            continue
        out += [f"**{_cell(group.title)}**", "", "| flag | what it does |", "| --- | --- |"]
        for a in actions:
            out.append(f"| {_flag(a)} | {_cell(formatter._expand_help(a) if a.help else '')} |")
        out.append("")
    subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    for sub in subs:
        for name in sub.choices:
            base = frozenset(s for a in _parser(name)._actions
                             for s in (a.option_strings or [a.dest])) - {"-o", "--output"}
            out += [f"`dreamvideo {command} {name}` takes every flag of `dreamvideo {name}`, and these:", "",
                    reference(f"{command} {name}", skip=base).split("\n\n", 1)[1], ""]
    return "\n".join(out)


def on_page_markdown(markdown: str, **_) -> str:
    return MARKER.sub(lambda m: reference(m.group(1)), markdown)


ROLE = re.compile(r":(?:class|func|mod|meth|attr|data|exc|obj):<code>(~?)([\w.]+)</code>")


def on_page_content(html: str, **_) -> str:
    """The docstrings' Sphinx roles (:class:`~a.B`), which mkdocstrings leaves as text, shown as code (`B`)."""
    return ROLE.sub(lambda m: f"<code>{m.group(2).rsplit('.', 1)[-1] if m.group(1) else m.group(2)}</code>", html)


if __name__ == "__main__":
    print(reference(" ".join(sys.argv[1:]) or "video"))
