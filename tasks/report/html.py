"""One self-contained HTML file per model and period: verdicts at a glance, then the evidence.

The page embeds Vega, Vega-Lite and vega-embed once (the bundle that ships inside the
``vl-convert-python`` wheel) and one JSON spec per chart, so it opens offline with no CDN.
Every text that comes from data or config is HTML-escaped; chart data is JSON inside
``<script type="application/json">`` with ``<``, ``>`` and ``&`` written as ``\\u003c`` etc.
A Content-Security-Policy forbids the page any network access.
"""

from __future__ import annotations

import html
import json
import os
import re
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from functools import lru_cache
from pathlib import Path
from typing import Any

from sqlalchemy.engine import Engine

from driftline.config.monitors import ModelConfig, MonitorsConfig
from driftline.core.errors import DriftlineError
from driftline.core.results import STATUS_SEVERITY, Kind, Result, Status, worst
from driftline.stats.model_profile import ModelProfile
from driftline.stats.profile import CategoricalProfile, NumericProfile
from driftline.tasks.report import charts
from driftline.tasks.report.data import ReportData, describe_version, load_report_data, redact

KIND_LABELS = {
    Kind.DATA_DRIFT: "data drift",
    Kind.CONCEPT_DRIFT: "concept drift",
    Kind.PERFORMANCE: "performance",
    Kind.DATA_QUALITY: "data quality",
    Kind.OPERATIONAL: "operational",
}
#: Rows of a table before it is cut (the rest is counted, not shown).
TABLE_LIMIT = 200
CSP = (
    "default-src 'none'; script-src 'unsafe-inline' 'unsafe-eval'; style-src 'unsafe-inline'; "
    "img-src data: blob:; font-src data:"
)


class ReportError(DriftlineError):
    """The report cannot be written (missing chart bundle, unwritable path)."""


def esc(value: Any) -> str:
    """HTML-escape any value's text (quotes too, so it is safe in attributes)."""
    return html.escape("" if value is None else str(value), quote=True)


def script_json(value: Any) -> str:
    """JSON safe to place inside a <script> element: no ``<``, ``>``, ``&`` or line separators."""
    text = json.dumps(value, separators=(",", ":"), allow_nan=False, ensure_ascii=False)
    return (
        text.replace("<", "\\u003c")
        .replace(">", "\\u003e")
        .replace("&", "\\u0026")
        .replace("\u2028", "\\u2028")
        .replace("\u2029", "\\u2029")
    )


def _bundle_cache(version: str) -> Path:
    from driftline.core.settings import load_settings

    return load_settings().home.expanduser() / "cache" / f"vega-bundle-vl-convert-{version}.js"


@lru_cache(maxsize=1)
def vega_bundle() -> str:
    """Vega + Vega-Lite + vega-embed as one script (from the vl-convert-python wheel; ~0.9 MB).

    Bundling takes vl-convert 2-5 s, so the result is kept in ``$DRIFTLINE_HOME/cache`` (keyed by
    the vl-convert version) and in memory; an unwritable cache is simply not used.
    """
    try:
        import vl_convert
    except ImportError as exc:
        raise ReportError(
            "the HTML report needs the vl-convert-python package (it carries the chart library): "
            "pip install vl-convert-python"
        ) from exc
    version = re.sub(r"[^0-9A-Za-z.]", "_", str(getattr(vl_convert, "__version__", "unknown")))
    cache = _bundle_cache(version)
    try:
        bundle = cache.read_text(encoding="utf-8")
    except OSError:
        bundle = ""
    if "vegaEmbed" not in bundle:
        bundle = vl_convert.javascript_bundle()  # type: ignore[call-arg]  # the stub forgets snippet is optional
        try:
            cache.parent.mkdir(parents=True, exist_ok=True)
            partial = cache.with_suffix(f".{os.getpid()}.tmp")
            partial.write_text(bundle, encoding="utf-8")
            partial.replace(cache)
        except OSError:
            pass
    return re.sub(r"</(script)", r"<\\/\1", bundle, flags=re.IGNORECASE)


def fmt(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def when(instant: datetime | None) -> str:
    return "" if instant is None else instant.astimezone(UTC).strftime("%Y-%m-%d %H:%M")


def badge(status: Status | str) -> str:
    name = str(status)
    return f'<span class="badge s-{esc(name)}">{esc(name)}</span>'


class Page:
    """Collects HTML fragments and chart specs; renders the document with the bundle included once."""

    def __init__(self) -> None:
        self.parts: list[str] = []
        self.specs: list[str] = []

    def add(self, fragment: str) -> None:
        self.parts.append(fragment)

    def chart(self, spec: dict[str, Any], css: str = "chart", label: str = "chart") -> str:
        index = len(self.specs)
        self.specs.append(f'<script type="application/json" id="spec-{index}">{script_json(spec)}</script>')
        return f'<div class="{css}" data-spec="spec-{index}" role="img" aria-label="{esc(label)}"></div>'

    def render(self, title: str) -> str:
        return "\n".join(
            [
                "<!DOCTYPE html>",
                '<html lang="en">',
                "<head>",
                '<meta charset="utf-8">',
                f'<meta http-equiv="Content-Security-Policy" content="{CSP}">',
                '<meta name="viewport" content="width=device-width, initial-scale=1">',
                '<meta name="generator" content="driftline">',
                f"<title>{esc(title)}</title>",
                f"<style>{STYLE}</style>",
                "</head>",
                "<body>",
                '<noscript><p class="note">The charts need JavaScript; the tables work without it.</p></noscript>',
                *self.parts,
                *self.specs,
                f"<script>{vega_bundle()}</script>",
                f"<script>{INIT_SCRIPT}</script>",
                "</body>",
                "</html>",
            ]
        )


STYLE = """
:root { --ok:#4c9a5f; --unknown:#9a9a9a; --warning:#d9901f; --alert:#d2453d; }
* { box-sizing: border-box; }
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: #222; margin: 0;
       padding: 24px 32px 60px; max-width: 1500px; }
h1 { font-size: 22px; margin: 0 0 4px; } h2 { font-size: 18px; margin: 36px 0 8px; border-bottom: 1px solid #ddd;
       padding-bottom: 4px; } h3 { font-size: 15px; margin: 0 0 6px; }
.meta { color: #555; margin: 0 0 2px; } .note { color: #666; font-style: italic; }
table { border-collapse: collapse; margin: 8px 0 12px; font-size: 13px; }
th, td { border-bottom: 1px solid #e4e4e4; padding: 3px 10px 3px 0; text-align: left; vertical-align: top; }
th { color: #555; font-weight: 600; } td.num { text-align: right; font-variant-numeric: tabular-nums; }
.badge { display: inline-block; padding: 0 7px; border-radius: 9px; color: #fff; font-size: 12px; font-weight: 600; }
.s-ok { background: var(--ok); } .s-unknown { background: var(--unknown); } .s-warning { background: var(--warning); }
.s-alert { background: var(--alert); } .s-failed { background: #8e3fa8; }
.feature { border: 1px solid #e2e2e2; border-radius: 6px; padding: 12px 14px; margin: 14px 0; }
.pair { display: flex; flex-wrap: wrap; gap: 18px; align-items: flex-start; }
.chart { min-height: 40px; } summary { cursor: pointer; } summary h3 { display: inline; } .wide { width: 100%; }
.details { font-family: ui-monospace, SFMono-Regular, Menlo, monospace; font-size: 12px; color: #444;
           max-width: 560px; overflow-wrap: anywhere; }
a { color: #2f6fd0; }
"""

INIT_SCRIPT = """
(function () {
  var errors = [];
  window.addEventListener('error', function (e) { errors.push(String(e.message)); });
  var nodes = document.querySelectorAll('[data-spec]');
  var jobs = Array.prototype.map.call(nodes, function (el) {
    var spec = JSON.parse(document.getElementById(el.getAttribute('data-spec')).textContent);
    return vegaEmbed(el, spec, {actions: false, renderer: 'svg', mode: 'vega-lite'}).catch(function (err) {
      errors.push(String(err)); console.error('chart failed', err); el.textContent = 'chart failed: ' + err;
    });
  });
  Promise.all(jobs).then(function () {
    document.body.setAttribute('data-charts', String(nodes.length));
    document.body.setAttribute('data-chart-errors', String(errors.length));
  });
})();
"""


def table(headers: Sequence[str], rows: Iterable[Sequence[str]], numeric: Sequence[int] = ()) -> str:
    """An HTML table; cells are already-escaped HTML fragments."""
    materialised = list(rows)
    head = "".join(f"<th>{esc(h)}</th>" for h in headers)
    body = []
    for row in materialised[:TABLE_LIMIT]:
        cells = "".join(
            f'<td class="num">{cell}</td>' if i in numeric else f"<td>{cell}</td>" for i, cell in enumerate(row)
        )
        body.append(f"<tr>{cells}</tr>")
    more = (
        f'<p class="note">{len(materialised) - TABLE_LIMIT} more rows not shown.</p>'
        if len(materialised) > TABLE_LIMIT
        else ""
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>{more}"


def short_details(details: dict[str, Any], keys: Sequence[str] | None = None, limit: int = 300) -> str:
    """A compact, escaped ``key=value`` summary of a result's details."""
    chosen = details if keys is None else {k: details[k] for k in keys if k in details}
    parts = []
    for key, value in chosen.items():
        text = json.dumps(value, default=str, ensure_ascii=False) if isinstance(value, dict | list) else fmt(value)
        parts.append(f"{key}={text}")
    joined = redact("; ".join(parts))
    return esc(joined if len(joined) <= limit else joined[: limit - 1] + "…")


def details_cell(details: dict[str, Any], keys: Sequence[str] | None = None) -> str:
    return f'<span class="details">{short_details(details, keys)}</span>'


def effect_of(result: Result) -> float | None:
    """What the levels are compared with: the statistic, or e.g. Cohen's w for chi-square."""
    if result.details.get("effect") and result.details.get("effect") != "statistic":
        return charts.num(result.details.get("effect_value"))
    return charts.num(result.value)


def _registry_effect(metric: str) -> str | None:
    from driftline.stats.registry import REGISTRY

    for statistics in REGISTRY.values():
        if metric in statistics:
            return statistics[metric].effect
    return None


def metric_label(result: Result) -> str:
    """The metric's name in charts; ``(Cohen's w)`` for chi-square also on rows without a value (an
    unknown window), so they share its panel instead of opening an empty one."""
    effect = result.details.get("effect") or _registry_effect(result.metric)
    if effect == "cohens_w":
        return f"{result.metric} (Cohen's w)"
    return result.metric


def _worst_row(results: list[Result]) -> Result:
    return max(results, key=lambda r: STATUS_SEVERITY[r.status])


def _windows(results: Iterable[Result]) -> list[tuple[datetime, datetime]]:
    return sorted({(r.window_start, r.window_end) for r in results})


# --------------------------------------------------------------------------------------------------
# Sections
# --------------------------------------------------------------------------------------------------


def header(page: Page, data: ReportData, report_url: str | None, generated_at: datetime) -> None:
    model = data.model
    windows = _windows(data.results)
    first = data.start or (windows[0][0] if windows else None)
    last = data.end or (windows[-1][1] if windows else None)
    page.add(f"<h1>Driftline report: {esc(model.name)}</h1>")
    page.add(
        f'<p class="meta">Windows starting {esc(when(first))} .. {esc(when(last))} UTC · {len(windows)} windows · '
        f"{len(data.results):,} results · generated {esc(when(generated_at))} UTC</p>"
    )
    page.add(
        f'<p class="meta">Table {esc(model.table)} · task {esc(model.task)} · '
        f"{len(model.features.numeric)} numeric and {len(model.features.categorical)} categorical features · "
        + (
            f"reference: the {esc(str(model.reference.last))} before each window's day</p>"
            if model.reference.rolling
            else f"reference: {esc(model.reference.source[0])} {esc(model.reference.source[1])}</p>"
            if model.reference.source is not None
            else f"reference {esc(when(model.reference.start))} .. {esc(when(model.reference.end))} UTC</p>"
        )
    )
    if data.reference_versions:
        judged = Counter(run.get("reference_version") for run in data.runs if run.get("status") == "succeeded")
        items = "".join(
            f"<li>{esc(describe_version(v))} · {judged.get(v.version, 0)} window(s) of this period judged against it"
            + (f" · {esc(v.note)}" if v.note else "")
            + "</li>"
            for v in data.reference_versions
        )
        page.add(
            '<p class="meta">Reference versions (each window is judged against the version in effect at its start; '
            f"{judged.get(0, 0)} window(s) of this period against the configured reference):</p>"
            f'<ul class="meta">{items}</ul>'
        )
    if report_url and re.match(r"^https?://", report_url, re.IGNORECASE):
        page.add(f'<p class="meta">This report: <a href="{esc(report_url)}">{esc(report_url)}</a></p>')
    counts: dict[Kind, Counter[Status]] = defaultdict(Counter)
    for r in data.results:
        counts[r.kind][r.status] += 1
    statuses = [Status.ALERT, Status.WARNING, Status.UNKNOWN, Status.OK]
    rows = [[esc(KIND_LABELS[kind]), *(f"{counts[kind][s]:,}" for s in statuses)] for kind in Kind if kind in counts]
    failed = [run for run in data.runs if run.get("status") == "failed"]
    page.add('<h2 id="summary">Summary</h2>')
    if not data.results:
        page.add(f'<p class="note">No results for model {esc(model.name)} in this period.</p>')
        return
    page.add(table(["kind", *(str(s) for s in statuses)], rows, numeric=(1, 2, 3, 4)))
    if failed:
        page.add(
            f"<p>{badge('failed')} {len(failed)} window(s) failed to run; see "
            '<a href="#operational">operational</a>.</p>'
        )


def glance(page: Page, data: ReportData, features: list[str]) -> None:
    """Heatmaps: worst status per kind x window, and per feature x window for data drift."""
    if not data.results:
        return
    page.add('<h2 id="glance">Verdicts at a glance</h2>')
    by_kind: dict[tuple[str, datetime, datetime], list[Result]] = defaultdict(list)
    by_feature: dict[tuple[str, datetime, datetime], list[Result]] = defaultdict(list)
    for r in data.results:
        by_kind[(KIND_LABELS[r.kind], r.window_start, r.window_end)].append(r)
        if r.kind == Kind.DATA_DRIFT and r.feature is not None:
            by_feature[(r.feature, r.window_start, r.window_end)].append(r)

    def cells(groups: dict[tuple[str, datetime, datetime], list[Result]]) -> list[dict[str, Any]]:
        out = []
        for (label, start, end), results in groups.items():
            top = _worst_row(results)
            detail = top.metric if top.feature is None or label == top.feature else f"{top.feature} {top.metric}"
            if top.value is not None:
                detail += f" {top.value:.3g}"
            out.append({"y": label, "t": charts.ms(start), "e": charts.ms(end), "s": str(top.status), "d": detail})
        return out

    kinds = [KIND_LABELS[k] for k in Kind if any(key[0] == KIND_LABELS[k] for key in by_kind)]
    page.add("<h3>Every kind of check, per window</h3>")
    page.add(page.chart(charts.status_heatmap(cells(by_kind), "check", kinds, 22), "chart wide", "status per kind"))
    if by_feature:
        page.add("<h3>Data drift per feature (worst metric), per window</h3>")
        spec = charts.status_heatmap(cells(by_feature), "feature", features, 16)
        page.add(page.chart(spec, "chart wide", "drift status per feature"))


def attention(page: Page, data: ReportData) -> None:
    """What was not ok, grouped by (kind, feature, metric), worst first."""
    groups: dict[tuple[Kind, str | None, str], list[Result]] = defaultdict(list)
    for r in data.results:
        groups[(r.kind, r.feature, r.metric)].append(r)
    rows = []
    for (kind, feature, metric), results in groups.items():
        alerts = sum(r.status == Status.ALERT for r in results)
        warnings = sum(r.status == Status.WARNING for r in results)
        if not alerts and not warnings:
            continue
        latest = max(results, key=lambda r: r.window_start)
        flagged = [r for r in results if r.status in (Status.ALERT, Status.WARNING)]
        rows.append(
            (
                -alerts,
                -warnings,
                [
                    esc(KIND_LABELS[kind]),
                    esc(feature or "(model)"),
                    esc(metric),
                    f"{alerts:,}",
                    f"{warnings:,}",
                    esc(when(min(r.window_start for r in flagged))),
                    esc(when(max(r.window_start for r in flagged))),
                    badge(latest.status),
                    esc(fmt(latest.value)),
                    esc(str(max(flagged, key=lambda r: r.window_start).details.get("reason", ""))),
                ],
            )
        )
    if not rows:
        if data.results:
            page.add('<h2 id="attention">Needs attention</h2><p>Nothing raised a warning or an alert.</p>')
        return
    rows.sort(key=lambda item: (item[0], item[1]))
    page.add('<h2 id="attention">Needs attention</h2>')
    headers = [
        "kind",
        "feature",
        "metric",
        "alert windows",
        "warning windows",
        "first",
        "last",
        "latest",
        "latest value",
        "why (latest flagged window)",
    ]
    page.add(table(headers, [row for _, _, row in rows], numeric=(3, 4)))


def drift_rows(results: Iterable[Result]) -> list[dict[str, Any]]:
    """Time-series rows of drift results: the compared effect against its warning/alert levels."""
    return [
        {
            "t": charts.ms(r.window_start),
            "m": metric_label(r),
            "v": effect_of(r),
            "s": str(r.status),
            "w": charts.num(r.details.get("warning")),
            "a": charts.num(r.details.get("alert")),
        }
        for r in results
    ]


def verdict_cells(r: Result) -> list[str]:
    """A judged result's table cells: metric, value, effect, warning, alert, adjusted p, status, reason."""
    return [
        esc(r.metric),
        esc(fmt(r.value)),
        esc(fmt(effect_of(r))),
        esc(fmt(r.details.get("warning"))),
        esc(fmt(r.details.get("alert"))),
        esc(fmt(r.details.get("p_value_adjusted"))),
        badge(r.status),
        esc(r.details.get("reason", "")),
    ]


def level_series(results: Iterable[Result], *, reference_key: str | None) -> list[dict[str, Any]]:
    """One point per result for ``charts.timeseries``: value, status and the alert level (the record's
    threshold); with ``reference_key``, also the warning level and the reference value
    (``details[reference_key]``) as dashed and dotted lines."""
    series = []
    for r in results:
        point = {"t": charts.ms(r.window_start), "m": r.metric, "v": charts.num(r.value), "s": str(r.status)}
        if reference_key is not None:
            point["w"] = charts.num(r.details.get("warning"))
        point["a"] = charts.num(r.threshold)
        if reference_key is not None:
            point["r"] = charts.num(r.details.get(reference_key))
        series.append(point)
    return series


def drawable(series: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], str]:
    """The time-series rows of metrics that have a value in some window, and a note naming those left
    out (every window unknown: no rows, too few labels, ...) so no panel is drawn as empty axes."""
    valued = {row["m"] for row in series if row.get("v") is not None}
    empty = sorted({row["m"] for row in series} - valued)
    note = (
        f'<p class="note">No value in any window of the period (each was unknown; its reason is in the table '
        f"below), so not drawn: {esc(', '.join(empty))}.</p>"
        if empty
        else ""
    )
    return [row for row in series if row["m"] in valued], note


def feature_order(model_config: ModelConfig, results: list[Result]) -> list[str]:
    """Configured features (and any other drifted column), most alerted first, then config order."""
    configured = [name for name, _ in model_config.features.items()]
    seen = {r.feature for r in results if r.kind == Kind.DATA_DRIFT and r.feature is not None}
    names = configured + sorted(seen - set(configured))
    score: Counter[str] = Counter()
    for r in results:
        if r.kind == Kind.DATA_DRIFT and r.feature is not None:
            score[r.feature] += {Status.ALERT: 1000, Status.WARNING: 1}.get(r.status, 0)
    position = {name: i for i, name in enumerate(names)}
    return sorted(names, key=lambda n: (-score[n], position[n]))


def distribution_chart(
    page: Page, name: str, reference: ModelProfile | None, window: ModelProfile | None, window_label: str = "window"
) -> str | None:
    """Reference vs window distribution of one column (``window_label`` names the second set)."""
    ref = reference.features.get(name) if reference else None
    win = window.features.get(name) if window else None
    if isinstance(ref, NumericProfile):
        win_numeric = win if isinstance(win, NumericProfile) else None
        symlog = charts.skew_constant(ref)
        rows = charts.numeric_distribution_rows(ref, win_numeric, window_label, symlog)
        spec = charts.numeric_distribution(rows, name, window_label, symlog)
        return page.chart(spec, label=f"distribution of {name}") if rows else None
    if isinstance(ref, CategoricalProfile):
        win_categorical = win if isinstance(win, CategoricalProfile) else None
        rows = charts.categorical_distribution_rows(ref, win_categorical, window_label=window_label)
        spec = charts.categorical_distribution(rows, name, window_label)
        return page.chart(spec, label=f"categories of {name}") if rows else None
    return None


def data_drift(page: Page, data: ReportData, features: list[str]) -> None:
    drift = [r for r in data.results if r.kind == Kind.DATA_DRIFT]
    if not drift:
        return
    page.add('<h2 id="drift">Data drift</h2>')
    model_level = [r for r in drift if r.feature is None]
    if model_level:
        page.add("<h3>Window level: share of drifted features and general drift</h3>")
        rows = [
            {
                "t": charts.ms(r.window_start),
                "m": r.metric,
                "v": charts.num(r.value),
                "s": str(r.status),
                "w": charts.num(r.details.get("warning", r.details.get("potential"))),
                "a": charts.num(r.threshold),
            }
            for r in model_level
        ]
        page.add(page.chart(charts.timeseries(rows, columns=2, width=560), label="window-level drift"))
    per_feature: dict[str, list[Result]] = defaultdict(list)
    for r in drift:
        if r.feature is not None:
            per_feature[r.feature].append(r)
    kinds = dict(data.model.features.items())
    index_rows = []
    for i, name in enumerate(features):
        results = per_feature.get(name, [])
        if not results:
            continue
        latest_start = max(r.window_start for r in results)
        latest = worst([r.status for r in results if r.window_start == latest_start])
        index_rows.append(
            [
                f'<a href="#feature-{i}">{esc(name)}</a>',
                esc(kinds.get(name, "")),
                badge(worst([r.status for r in results])),
                f"{len({r.window_start for r in results if r.status == Status.ALERT}):,}",
                f"{len({r.window_start for r in results if r.status == Status.WARNING}):,}",
                badge(latest),
            ]
        )
    page.add(
        table(
            ["feature", "kind", "worst", "alert windows", "warning windows", "latest window"],
            index_rows,
            numeric=(3, 4),
        )
    )
    overlay = data.overlay_window
    if data.reference is None:
        page.add(f'<p class="note">{esc(data.reference_note)}</p>')
    else:
        if data.reference_note:
            page.add(f'<p class="note">Reference histograms: {esc(data.reference_note)}.</p>')
        if data.overlay is not None and overlay is not None:
            page.add(
                f'<p class="meta">Distributions: the reference ({data.reference.row_count:,} rows) against the '
                f"period's latest window {esc(overlay.label())} ({data.overlay.row_count:,} rows), re-read from "
                "the prediction log. Numeric features use the reference's quantile bins merged 10 by 10, so every "
                "reference bar holds about 5% of its rows; heights are densities.</p>"
            )
        elif data.overlay_note:
            page.add(f'<p class="note">Reference distributions only: {esc(data.overlay_note)}.</p>')
    for i, name in enumerate(features):
        results = per_feature.get(name, [])
        if not results:
            continue
        latest_start = max(r.window_start for r in results)
        latest_rows = sorted((r for r in results if r.window_start == latest_start), key=lambda r: r.metric)
        verdict = worst([r.status for r in results])
        title = f"{esc(name)} <small>({esc(kinds.get(name, 'column'))})</small> {badge(verdict)}"
        page.add(f'<section class="feature" id="feature-{i}">')
        if verdict == Status.OK:
            # Quiet features stay folded; the charts inside still render (fixed sizes).
            page.add(f"<details><summary><h3>{title}</h3></summary>")
        else:
            page.add(f"<h3>{title}</h3>")
        distribution = distribution_chart(page, name, data.reference, data.overlay)
        page.add('<div class="pair">')
        if distribution:
            page.add(distribution)
        series, left_out = drawable(drift_rows(results))
        if series:
            page.add(
                page.chart(
                    charts.timeseries(series, columns=2, width=260, height=90),
                    label=f"drift of {name} over time",
                )
            )
        page.add("</div>")
        if left_out:
            page.add(left_out)
        page.add(
            table(
                ["latest window", "metric", "value", "effect", "warning", "alert", "p adjusted", "status", "note"],
                ([esc(when(r.window_start)), *verdict_cells(r)] for r in latest_rows),
                numeric=(2, 3, 4, 5, 6),
            )
        )
        page.add("</details></section>" if verdict == Status.OK else "</section>")


ESTIMATED = "estimated_"


def estimated_performance(page: Page, rows: list[Result]) -> None:
    """The estimates (line, band shaded) with the realised metric as points once labels arrived."""
    estimates = [r for r in rows if r.feature is None and r.metric.startswith(ESTIMATED)]
    if not estimates:
        return
    realised = {(r.metric, r.window_start): r for r in rows if r.feature is None and not r.metric.startswith(ESTIMATED)}
    series = []
    for r in estimates:
        metric = r.metric.removeprefix(ESTIMATED)
        band = r.details.get("band") or [None, None]
        truth = realised.get((metric, r.window_start))
        series.append(
            {
                "t": charts.ms(r.window_start),
                "m": metric,
                "e": charts.num(r.value),
                "lo": charts.num(band[0]),
                "hi": charts.num(band[1]),
                "s": str(r.status),
                "a": charts.num(r.threshold),
                "r": charts.num(r.details.get("reference_value")),
                "v": charts.num(truth.value) if truth is not None else None,
                "vs": str(truth.status) if truth is not None else None,
            }
        )
    flagged = [r for r in estimates if r.status in (Status.WARNING, Status.ALERT)]
    poor = next((r.details["calibration"] for r in estimates if (r.details.get("calibration") or {}).get("poor")), None)
    page.add("<h3>Estimated from the scores, before the labels</h3>")
    page.add(
        '<p class="meta">The line is each window\'s performance estimated from its scores (confidence-based '
        "estimation for classifiers, a loss model for regressors), shaded with its band; the points are the "
        "realised metric once labels arrived; dotted: the reference's own estimate; dashed: the alert bound. "
        f"{len(flagged)} estimated degradation(s) flagged.</p>"
    )
    if poor is not None:
        page.add(
            f'<p class="meta">Calibration on the reference is poor: {esc(poor.get("reason"))}. '
            "Treat the estimates with caution.</p>"
        )
    page.add(page.chart(charts.estimate_chart(series, columns=3, width=380), label="estimated performance"))
    estimated_segments(page, rows)


def estimated_segments(page: Page, rows: list[Result]) -> None:
    """The latest window whose segment estimates have realised values: each segment's estimate, band
    and realised value side by side (``attach_realised`` put them there)."""
    beside = [
        r
        for r in rows
        if r.feature is not None
        and r.metric.startswith(ESTIMATED)
        and any(entry.get("realised") is not None for entry in r.details.get("segments") or [])
    ]
    if not beside:
        return
    latest = max(r.window_start for r in beside)
    lines = []
    for r in sorted((r for r in beside if r.window_start == latest), key=lambda r: str(r.feature)):
        for entry in r.details["segments"]:
            band = entry.get("band") or [None, None]
            inside = entry.get("within_band")
            lines.append(
                [
                    esc(r.feature),
                    esc(entry.get("segment")),
                    fmt(entry.get("value")),
                    f"{fmt(band[0])} .. {fmt(band[1])}",
                    fmt(entry.get("realised")),
                    "" if inside is None else ("yes" if inside else "<strong>no</strong>"),
                ]
            )
    metric = beside[0].metric.removeprefix(ESTIMATED + "segment_")
    page.add(
        f'<p class="meta">Per segment, window starting {esc(latest.strftime("%Y-%m-%d %H:%M"))} UTC: the estimated '
        f"{esc(metric)} of each segment beside its realised value once the labels arrived.</p>"
    )
    page.add(table(["feature", "segment", "estimate", "band", "realised", "inside the band"], lines, numeric=(2, 4)))


def performance(page: Page, data: ReportData) -> None:
    rows = [r for r in data.results if r.kind == Kind.PERFORMANCE]
    if not rows:
        return
    page.add('<h2 id="performance">Performance</h2>')
    estimated_performance(page, rows)
    overall = [r for r in rows if r.feature is None and not r.metric.startswith(ESTIMATED)]
    if overall:
        page.add(
            '<p class="meta">Each metric on the window\'s labelled rows against its reference value (dotted) and '
            "the warning/alert bounds (dashed). Windows whose labels have not arrived are unknown.</p>"
        )
        series = level_series(overall, reference_key="reference_value")
        page.add(page.chart(charts.timeseries(series, columns=3, width=380), label="performance over time"))
        coverage: dict[tuple[datetime, datetime], dict[str, Any]] = {}
        for r in overall:
            if "label_coverage" in r.details or "labelled_rows" in r.details:
                coverage.setdefault(
                    (r.window_start, r.window_end),
                    {
                        "t": charts.ms(r.window_start),
                        "e": charts.ms(r.window_end),
                        "c": charts.num(r.details.get("label_coverage")),
                        "n": r.details.get("labelled_rows"),
                        "r": r.details.get("rows"),
                    },
                )
        if coverage:
            page.add("<h3>Label coverage per window</h3>")
            page.add(page.chart(charts.coverage_chart(list(coverage.values())), "chart wide", "label coverage"))
    flagged_overall = [r for r in overall if r.status in (Status.ALERT, Status.WARNING)]
    if flagged_overall:
        page.add("<h3>Why performance fell</h3>")
        page.add(
            '<p class="meta">Each flagged metric with its likely causes: the segments whose metric fell most '
            "(with their share of the window's rows) and the features that drifted most that window.</p>"
        )
        page.add(
            table(
                ["window", "metric", "status", "why"],
                (
                    [esc(when(r.window_start)), esc(r.metric), badge(r.status), esc(str(r.details.get("reason", "")))]
                    for r in sorted(flagged_overall, key=lambda r: (r.window_start, r.metric), reverse=True)
                ),
            )
        )
    segments = [r for r in rows if r.feature is not None and r.status in (Status.ALERT, Status.WARNING)]
    if segments:
        page.add("<h3>Degraded segments</h3>")
        page.add(
            table(
                ["window", "feature", "metric", "value", "threshold", "status", "details"],
                (
                    [
                        esc(when(r.window_start)),
                        esc(r.feature),
                        esc(r.metric),
                        esc(fmt(r.value)),
                        esc(fmt(r.threshold)),
                        badge(r.status),
                        details_cell(r.details, ["segment", "reference_value", "labelled_rows", "p_value"]),
                    ]
                    for r in sorted(segments, key=lambda r: (r.window_start, r.feature or ""), reverse=True)
                ),
                numeric=(3, 4),
            )
        )


def concept_drift(page: Page, data: ReportData) -> None:
    rows = [r for r in data.results if r.kind == Kind.CONCEPT_DRIFT]
    if not rows:
        return
    page.add('<h2 id="concept">Concept drift</h2>')
    page.add(
        '<p class="meta">Predictions, scores and arrived labels against the reference, and the relation '
        "between score and outcome.</p>"
    )
    series, left_out = drawable(
        [
            {**row, "m": f"{row['m']} · {r.feature}" if r.feature else row["m"]}
            for r, row in zip(rows, drift_rows(rows), strict=True)
        ]
    )
    if series:
        page.add(
            page.chart(charts.timeseries(series, columns=3, width=380, height=100), label="concept drift over time")
        )
    page.add(left_out)


def data_quality(page: Page, data: ReportData) -> None:
    rows = [r for r in data.results if r.kind == Kind.DATA_QUALITY]
    if not rows:
        return
    page.add('<h2 id="quality">Data quality</h2>')
    failed = [r for r in rows if r.status in (Status.ALERT, Status.WARNING)]
    unknown = [r for r in rows if r.status == Status.UNKNOWN]
    evaluated = len({(r.metric, r.feature) for r in rows})
    if not failed:
        page.add(f"<p>All {evaluated} expectations passed in every window.</p>")
    else:
        groups: dict[tuple[str, str | None], list[Result]] = defaultdict(list)
        for r in failed:
            groups[(r.metric, r.feature)].append(r)
        page.add(
            f"<p>{len(groups)} of {evaluated} expectations failed in at least one window "
            f"({len(failed):,} failures).</p>"
        )
        ordered = sorted(groups.items(), key=lambda kv: (-len(kv[1]), kv[0][0], kv[0][1] or ""))
        page.add(
            table(
                [
                    "expectation",
                    "column",
                    "failed windows",
                    "first",
                    "last",
                    "latest status",
                    "latest value",
                    "threshold",
                    "details of the latest failure",
                ],
                (
                    [
                        esc(metric),
                        esc(feature or "(table)"),
                        f"{len(group):,}",
                        esc(when(min(r.window_start for r in group))),
                        esc(when(max(r.window_start for r in group))),
                        badge(max(group, key=lambda r: r.window_start).status),
                        esc(fmt(max(group, key=lambda r: r.window_start).value)),
                        esc(fmt(max(group, key=lambda r: r.window_start).threshold)),
                        '<span class="details">'
                        + short_details(
                            max(group, key=lambda r: r.window_start).details,
                            [
                                "unexpected_count",
                                "element_count",
                                "partial_unexpected_list",
                                "observed_value",
                                "kwargs",
                                "reason",
                            ],
                        )
                        + "</span>",
                    ]
                    for (metric, feature), group in ordered
                ),
                numeric=(2, 6, 7),
            )
        )
    if unknown:
        reasons = Counter(str(r.details.get("reason", "unknown")) for r in unknown)
        listed = "; ".join(f"{esc(reason)} ({count})" for reason, count in reasons.most_common(5))
        page.add(f'<p class="note">{len(unknown):,} checks could not be evaluated: {listed}.</p>')


def operational(page: Page, data: ReportData) -> None:
    rows = [r for r in data.results if r.kind == Kind.OPERATIONAL]
    failed_runs = [run for run in data.runs if run.get("status") == "failed"]
    if not rows and not failed_runs:
        return
    page.add('<h2 id="operational">Operational</h2>')
    volume = [r for r in rows if r.metric == "row_count"]
    if volume:
        page.add("<h3>Volume: rows per window against the expected band</h3>")
        series = [
            {
                "t": charts.ms(r.window_start),
                "m": "row_count",
                "v": charts.num(r.value),
                "s": str(r.status),
                "lo": charts.num(r.details.get("low")),
                "hi": charts.num(r.details.get("high")),
            }
            for r in volume
        ]
        page.add(page.chart(charts.timeseries(series, columns=1, width=1100, height=140), "chart wide", "volume"))
    latency = [r for r in rows if r.metric.startswith("latency_")]
    if latency:
        page.add("<h3>Latency percentiles against the reference</h3>")
        series = level_series(latency, reference_key="reference")
        page.add(page.chart(charts.timeseries(series, columns=3, width=380), label="latency"))
    other = [r for r in rows if r.metric != "row_count" and not r.metric.startswith("latency_")]
    if other:
        page.add("<h3>Other health checks</h3>")
        series = level_series(other, reference_key=None)
        page.add(page.chart(charts.timeseries(series, columns=3, width=380), label="other health checks"))
    flagged: dict[str, list[Result]] = defaultdict(list)
    for r in rows:
        if r.status in (Status.ALERT, Status.WARNING):
            flagged[r.metric].append(r)
    if flagged:
        page.add(
            table(
                [
                    "metric",
                    "alert windows",
                    "warning windows",
                    "first",
                    "last",
                    "latest flagged value",
                    "threshold",
                    "reason",
                ],
                (
                    [
                        esc(metric),
                        f"{sum(r.status == Status.ALERT for r in group):,}",
                        f"{sum(r.status == Status.WARNING for r in group):,}",
                        esc(when(group[0].window_start)),
                        esc(when(group[-1].window_start)),
                        esc(fmt(group[-1].value)),
                        esc(fmt(group[-1].threshold)),
                        esc(group[-1].details.get("reason", "")),
                    ]
                    for metric, group in sorted(flagged.items())
                ),
                numeric=(1, 2, 5, 6),
            )
        )
    if failed_runs:
        page.add("<h3>Failed runs</h3>")
        page.add(
            table(
                ["window", "attempts", "error"],
                (
                    [
                        esc(when(run["window_start"])),
                        esc(run.get("attempts")),
                        f'<span class="details">{esc(redact(run.get("error") or "")[:500])}</span>',
                    ]
                    for run in failed_runs
                ),
                numeric=(1,),
            )
        )


FOOTER = (
    '<h2 id="reading">How to read this report</h2>'
    "<p>Each hourly window is compared with the reference. A drift metric counts as a warning or an alert "
    "only when its effect size passes the level (dashed lines) <em>and</em> the change is significant after "
    "Benjamini–Hochberg adjustment across the window's features; windows or references with too few rows are "
    "<em>unknown</em>. Colours: "
    + " ".join(badge(s) for s in ("ok", "warning", "alert", "unknown"))
    + ". Times are UTC. Generated by Driftline from <code>driftline.results</code>.</p>"
)
COMPARISON_FOOTER = (
    '<h2 id="reading">How to read this report</h2>'
    "<p>The current data is judged as one monitoring window against the reference. A drift metric counts as a "
    "warning or an alert only when its effect size passes the level <em>and</em> the change is significant "
    "after Benjamini–Hochberg adjustment across the columns; data sets with fewer than <code>min_rows</code> "
    "rows are <em>unknown</em>. Colours: "
    + " ".join(badge(s) for s in ("ok", "warning", "alert", "unknown"))
    + ". Generated by Driftline's batch compare.</p>"
)


def render_report(data: ReportData, report_url: str | None = None, generated_at: datetime | None = None) -> str:
    """The report document for already-loaded data."""
    page = Page()
    features = feature_order(data.model, data.results)
    header(page, data, report_url, generated_at or datetime.now(UTC))
    glance(page, data, features)
    attention(page, data)
    data_drift(page, data, features)
    performance(page, data)
    concept_drift(page, data)
    data_quality(page, data)
    operational(page, data)
    page.add(FOOTER)
    return page.render(f"Driftline: {data.model.name}")


def report_filename(model: str, start: datetime | None, end: datetime | None) -> str:
    span = "-".join(f"{t:%Y%m%dT%H%MZ}" for t in (start, end) if t is not None)
    safe = re.sub(r"[^a-z0-9_-]", "-", model.lower())
    return f"driftline-{safe}{'-' + span if span else ''}.html"


def report_url_for(out: Path, report_url_base: str | None) -> str | None:
    """``report_url_base`` + the file's name: where the written file will be served, if it will."""
    if not report_url_base:
        return None
    return report_url_base.rstrip("/") + "/" + out.name


def write_report(
    results_engine: Engine,
    config: MonitorsConfig,
    model: str,
    start: datetime | str | None,
    end: datetime | str | None,
    out: Path,
    report_url_base: str | None = None,
    *,
    data_engine: Engine | None = None,
) -> Path:
    """Write one model's self-contained HTML report for windows starting in [start, end); returns the file."""
    model_config = config.model(model)
    data = load_report_data(results_engine, model_config, start, end, data_engine)
    target = Path(out)
    if target.is_dir():
        target = target / report_filename(model_config.name, data.start, data.end)
    document = render_report(data, report_url_for(target, report_url_base))
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(document, encoding="utf-8")
    except OSError as exc:
        raise ReportError(f"cannot write the report to {target}: {exc.strerror}") from None
    return target


# --------------------------------------------------------------------------------------------------
# Batch comparison (driftline.tasks.compare)
# --------------------------------------------------------------------------------------------------


def render_comparison(
    comparison: Any,
    reference_name: str = "reference",
    current_name: str = "current",
    generated_at: datetime | None = None,
) -> str:
    """The report of a :class:`driftline.tasks.compare.Comparison`: verdicts, then both distributions per column."""
    page = Page()
    results: list[Result] = comparison.results
    model: ModelConfig = comparison.model
    generated = generated_at or datetime.now(UTC)
    page.add(f"<h1>Driftline comparison: {esc(current_name)} against {esc(reference_name)}</h1>")
    page.add(
        f'<p class="meta">Reference: {esc(reference_name)}, {comparison.reference.row_count:,} rows · current: '
        f"{esc(current_name)}, {comparison.current.row_count:,} rows · generated {esc(when(generated))} UTC</p>"
    )
    page.add(
        f'<p class="meta">Same statistics and verdicts as the hourly drift monitor: alpha {model.drift.alpha}, '
        f"min_rows {model.drift.min_rows}.</p>"
    )
    roles = comparison.roles
    role_rows = [[esc(c), "numeric"] for c in roles.numeric] + [[esc(c), "categorical"] for c in roles.categorical]
    role_rows += [[esc(c), f"ignored: {esc(why)}"] for c, why in roles.ignored.items()]
    window_level = [r for r in results if r.feature is None]
    page.add('<h2 id="summary">Verdicts</h2>')
    if window_level:
        page.add(
            table(
                ["dataset check", "value", "threshold", "status", "details"],
                (
                    [
                        esc(r.metric),
                        esc(fmt(r.value)),
                        esc(fmt(r.threshold)),
                        badge(r.status),
                        details_cell(r.details, ["drifted", "judged_features", "reason"]),
                    ]
                    for r in window_level
                ),
                numeric=(1, 2),
            )
        )
    one_sided = [r for r in results if r.kind == Kind.DATA_QUALITY]
    if one_sided:
        page.add("<h3>Columns on one side only</h3>")
        page.add(
            table(
                ["column", "status", "reason"],
                ([esc(r.feature or ""), badge(r.status), esc(r.details.get("reason", ""))] for r in one_sided),
            )
        )
    results = [r for r in results if r.kind != Kind.DATA_QUALITY]
    per_feature: dict[str, list[Result]] = defaultdict(list)
    for r in results:
        if r.feature is not None:
            per_feature[r.feature].append(r)
    order = feature_order(model, results)
    kinds = dict(model.features.items())
    page.add(
        table(
            ["column", "role", "verdict", *sorted({r.metric for r in results if r.feature is not None})],
            (
                [
                    f'<a href="#feature-{i}">{esc(name)}</a>',
                    esc(kinds.get(name, "")),
                    badge(worst([r.status for r in per_feature[name]])),
                    *(
                        esc(fmt(next((effect_of(r) for r in per_feature[name] if r.metric == metric), None)))
                        for metric in sorted({r.metric for r in results if r.feature is not None})
                    ),
                ]
                for i, name in enumerate(order)
                if name in per_feature
            ),
        )
    )
    if roles.ignored:
        page.add("<h3>Columns left out</h3>")
        page.add(table(["column", "role"], [row for row in role_rows if row[1].startswith("ignored")]))
    page.add('<h2 id="drift">Distributions</h2>')
    page.add(
        f'<p class="meta">Grey: {esc(reference_name)}; blue: {esc(current_name)}. Numeric columns use the '
        "reference's quantile bins (each bar about 5% of its rows; heights are densities).</p>"
    )
    for i, name in enumerate(order):
        rows = sorted(per_feature.get(name, []), key=lambda r: r.metric)
        if not rows:
            continue
        page.add(f'<section class="feature" id="feature-{i}">')
        page.add(
            f"<h3>{esc(name)} <small>({esc(kinds.get(name, ''))})</small> {badge(worst([r.status for r in rows]))}</h3>"
        )
        page.add('<div class="pair">')
        chart = distribution_chart(page, name, comparison.reference, comparison.current, "current")
        if chart:
            page.add(chart)
        page.add(
            table(
                ["metric", "value", "effect", "warning", "alert", "p adjusted", "status", "note"],
                (verdict_cells(r) for r in rows),
                numeric=(1, 2, 3, 4, 5),
            )
        )
        page.add("</div></section>")
    page.add(COMPARISON_FOOTER)
    return page.render(f"Driftline comparison: {current_name} vs {reference_name}")


def write_comparison_report(comparison: Any, out: Path, reference_name: str, current_name: str) -> Path:
    """Write the comparison report to ``out`` (a file, or a directory for ``driftline-compare.html``)."""
    target = out / "driftline-compare.html" if out.is_dir() else out
    document = render_comparison(comparison, reference_name, current_name)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(document, encoding="utf-8")
    except OSError as exc:
        raise ReportError(f"cannot write the report to {target}: {exc.strerror}") from None
    return target
