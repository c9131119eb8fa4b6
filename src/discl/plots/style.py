"""One figure style for both tasks: sizes, fonts, colours, and the writer of every figure (PDF + PNG).

Figures are sized for a two-column paper (``COLUMN`` and ``PAGE`` inches wide, 8-point text), drawn with a
colour-blind-safe palette (Okabe & Ito), and saved as a vector PDF plus a 300-dpi PNG through
``discl.fileio``. The PDF carries no creation date, so the same data give the same bytes.
"""

from __future__ import annotations

import io
import logging
import os
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator, Sequence

from discl.fileio import atomic_write_bytes

COLUMN = 3.4  # inches: one column of a two-column paper
PAGE = 7.0  # inches: the full text width
PNG_DPI = 300
FORMATS = ("pdf", "png")
# Okabe & Ito: distinguishable with every common colour-vision deficiency, and in grey print
PALETTE = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#F0E442", "#000000")
REAL_COLOUR = "#4D4D4D"

RC = {
    "font.size": 8, "axes.titlesize": 8, "axes.labelsize": 8, "legend.fontsize": 7, "xtick.labelsize": 7,
    "ytick.labelsize": 7, "figure.titlesize": 9, "font.family": "sans-serif",
    "axes.spines.top": False, "axes.spines.right": False, "axes.grid": True, "grid.alpha": 0.3,
    "grid.linewidth": 0.5, "axes.linewidth": 0.6, "lines.linewidth": 1.2, "lines.markersize": 3,
    "legend.frameon": False, "pdf.fonttype": 42, "ps.fonttype": 42,  # TrueType: editable text in the PDF
    "savefig.bbox": "tight", "savefig.pad_inches": 0.02, "image.interpolation": "nearest",
}


def pyplot():
    """matplotlib's pyplot on the Agg backend (no display on clusters)."""
    import matplotlib

    matplotlib.use("Agg")  # must precede the pyplot import
    import matplotlib.pyplot as plt

    return plt


@contextmanager
def paper_style() -> Iterator[object]:
    """The paper's rcParams for the figures drawn inside; yields pyplot."""
    plt = pyplot()
    from cycler import cycler

    with plt.rc_context({**RC, "axes.prop_cycle": cycler(color=list(PALETTE))}):
        yield plt


def colour(index: int) -> str:
    """The palette's ``index``-th colour (cycled)."""
    return PALETTE[index % len(PALETTE)]


def figure_bytes(fig, fmt: str = "png", dpi: int = PNG_DPI, **savefig: Any) -> bytes:
    """The figure encoded as ``fmt`` (a PDF without its creation date: reproducible bytes)."""
    buffer = io.BytesIO()
    # the PDF backend's font subsetter narrates every table it prunes at INFO
    logging.getLogger("fontTools").setLevel(logging.WARNING)
    metadata = {"CreationDate": None} if fmt == "pdf" else None
    fig.savefig(buffer, format=fmt, dpi=dpi, metadata=metadata, **savefig)
    return buffer.getvalue()


def save_figure(fig, path: str | os.PathLike, formats: Sequence[str] = FORMATS, dpi: int = PNG_DPI,
                close: bool = True, **savefig: Any) -> list[Path]:
    """Write ``fig`` once per format beside ``path`` (its suffix is replaced: ``a.png`` → ``a.pdf``, ``a.png``)."""
    path = Path(path)
    written = []
    for fmt in formats:
        target = path.with_suffix(f".{fmt}")
        atomic_write_bytes(target, figure_bytes(fig, fmt, dpi, **savefig))
        written.append(target)
    if close:
        pyplot().close(fig)
    return written


def level_label(level: int) -> str:
    """A guidance level as the figures name it: ``real`` for 100, ``all`` for the mixed stage, else the number."""
    from discl.curriculum import ALL_LEVELS
    from discl.guidance import REAL

    return "real" if level == REAL else "all" if level == ALL_LEVELS else str(int(level))
