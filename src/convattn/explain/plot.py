"""Overlay grids with matplotlib's object API (no pyplot: no global state, safe in callbacks)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from convattn.explain.methods import method_of

CMAP = "jet"
ALPHA = 0.5
PANEL_INCHES = 1.7


def map_title(name: str) -> str:
    """The panel title of map `name` from the method table; a map no method makes keeps its name."""
    method = method_of(name)
    return name if method is None else method.panel_title(name)


@dataclass
class Cell:
    """One panel: an image in [0, 1] (H, W) or (H, W, 3), optionally a map in [0, 1] on top."""

    image: np.ndarray
    overlay: np.ndarray | None = None
    title: str = ""


def draw(ax: Axes, cell: Cell) -> None:
    cmap = "gray" if cell.image.ndim == 2 else None
    ax.imshow(cell.image, cmap=cmap, vmin=0, vmax=1, interpolation="nearest")
    if cell.overlay is not None:
        ax.imshow(cell.overlay, cmap=CMAP, alpha=ALPHA, vmin=0, vmax=1, interpolation="nearest")
    ax.set_title(cell.title, fontsize=8)
    ax.set_axis_off()


def grid_figure(rows: Sequence[Sequence[Cell]], title: str = "") -> Figure:
    """A figure of len(rows) x max(len(row)) panels; short rows leave blanks on the right."""
    n_rows, n_cols = len(rows), max(len(r) for r in rows)
    # Constrained layout keeps two-line panel titles clear of the row above.
    height = (PANEL_INCHES + 0.3) * n_rows + 0.3 * bool(title)
    fig = Figure(figsize=(PANEL_INCHES * n_cols, height), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(n_rows, n_cols, squeeze=False)
    for r, row in enumerate(rows):
        for c in range(n_cols):
            if c < len(row):
                draw(axes[r][c], row[c])
            else:
                axes[r][c].remove()
    if title:
        fig.suptitle(title, fontsize=9)
    return fig


def num_panels(fig: Figure) -> int:
    """The image panels a figure holds (its axes)."""
    return len(fig.axes)


def class_name(index: int | None, classes: Sequence[str] | None) -> str:
    if index is None or index < 0:  # unknown, e.g. an image file
        return "?"
    return str(classes[index]) if classes is not None and index < len(classes) else str(index)


def explanation_figure(
    image: np.ndarray, maps: dict[str, np.ndarray], true: str, pred: str, label: str = ""
) -> Figure:
    """One row: the input, then each map as an overlay; titled with true and predicted class."""
    cells = [Cell(image, title="input")]
    cells += [Cell(image, m, map_title(name)) for name, m in maps.items()]
    prefix = f"{label}: " if label else ""
    return grid_figure([cells], title=f"{prefix}true {true}, predicted {pred}")


def comparison_figure(rows: Sequence[Sequence[Cell]]) -> Figure:
    """Rows = images, columns = the input and each arm's main maps (cells built by the caller)."""
    return grid_figure(rows, title="Where each arm looks (overlay: normalised map, jet)")


def save_png(fig: Figure, path: str | os.PathLike) -> int:
    """Write the figure as PNG (panel count in its metadata); returns the panel count."""
    panels = num_panels(fig)
    fig.savefig(path, dpi=100, metadata={"Description": f"panels={panels}"})
    return panels


def to_array(fig: Figure) -> np.ndarray:
    """The rendered figure as an (H, W, 3) uint8 array (for wandb.Image)."""
    canvas = fig.canvas if isinstance(fig.canvas, FigureCanvasAgg) else FigureCanvasAgg(fig)
    canvas.draw()
    return np.asarray(canvas.buffer_rgba())[..., :3].copy()
