"""What every self-contained HTML page and plot of the project shares: the style sheet,
escaping, and plot labels safe from Matplotlib's mathtext."""

from __future__ import annotations

import base64
import html
from pathlib import Path

CSS = """body{font-family:sans-serif;margin:2em;max-width:70em}
table{border-collapse:collapse;margin:.5em 0 1.5em}
td,th{border:1px solid #ccc;padding:.25em .6em;text-align:left;vertical-align:top}
.block{color:#b00020}.warn{color:#a65b00}.ok{color:#1b7d2a}img{max-width:100%}"""


def esc(value) -> str:
    return html.escape(str(value), quote=True)


def plain(text: str) -> str:
    # Matplotlib parses "$...$" as mathtext; a class name with a stray "$" would fail to render.
    return str(text).replace("$", r"\$")


def png_tag(path: Path, alt: str, attributes: str = "") -> str:
    """An <img> of a PNG file inlined as a data URI (the page needs no other file), or a note
    that it was not produced."""
    if not path.is_file():
        return f"<p class='skip'>{esc(alt)}: not produced in this run.</p>"
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    return f'<img alt="{esc(alt)}"{attributes} src="data:image/png;base64,{data}">'


def table_of(headers: list[str], rows: list[list], classes: list[str] | None = None) -> str:
    """An HTML table; numbers right-aligned, other cells as given (already escaped); ``classes``:
    a CSS class per row ("" for none)."""
    head = "".join(f"<th>{esc(h)}</th>" for h in headers)
    body = "".join(
        f"<tr{f' class={chr(34)}{classes[i]}{chr(34)}' if classes and classes[i] else ''}>"
        + "".join(f"<td class='num'>{esc(c)}</td>" if isinstance(c, int | float) else f"<td>{c}</td>" for c in row)
        + "</tr>"
        for i, row in enumerate(rows)
    )
    return f"<table><tr>{head}</tr>{body}</table>"


def num(value, digits: int = 4) -> str:
    """A figure for a table: a count with thousands separators, a score to ``digits`` places, "—" for None."""
    if isinstance(value, int) and not isinstance(value, bool):  # a count, e.g. images per class
        return f"{value:,}"
    return "—" if value is None else f"{value:.{digits}f}"
