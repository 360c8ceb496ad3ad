"""What every self-contained HTML page and plot of the project shares: the style sheet,
escaping, and plot labels safe from Matplotlib's mathtext."""

from __future__ import annotations

import html

CSS = """body{font-family:sans-serif;margin:2em;max-width:70em}
table{border-collapse:collapse;margin:.5em 0 1.5em}
td,th{border:1px solid #ccc;padding:.25em .6em;text-align:left;vertical-align:top}
.block{color:#b00020}.warn{color:#a65b00}.ok{color:#1b7d2a}img{max-width:100%}"""


def esc(value) -> str:
    return html.escape(str(value), quote=True)


def plain(text: str) -> str:
    # Matplotlib parses "$...$" as mathtext; a class name with a stray "$" would fail to render.
    return str(text).replace("$", r"\$")
