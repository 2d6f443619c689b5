"""Shared look of lorascope's figures: colours by rank, dash and symbol by rule, layout, number parsing.

Pure helpers for :mod:`app.figures`; nothing here reads a study or touches a UI.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import numpy as np
import plotly.graph_objects as go
from plotly.colors import qualitative, sample_colorscale

Record = dict[str, Any]

UIREVISION = "lorascope"
HEIGHT = 460
SQRT_LAW = "sqrt-law"  # grad-norm series of standard trials at alpha = c * sqrt(r): rsLoRA's gamma
SERIES_LABEL = {SQRT_LAW: "sqrt law (standard, α=c·√r)"}
# by rule, and for the sqrt-law series where figures show it beside the rules
RULE_DASH = {"standard": "dot", "rslora": "solid", SQRT_LAW: "dash"}
RULE_SYMBOL = {"standard": "circle", "rslora": "diamond", SQRT_LAW: "square"}
RULE_COLOR = {"standard": "#d62728", "rslora": "#1f77b4", SQRT_LAW: "#9467bd"}
OTHER_COLOR = "#7f7f7f"
METRIC_COLOR = {"eval": "#1f77b4", "final": "#ff7f0e", "svd_floor": "#444444"}
SVD_FLOOR_NAME = "SVD floor (best any rank-r adapter can do)"
STABLE_ABOVE = -0.15  # grad-norm slope vs rank above this: rank-stabilized
COLLAPSING_BELOW = -0.35  # below this: collapsing like standard LoRA's r^-0.5
MAX_POINTS = 2000  # per curve trace; longer curves are thinned (the last point is kept)

def rank_color(rank: int | None, ranks: Iterable[int | None]) -> str:
    """The colour of ``rank`` on a sequential palette over the sorted distinct ``ranks``."""
    distinct = sorted({r for r in ranks if r is not None})
    if rank is None or rank not in distinct:
        return OTHER_COLOR
    if len(distinct) == 1:
        return sample_colorscale("Viridis", [0.4])[0]
    return sample_colorscale("Viridis", [0.8 * distinct.index(rank) / (len(distinct) - 1)])[0]

def empty_figure(message: str) -> go.Figure:
    """A blank figure with ``message`` centred on it."""
    fig = go.Figure(layout=layout(""))
    fig.update_layout(xaxis={"visible": False}, yaxis={"visible": False})
    fig.add_annotation(text=message, x=0.5, y=0.5, xref="paper", yref="paper", showarrow=False,
                       font={"size": 15, "color": "#666666"})
    return fig

def num(value: Any) -> float | None:
    """A finite float from a number or numeric string; None for anything else."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            return None
    if isinstance(value, (int, float, np.integer, np.floating)) and math.isfinite(value):
        return float(value)
    return None

def layout(title: str) -> go.Layout:
    return go.Layout(template="plotly_white", height=HEIGHT, uirevision=UIREVISION, hovermode="closest",
                     title={"text": title, "font": {"size": 15}, "x": 0.02},
                     margin={"l": 60, "r": 20, "t": 45, "b": 40},
                     # below the plot, so the drawing keeps the full width of a half-page column
                     legend={"font": {"size": 10}, "itemsizing": "constant", "groupclick": "togglegroup",
                             "orientation": "h", "yanchor": "top", "y": -0.2, "x": 0})

def rule_order(rule: str) -> int:
    return list(RULE_DASH).index(rule) if rule in RULE_DASH else len(RULE_DASH)

def ordered_rules(rules: Iterable[str]) -> list[str]:
    return sorted(set(rules), key=lambda r: (rule_order(r), str(r)))

def dash(rule: str | None) -> str:
    return RULE_DASH.get(rule, "dashdot")

def symbol(rule: str | None, hollow: bool = False) -> str:
    symbol = RULE_SYMBOL.get(rule, "square")
    return f"{symbol}-open" if hollow else symbol

def series_label(name: str) -> str:
    """How a rule or series is named in legends and verdicts."""
    return SERIES_LABEL.get(name, name)

def rule_color(rule: str) -> str:
    return RULE_COLOR.get(rule, OTHER_COLOR)

def setting_color(index: int, rule: str) -> str:
    """A colour per (training setting, rule) when a figure shows several settings."""
    palette = qualitative.D3
    return palette[(2 * index + rule_order(rule)) % len(palette)]

def log_ticks(traces: Iterable[go.Scatter | dict]) -> dict[str, Any]:
    """Tick settings for a log y axis over ``traces``: decades when the data span one, else Plotly's own.

    Decades only, because the 2..9 minor labels collide in a small plot; but data within one decade
    (a single trial's grad norm) would then get no labelled tick at all.
    """
    ys = [trace.get("y") if isinstance(trace, dict) else trace.y for trace in traces]
    values = [v for y in ys if y is not None for v in y if v is not None and v > 0]
    if values and math.floor(math.log10(min(values))) == math.floor(math.log10(max(values))):
        return {}
    return {"dtick": 1}

def rgba(color: str, alpha: float) -> str:
    color = color.lstrip("#")
    r, g, b = (int(color[i:i + 2], 16) for i in (0, 2, 4))
    return f"rgba({r}, {g}, {b}, {alpha})"

def fmt(value: Any) -> str:
    number = num(value)
    return f"{number:.4g}" if number is not None else str(value)

def trace_label(rec: Record, *, lr: bool = False) -> str:
    """``r=16 rslora α=16``, with `` lr=0.001`` when asked."""
    text = f"r={rec.get('rank')} {rec.get('rule')} α={fmt(rec.get('alpha'))}"
    return text + (f" lr={fmt(rec.get('lr'))}" if lr else "")

def trial_meta(rec: Record, kind: str) -> dict[str, Any]:
    return {"trial": rec.get("number"), "study": rec.get("study"), "kind": kind}

def log_rank_axis(ranks: list[int]) -> dict[str, Any]:
    return {"type": "log", "tickmode": "array", "tickvals": list(ranks), "ticktext": [str(r) for r in ranks]}

def rank_grid(low: float, high: float, *, extra: Iterable[float] = (), n: int = 40) -> list[float]:
    """Geometrically spaced ranks from ``low`` to ``high``, plus the ``extra`` ranks exactly."""
    exact = {float(r) for r in extra} | {float(low), float(high)}
    spaced = np.geomspace(low, high, n).tolist() if high > low else []
    near = lambda x: any(abs(x - e) <= 1e-9 * e for e in exact)  # noqa: E731 - drop float near-duplicates
    return sorted(exact | {x for x in spaced if not near(x)})

def two(value: float) -> str:
    """Two decimals, with no ``-0.00``."""
    return f"{round(value, 2) + 0.0:.2f}"

def thin(xs: list, ys: list, max_points: int) -> tuple[list, list]:
    if max_points < 2 or len(xs) <= max_points:
        return xs, ys
    idx = np.unique(np.linspace(0, len(xs) - 1, max_points).round().astype(int))
    return [xs[i] for i in idx], [ys[i] for i in idx]

def series(curve: list[dict[str, Any]], field: str, *,
            positive: bool = False) -> tuple[list[float], list[float | None]]:
    """Steps and values of ``field`` (None where missing, so the line shows a gap)."""
    xs, ys = [], []
    for point in curve:
        step = num(point.get("step"))
        if step is None:
            continue
        value = num(point.get(field))
        if value is not None and positive and value <= 0:
            value = None
        xs.append(step)
        ys.append(value)
    return xs, ys
