"""Vega-Lite chart specifications (plain dicts) for the HTML report; pure, no I/O.

Every builder takes already-prepared rows and returns one spec. Data values are compact: times are
epoch milliseconds (``t``), short keys, numbers rounded to 5 significant digits, so 20 features x
168 windows stay well under a megabyte of chart data. Text from the data (feature names, metrics,
categories) travels only as data values, which Vega draws as SVG text and its tooltip escapes.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import numpy as np

from driftline.stats.profile import CategoricalProfile, NumericProfile

Spec = dict[str, Any]

STATUS_ORDER = ["ok", "unknown", "warning", "alert"]
STATUS_COLOURS = ["#4c9a5f", "#b8b8b8", "#e8a33d", "#d2453d"]
STATUS_SCALE = {"domain": STATUS_ORDER, "range": STATUS_COLOURS}
SOURCE_COLOURS = ["#8a8f98", "#2f6fd0"]
#: Numeric reference profiles have 200 quantile bins; the chart merges them into this many.
DISPLAY_BINS = 20
#: Categorical charts show at most this many categories; the rest are merged.
TOP_CATEGORIES = 15
TIME_AXIS = {"title": None, "labelAngle": 0, "labelOverlap": "greedy", "labelFlush": True}
#: The window start ``t`` (ms) on the x axis, and in a tooltip.
TIME_X = {"field": "t", "type": "temporal", "scale": {"type": "utc"}, "axis": TIME_AXIS}
TIME_TIP = {
    "field": "t",
    "type": "temporal",
    "title": "window start (UTC)",
    "format": "%m-%d %H:%M",
    "formatType": "utc",
}
#: Level lines drawn as steps: warning and alert dashed, the reference's value dotted.
LEVEL_LINES = {"w": ("#e8a33d", [4, 3]), "a": ("#d2453d", [4, 3]), "r": ("#555", [1, 2])}


def ms(instant: datetime) -> int:
    """Epoch milliseconds: what Vega-Lite's temporal fields read without parsing."""
    return int(instant.timestamp() * 1000)


def num(value: Any) -> float | None:
    """A finite float rounded to 5 significant digits, or None (NaN and inf are not JSON)."""
    if value is None or isinstance(value, bool):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    if not math.isfinite(number):
        return None
    return float(f"{number:.5g}")


def _base(width: int | str, height: int) -> Spec:
    return {"width": width, "height": height, "config": {"view": {"stroke": "#ddd"}, "axis": {"labelLimit": 220}}}


def status_heatmap(rows: list[dict[str, Any]], row_title: str, order: Sequence[str], height_per_row: int = 16) -> Spec:
    """Rows ``{y, t, e, s}`` (label, window start/end ms, status) as coloured cells: labels x windows."""
    spec = _base("container", max(60, height_per_row * len(order)))
    spec.update(
        {
            "data": {"values": rows},
            "mark": {"type": "rect", "tooltip": True},
            "encoding": {
                "x": TIME_X,
                "x2": {"field": "e"},
                "y": {"field": "y", "type": "nominal", "sort": list(order), "title": row_title},
                "color": {
                    "field": "s",
                    "type": "nominal",
                    "scale": STATUS_SCALE,
                    "legend": {"title": "status", "orient": "top"},
                },
                "tooltip": [
                    {"field": "y", "title": row_title},
                    {
                        "field": "t",
                        "type": "temporal",
                        "title": "window start (UTC)",
                        "format": "%Y-%m-%d %H:%M",
                        "formatType": "utc",
                    },
                    {"field": "s", "title": "status"},
                    {"field": "d", "title": "worst"},
                ],
            },
        }
    )
    return spec


def timeseries(
    rows: list[dict[str, Any]],
    *,
    y_title: str = "value",
    columns: int = 2,
    width: int = 300,
    height: int = 110,
    independent: bool = True,
) -> Spec:
    """Small multiples over time, one panel per ``m``.

    Rows ``{t, m, v, s}`` and optionally ``w``/``a`` (warning/alert level, dashed), ``r`` (reference
    value, dotted) and ``lo``/``hi`` (an expected band, shaded). Points are coloured by status ``s``.
    """
    present = {key for row in rows for key, value in row.items() if value is not None}
    tooltip = [
        {"field": "m", "title": "metric"},
        TIME_TIP,
        {"field": "v", "title": "value"},
        {"field": "s", "title": "status"},
    ]
    tooltip += [
        {"field": k, "title": title}
        for k, title in (("w", "warning"), ("a", "alert"), ("r", "reference"))
        if k in present
    ]
    layers: list[Spec] = []
    if {"lo", "hi"} <= present:
        layers.append(
            {
                "transform": [{"filter": "isValid(datum.lo) && isValid(datum.hi)"}],
                "mark": {"type": "area", "opacity": 0.18, "color": "#2f6fd0"},
                "encoding": {
                    "x": TIME_X,
                    "y": {"field": "lo", "type": "quantitative", "title": y_title},
                    "y2": {"field": "hi"},
                },
            }
        )
    layers += _level_lines("war", present, {"type": "quantitative", "title": y_title})
    layers.append(
        {
            "transform": [{"filter": "isValid(datum.v)"}],
            "mark": {"type": "line", "color": "#2f6fd0", "strokeWidth": 1.2},
            "encoding": {
                "x": TIME_X,
                "y": {"field": "v", "type": "quantitative", "title": y_title, "scale": {"zero": False}},
            },
        }
    )
    layers.append(
        {
            "transform": [{"filter": "isValid(datum.v)"}],
            "mark": {"type": "point", "filled": True, "size": 18},
            "encoding": {
                "x": TIME_X,
                "y": {"field": "v", "type": "quantitative", "title": y_title},
                "color": {"field": "s", "type": "nominal", "scale": STATUS_SCALE, "legend": None},
                "tooltip": tooltip,
            },
        }
    )
    return _panels(rows, layers, columns, width, height, independent)


def estimate_chart(rows: list[dict[str, Any]], *, columns: int = 3, width: int = 300, height: int = 110) -> Spec:
    """Estimated against realised performance, one panel per metric ``m``.

    Rows ``{t, m, e, lo, hi, s}``: the estimate ``e`` (line) with its band ``lo``..``hi`` (shaded) and
    status ``s``; optionally ``v``, the realised metric once labels arrived (points, coloured by its
    status ``vs``), ``a`` (alert bound, dashed) and ``r`` (the reference's estimate, dotted).
    """
    present = {key for row in rows for key, value in row.items() if value is not None}
    y_field = {"type": "quantitative", "title": None, "scale": {"zero": False}}
    layers: list[Spec] = [
        {
            "transform": [{"filter": "isValid(datum.lo) && isValid(datum.hi)"}],
            "mark": {"type": "area", "opacity": 0.2, "color": "#2f6fd0", "interpolate": "step-after"},
            "encoding": {"x": TIME_X, "y": {"field": "lo", **y_field}, "y2": {"field": "hi"}},
        },
    ]
    layers += _level_lines("ar", present, y_field)
    layers.append(
        {
            "transform": [{"filter": "isValid(datum.e)"}],
            "mark": {"type": "line", "color": "#2f6fd0", "strokeWidth": 1.4, "interpolate": "step-after"},
            "encoding": {
                "x": TIME_X,
                "y": {"field": "e", **y_field},
                "tooltip": [
                    {"field": "m", "title": "metric"},
                    TIME_TIP,
                    {"field": "e", "title": "estimate"},
                    {"field": "lo", "title": "band low"},
                    {"field": "hi", "title": "band high"},
                    {"field": "s", "title": "status"},
                ],
            },
        }
    )
    layers.append(
        {
            "transform": [{"filter": "isValid(datum.v)"}],
            "mark": {"type": "point", "filled": True, "size": 26, "stroke": "#222", "strokeWidth": 0.5},
            "encoding": {
                "x": TIME_X,
                "y": {"field": "v", **y_field},
                "color": {"field": "vs", "type": "nominal", "scale": STATUS_SCALE, "legend": None},
                "tooltip": [
                    {"field": "m", "title": "metric"},
                    TIME_TIP,
                    {"field": "v", "title": "realised"},
                    {"field": "vs", "title": "realised status"},
                    {"field": "e", "title": "estimate"},
                ],
            },
        }
    )
    return _panels(rows, layers, columns, width, height, independent=True)


def _level_lines(keys: str, present: set[str], y: Spec) -> list[Spec]:
    """A step line per level field in ``keys`` (``w`` warning, ``a`` alert, ``r`` reference) that some row
    has, styled by ``LEVEL_LINES``; ``y`` is the rest of the y encoding (type, title, scale)."""
    return [
        {
            "transform": [{"filter": f"isValid(datum.{key})"}],
            "mark": {
                "type": "line",
                "color": LEVEL_LINES[key][0],
                "strokeDash": LEVEL_LINES[key][1],
                "strokeWidth": 1.2,
                "interpolate": "step-after",
            },
            "encoding": {"x": TIME_X, "y": {"field": key, **y}},
        }
        for key in keys
        if key in present
    ]


def _panels(
    rows: list[dict[str, Any]], layers: list[Spec], columns: int, width: int, height: int, independent: bool
) -> Spec:
    """One panel of ``layers`` per metric ``m``, ``columns`` to a row; y scales per panel if ``independent``."""
    return {
        "data": {"values": rows},
        "facet": {"field": "m", "type": "nominal", "title": None, "header": {"labelFontWeight": "bold"}},
        "columns": columns,
        "spec": {"width": width, "height": height, "layer": layers},
        "resolve": {"scale": {"y": "independent" if independent else "shared"}},
        "config": {"view": {"stroke": "#ddd"}},
    }


def coverage_chart(rows: list[dict[str, Any]], width: int | str = "container") -> Spec:
    """Label coverage per window: rows ``{t, e, c, n, r}`` (coverage 0..1, labelled rows, rows)."""
    spec = _base(width, 90)
    spec.update(
        {
            "data": {"values": rows},
            "mark": {"type": "rect", "color": "#7a5cc2", "tooltip": True},
            "encoding": {
                "x": TIME_X,
                "x2": {"field": "e"},
                "y": {
                    "field": "c",
                    "type": "quantitative",
                    "title": "label coverage",
                    "scale": {"domain": [0, 1]},
                    "axis": {"format": "%"},
                },
                "tooltip": [
                    TIME_TIP,
                    {"field": "c", "title": "coverage", "format": ".1%"},
                    {"field": "n", "title": "labelled rows"},
                    {"field": "r", "title": "rows"},
                ],
            },
        }
    )
    return spec


def _display_edges(edges: np.ndarray, bins: int = DISPLAY_BINS) -> np.ndarray:
    """Indices into ``edges`` that merge the fine quantile bins into about ``bins`` display bins."""
    return np.unique(np.linspace(0, len(edges) - 1, min(bins, len(edges) - 1) + 1).round().astype(int))


#: A reference whose widest display bin is this many times its median one is drawn on a symlog axis.
SKEW_RATIO = 20.0


def skew_constant(reference: NumericProfile) -> float | None:
    """The symlog constant for a skewed reference (its narrowest display bin's width), or ``None`` when
    a linear axis shows it well. A long tail on a linear axis squashes the bulk into a sliver."""
    edges = reference.edges
    if edges.size < 3:
        return None
    widths = np.diff(edges[_display_edges(edges)].astype(float))
    widths = widths[widths > 0]
    if widths.size < 2 or widths.max() <= SKEW_RATIO * float(np.median(widths)):
        return None
    return float(widths.min())


def _axis(symlog: float | None) -> Any:
    """The x transform the chart draws with: identity, or Vega's symlog ``sign(x) * log1p(|x| / c)``."""
    if symlog is None:
        return lambda x: x
    return lambda x: math.copysign(math.log1p(abs(x) / symlog), x)


def numeric_distribution_rows(
    reference: NumericProfile,
    window_profile: NumericProfile | None,
    window_label: str = "window",
    symlog: float | None = None,
) -> list[dict[str, Any]]:
    """Density per display bin for the reference and (if given) the window, on the reference's bins.

    Heights are shares per unit of the drawn axis (with ``symlog``, per unit of the symlog axis), so a
    bar's area is its share of rows whatever the axis. Window values beyond the reference range get one
    bin each side, as wide as their extreme reaches but at most a quarter of the reference range, and
    never narrower than the neighbouring display bin (a narrow overflow bar would be a spike that
    flattens every other bar); the tooltip gives their true extreme.
    """
    edges = reference.edges
    if edges.size < 2:
        return []
    picks = _display_edges(edges)
    span = float(edges[-1] - edges[0]) or 1.0
    drawn = _axis(symlog)
    rows: list[dict[str, Any]] = []
    for source, profile in (("reference", reference), (window_label, window_profile)):
        if profile is None or profile.n == 0:
            continue
        counts = profile.counts
        total = counts.sum()
        inner = counts[1:-1]  # one count per regular bin between consecutive edges
        cumulative = np.concatenate([[0], np.cumsum(inner)])
        for lo, hi in zip(picks[:-1], picks[1:], strict=True):
            count = int(cumulative[hi] - cumulative[lo])
            width = (drawn(float(edges[hi])) - drawn(float(edges[lo]))) or (drawn(span) - drawn(0.0)) / 1000
            rows.append(
                {
                    "src": source,
                    "x0": num(edges[lo]),
                    "x1": num(edges[hi]),
                    "n": count,
                    "sh": num(count / total),
                    "d": num(count / total / width),
                }
            )
        for side, count, extreme in (
            ("below", int(counts[0]), profile.minimum),
            ("above", int(counts[-1]), profile.maximum),
        ):
            if count == 0:
                continue
            limit = float(edges[0] if side == "below" else edges[-1])
            neighbour = float(edges[picks[1]] - edges[0]) if side == "below" else float(edges[-1] - edges[picks[-2]])
            far = extreme if math.isfinite(extreme) else limit
            reach = max(min(abs(far - limit), span / 4), neighbour, span / 100)
            x0, x1 = (limit - reach, limit) if side == "below" else (limit, limit + reach)
            rows.append(
                {
                    "src": source,
                    "x0": num(x0),
                    "x1": num(x1),
                    "n": count,
                    "sh": num(count / total),
                    "d": num(count / total / ((drawn(x1) - drawn(x0)) or 1.0)),
                    "note": f"{side} the reference range (extreme {num(far)})",
                }
            )
    return rows


def categorical_distribution_rows(
    reference: CategoricalProfile,
    window_profile: CategoricalProfile | None,
    top: int = TOP_CATEGORIES,
    window_label: str = "window",
) -> list[dict[str, Any]]:
    """Share per category for the reference and the window; the ``top`` largest, the rest merged."""
    sources = [("reference", reference)] + ([(window_label, window_profile)] if window_profile is not None else [])
    shares: dict[str, dict[str, float]] = {}
    for source, profile in sources:
        total = profile.n
        if total == 0:
            continue
        shares[source] = {category: count / total for category, count in profile.counts.items()}
    ranked = sorted(
        {c for per in shares.values() for c in per},
        key=lambda c: (-max(per.get(c, 0.0) for per in shares.values()), c),
    )
    kept, rest = ranked[:top], ranked[top:]
    rows = []
    for source, profile in sources:
        per = shares.get(source)
        if per is None:
            continue
        for rank, category in enumerate(kept):
            rows.append(
                {
                    "src": source,
                    "c": category,
                    "k": rank,
                    "sh": num(per.get(category, 0.0)),
                    "n": int(profile.counts.get(category, 0)),
                }
            )
        if rest:
            merged = sum(per.get(c, 0.0) for c in rest)
            rows.append(
                {
                    "src": source,
                    "c": f"{len(rest)} more",
                    "k": len(kept),
                    "sh": num(merged),
                    "n": int(sum(profile.counts.get(c, 0) for c in rest)),
                }
            )
    return rows


def _source_colour(window_label: str) -> Spec:
    """Reference and window rows told apart by colour, legend on top."""
    return {
        "field": "src",
        "type": "nominal",
        "scale": {"domain": ["reference", window_label], "range": SOURCE_COLOURS},
        "legend": {"title": None, "orient": "top"},
    }


def numeric_distribution(
    rows: list[dict[str, Any]], x_title: str, window_label: str = "window", symlog: float | None = None
) -> Spec:
    """Overlaid density histograms on the reference's (unequal-width) quantile bins; a skewed feature
    (``symlog``: :func:`skew_constant`) on a symlog axis, titled so."""
    spec = _base(430, 190)
    spec.update(
        {
            "data": {"values": rows},
            "mark": {"type": "rect", "opacity": 0.55, "stroke": "white", "strokeWidth": 0.3},
            "encoding": {
                "x": {
                    "field": "x0",
                    "type": "quantitative",
                    "title": x_title if symlog is None else f"{x_title} (symlog axis: a long tail)",
                    "scale": {"zero": False} if symlog is None else {"type": "symlog", "constant": symlog},
                },
                "x2": {"field": "x1"},
                "y": {"field": "d", "type": "quantitative", "title": "density", "stack": None},
                "color": _source_colour(window_label),
                "tooltip": [
                    {"field": "src", "title": "rows"},
                    {"field": "x0", "title": "from"},
                    {"field": "x1", "title": "to"},
                    {"field": "sh", "title": "share", "format": ".2%"},
                    {"field": "n", "title": "count"},
                    {"field": "note", "title": "note"},
                ],
            },
        }
    )
    return spec


def categorical_distribution(rows: list[dict[str, Any]], x_title: str, window_label: str = "window") -> Spec:
    """Grouped bars: share of rows per category, reference beside window."""
    spec = _base(430, 190)
    spec.update(
        {
            "data": {"values": rows},
            "mark": {"type": "bar", "tooltip": True},
            "encoding": {
                "x": {
                    "field": "c",
                    "type": "nominal",
                    "title": x_title,
                    "sort": {"field": "k"},
                    "axis": {"labelAngle": -30, "labelLimit": 120},
                },
                "xOffset": {"field": "src", "sort": ["reference", window_label]},
                "y": {"field": "sh", "type": "quantitative", "title": "share of rows", "axis": {"format": "%"}},
                "color": _source_colour(window_label),
                "tooltip": [
                    {"field": "src", "title": "rows"},
                    {"field": "c", "title": "category"},
                    {"field": "sh", "title": "share", "format": ".2%"},
                    {"field": "n", "title": "count"},
                ],
            },
        }
    )
    return spec
