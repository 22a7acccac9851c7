"""``python -m scheduler`` is ``kabar scheduler``, with the same options.

``python -m scheduler --config kabar.toml --no-dispatch``: the group options (``--config``,
``-v``) may come anywhere; ``KABAR_CONFIG`` works as for ``kabar``.
"""

from __future__ import annotations

import sys

from bot.cli import main

GROUP_FLAGS = ("-v", "--verbose")


def command_line(args: list[str]) -> list[str]:
    """The ``kabar`` arguments for ``args``: group options first, then ``scheduler ...``."""
    group: list[str] = []
    rest: list[str] = []
    i = 0
    while i < len(args):
        arg = args[i]
        if arg == "--config" and i + 1 < len(args):
            group += args[i:i + 2]
            i += 2
            continue
        if arg.startswith("--config=") or arg in GROUP_FLAGS:
            group.append(arg)
        else:
            rest.append(arg)
        i += 1
    return [*group, "scheduler", *rest]


def run() -> None:
    main(args=command_line(sys.argv[1:]), prog_name="python -m scheduler")


if __name__ == "__main__":
    run()
