"""What the pictures of ``report`` and ``analyze`` share: matplotlib without a display, a legend
beside its panel, and one plain HTML page of tables and pictures."""

from __future__ import annotations

import html
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only: no display needed, none assumed

import matplotlib.pyplot as plt
from matplotlib.axes import Axes

__all__ = ["Axes", "html_page", "legend_outside", "plt"]


def legend_outside(axes: Axes, *others: Axes) -> None:
    """One legend per panel, outside it on the right, where it hides no data."""
    handles, labels = axes.get_legend_handles_labels()
    for other in others:
        more_handles, more_labels = other.get_legend_handles_labels()
        handles, labels = handles + more_handles, labels + more_labels
    axes.legend(
        handles,
        labels,
        loc="upper left",
        bbox_to_anchor=(1.02, 1.0),
        fontsize=8,
        borderaxespad=0,
        frameon=False,
    )


def html_page(path: Path, title: str, body: str) -> Path:
    """A plain page of tables and pictures, the same for every report."""
    path.write_text(f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>body{{font-family:sans-serif;margin:2em}}table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:4px 8px;text-align:left}}th{{background:#f4f4f4}}</style>
</head><body>
{body}
</body></html>
""")
    return path
