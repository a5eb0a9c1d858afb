"""How the CLI prints: tables that fit the terminal, plain lines in pipes, JSON on request.

A table on a terminal is a rich table sized to the terminal's width; written
to a pipe or a file (a CI log, ``| grep``) it is plain aligned lines that never
wrap or lose a column. ``--json`` prints the same rows as JSON for scripts.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from rich import box
from rich.console import Console
from rich.table import Table

__all__ = ["Column", "console", "err_console", "print_fields", "print_json", "print_table"]

console = Console(highlight=False)
err_console = Console(stderr=True, highlight=False)


@dataclass(frozen=True)
class Column:
    """A table column: numbers align right and never wrap; text folds to fit."""

    name: str
    numeric: bool = False


def print_json(value: Any) -> None:
    """``value`` as indented JSON on stdout (datetimes and paths as strings)."""
    sys.stdout.write(json.dumps(value, indent=2, default=str) + "\n")


def _plain(cell: str) -> str:
    return " ".join(cell.split())  # one line per row, whatever the text holds


def print_table(
    columns: Sequence[Column],
    rows: Iterable[Sequence[str]],
    *,
    title: str | None = None,
    note: str | None = None,
) -> None:
    """Rows under a header: a rich table on a terminal, aligned plain lines elsewhere."""
    rows = [[str(c) for c in row] for row in rows]
    if console.is_terminal:
        table = Table(
            title=title,
            caption=note,
            box=box.SIMPLE_HEAD,
            title_justify="left",
            caption_justify="left",
            show_edge=False,
            padding=(0, 0),  # the box's own blank separators leave one space between columns
        )
        for col in columns:
            table.add_column(
                col.name,
                justify="right" if col.numeric else "left",
                no_wrap=col.numeric,
                overflow="fold",
            )
        for row in rows:
            table.add_row(*row)
        console.print(table)
        return
    lines = [[c.name for c in columns], *([_plain(c) for c in row] for row in rows)]
    widths = [max(len(line[i]) for line in lines) for i in range(len(columns))]
    out = [title] if title else []
    for line in lines:
        cells = [
            cell.rjust(w) if col.numeric else cell.ljust(w)
            for cell, w, col in zip(line, widths, columns, strict=True)
        ]
        out.append("  ".join(cells).rstrip())
    if note:
        out.append(note)
    sys.stdout.write("\n".join(out) + "\n")


def print_fields(fields: Sequence[tuple[str, str]]) -> None:
    """``name  value`` lines, names aligned; values are never cut (a SHA-256 stays whole)."""
    width = max((len(name) for name, _ in fields), default=0)
    sys.stdout.write("".join(f"{name.ljust(width)}  {value}\n" for name, value in fields))
