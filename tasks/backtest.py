"""Backtest: re-judge stored windows with a candidate configuration, without reading the prediction log.

``driftline backtest --config F --model M --start ISO --end ISO --set drift.alpha=0.005`` answers
"how many windows would have warned or alerted, per kind, had these settings been live?" from what
the hourly runs stored:

* **data drift** and **concept drift** (prediction, score, label): recomputed from the stored hourly
  window profiles (``driftline.window_profiles``) against the stored reference profile, under the
  current and the candidate settings alike — same statistics, families and gates as the hourly run;
* **performance**: each stored metric re-judged from its stored value, reference value and p-value
  under the candidate's tolerances and alpha (the family gate recomputed);
* **operational** and **data quality**: their stored verdicts, under both (they need the rows).

A candidate that changes what the reference profile is (features, table, reference range, binning)
has no stored profiles to re-judge: that is an error naming why.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from pathlib import Path

import yaml
from sqlalchemy.engine import Engine

from driftline.config.monitors import ModelConfig, parse_config
from driftline.core.errors import ConfigError
from driftline.core.results import Kind, Result, Status, worst
from driftline.core.window import Window
from driftline.stats.model_profile import ModelProfile
from driftline.storage.profiles import load_reference, load_window_profiles
from driftline.storage.results import load_results
from driftline.tasks.concept import CONCEPT_METRICS, label_columns
from driftline.tasks.drift import compare_columns, evaluate_drift, size_reason
from driftline.tasks.performance import bound, judge_performance_family, lower_is_better, tolerance_for
from driftline.tasks.references import resolve_reference

HOUR = timedelta(hours=1)


def candidate_config(config_file: str | Path, model: str, settings: list[str]) -> ModelConfig:
    """The model's config from ``config_file`` with each ``key=value`` applied (dotted keys, YAML values).

    ``drift.alpha=0.005``, ``drift.thresholds.psi={warning: 0.15, alert: 0.3}``,
    ``performance.default_tolerance.alert=0.2``. The result is validated like monitors.yaml itself.
    """
    raw = yaml.safe_load(Path(config_file).read_text(encoding="utf-8"))
    if not isinstance(raw, dict) or not isinstance(raw.get("models"), list):
        raise ConfigError(f"{config_file}: expected a mapping with a 'models' list")
    entries = [m for m in raw["models"] if isinstance(m, dict) and m.get("name") == model]
    if not entries:
        raise ConfigError(f"{config_file}: no model named {model!r}")
    entry = copy.deepcopy(entries[0])
    for setting in settings:
        key, sep, text = setting.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--set expects key=value, got {setting!r}")
        path = key.strip().split(".")
        node = entry
        for part in path[:-1]:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise ConfigError(f"--set {key}: {part!r} is not a mapping")
            node = child
        node[path[-1]] = yaml.safe_load(text)
    return parse_config({"models": [entry]}, f"{config_file} with --set").models[0]


@dataclass
class KindCounts:
    windows: int = 0
    warning: int = 0
    alert: int = 0

    def add(self, status: Status) -> None:
        self.windows += 1
        self.warning += status == Status.WARNING
        self.alert += status == Status.ALERT


@dataclass
class Backtest:
    """Per kind: how many windows were judged, and how many would warn (worst = warning) or alert."""

    current: dict[str, KindCounts] = field(default_factory=dict)
    candidate: dict[str, KindCounts] = field(default_factory=dict)
    windows: int = 0
    missing_profiles: int = 0
    notes: list[str] = field(default_factory=list)

    def count(self, side: str, kind: Kind | str, statuses: list[Status]) -> None:
        judged = [s for s in statuses if s != Status.UNKNOWN]
        if not judged:
            return
        getattr(self, side).setdefault(str(kind), KindCounts()).add(worst(judged))


def concept_from_profile(
    model_config: ModelConfig, window: Window, reference: ModelProfile, current: ModelProfile
) -> list[Result]:
    """Prediction, score and label drift from the profiles alone (the hourly run's statistics and family).

    The label rate per score bin needs the rows and is not re-judged."""
    targets = [
        (c, k)
        for c, k in model_config.target_columns()
        if c not in (model_config.latency_column, model_config.error_column)
    ]
    label = current.features.get(model_config.label_field) if model_config.label_field else None
    labelled = int(label.n) if label is not None else 0
    min_labels = model_config.performance.min_labels
    column_reasons = {
        c: f"only {labelled} labelled rows in the window, fewer than performance.min_labels={min_labels}"
        for c in label_columns(model_config)
        if labelled < min_labels
    }
    return compare_columns(
        model_config,
        window,
        reference,
        current,
        targets,
        Kind.CONCEPT_DRIFT,
        lambda kind: CONCEPT_METRICS[kind],
        size_reason(model_config, reference, current),
        column_reasons,
    )


def rejudge_performance(model_config: ModelConfig, stored: list[Result]) -> list[Result]:
    """Stored performance results under ``model``'s tolerances and alpha (values and p-values as stored)."""
    out = []
    for r in stored:
        d = dict(r.details)
        reference_value = d.get("reference_value")
        if r.status == Status.UNKNOWN or r.value is None or reference_value is None or "level_reached" not in d:
            out.append(r)
            continue
        warning, alert = tolerance_for(model_config, r.metric)
        alert_bound, warning_bound = bound(r.metric, reference_value, alert), bound(r.metric, reference_value, warning)
        beyond = (lambda v, b: v > b) if lower_is_better(r.metric) else (lambda v, b: v < b)
        level = "alert" if beyond(r.value, alert_bound) else "warning" if beyond(r.value, warning_bound) else "ok"
        d |= {"level_reached": level, "warning": warning_bound}
        out.append(replace(r, threshold=alert_bound, details=d))
    return judge_performance_family(out, model_config) if out else out


def run_backtest(
    results_engine: Engine, current: ModelConfig, candidate: ModelConfig, start: datetime, end: datetime
) -> Backtest:
    """Judge every stored hour in ``[start, end)`` under both configurations; read only Driftline's tables."""
    outcome = Backtest()
    window_start = start
    references: dict[str, ModelProfile | None] = {}
    while window_start < end:
        window = Window(window_start, window_start + HOUR)
        window_start += HOUR
        # The reference version in effect for this window (the one resolver every consumer uses).
        chosen = resolve_reference(results_engine, current, window.start)
        definitions = {
            "current": chosen.apply(current).reference_definition(window.start),
            "candidate": chosen.apply(candidate).reference_definition(window.start),
        }
        if definitions["current"] != definitions["candidate"]:
            raise ConfigError(
                "the candidate changes what the reference profile is (features, table, reference range or "
                "binning): there are no stored profiles to re-judge; backtest thresholds, metrics and gates only"
            )
        definition = definitions["current"]
        if definition not in references:
            references[definition] = load_reference(results_engine, current.name, definition)
        reference = references[definition]
        stored = load_results(results_engine, current.name, window.start, window.end)
        profiles = (
            load_window_profiles(results_engine, current.name, definition, reference, window.start, window.end)
            if reference is not None
            else []
        )
        if not stored and not profiles:
            continue
        outcome.windows += 1
        if not profiles:
            outcome.missing_profiles += 1
        for side, model in (("current", current), ("candidate", candidate)):
            if profiles and reference is not None:
                drift = evaluate_drift(model, window, reference, profiles[0])
                outcome.count(side, Kind.DATA_DRIFT, [r.status for r in drift])
                concept = concept_from_profile(model, window, reference, profiles[0])
                outcome.count(side, Kind.CONCEPT_DRIFT, [r.status for r in concept])
            performance = [r for r in stored if r.kind == Kind.PERFORMANCE]
            if performance:
                outcome.count(side, Kind.PERFORMANCE, [r.status for r in rejudge_performance(model, performance)])
            for kind in (Kind.OPERATIONAL, Kind.DATA_QUALITY):
                rows = [r for r in stored if r.kind == kind]
                if rows:
                    outcome.count(side, kind, [r.status for r in rows])
    if outcome.missing_profiles:
        outcome.notes.append(
            f"{outcome.missing_profiles} window(s) have results but no stored hourly profile: their data and "
            "concept drift are not re-judged"
        )
    outcome.notes.append("operational and data_quality: stored verdicts under both (they need the rows)")
    return outcome
