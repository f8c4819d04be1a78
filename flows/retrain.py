"""Retraining: the flow a drift or performance automation runs (deployment ``retrain/retrain``).

``retrain(model, window_start=..., window_end=...)`` (the automations pass the window of the event
that triggered it)

1. skips when the model was retrained within the cooldown (``actions.retrain.cooldown_hours``);
2. reads the recent labelled rows of the prediction log: the ``lookback_hours`` before the end of
   the triggering window (so a run that starts late, a replay, or the demo's day seeded in advance
   trains on what was known at that hour), or before the log's newest row when run by hand;
3. trains a scikit-learn candidate on the older part — LogisticRegression (classification) or Ridge
   (regression) on the numeric features plus one-hot categorical ones;
4. scores it on the newest part (the holdout) against the current model: the logged predictions'
   quality on the same rows, and the latest stored model version if there is one (the better of the two);
5. only if the candidate is better (and approved, with ``require_approval``), records it in
   ``driftline.model_versions`` and records a new reference version (``driftline.reference_versions``,
   effective from the promotion: earlier windows keep theirs) on the new data: ``[window_start, window_end)`` of the
   triggering window, i.e. the data since the problem was detected, which the new model is meant
   to serve. Moving it to the whole training range would keep the drift verdicts on: a week of
   training data with one drifted hour still looks like the old distribution. Run by hand (no
   window), the reference moves to the training range. Then it emits ``driftline.retrain.promoted``
   (what a CI/CD webhook automation listens to).
"""

from __future__ import annotations

import pickle
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd
import sqlalchemy as sa
from prefect import flow, get_run_logger, task
from prefect.input import RunInput
from prefect.runtime import flow_run
from sqlalchemy.engine import Engine

from driftline.config import ModelConfig
from driftline.connections import load_run_config, open_databases
from driftline.notifications_config import DEFAULT_ACTIONS, DEFAULT_RETRAIN, RetrainAction
from driftline.tasks._prefect import IO, PURE
from driftline.tasks.events import RETRAIN_PROMOTED, build_event, emit_events
from driftline.tasks.extract import log_table, read_rows
from driftline.tasks.notify_store import (
    claim_retrain,
    finish_retrain,
    latest_model_version,
    record_model_version,
)
from driftline.tasks.profiles import positive_indicator
from driftline.tasks.references import promote_reference
from driftline.tasks.store import latest_window_end
from driftline.window import HOUR, floor_hour


class RetrainApproval(RunInput):
    """What a person answers when a retrain waits for approval (Prefect UI: Resume)."""

    approve: bool
    note: str = ""


@dataclass
class TrainingData:
    frame: pd.DataFrame  # labelled rows, oldest first, with the target in column "__y__"
    start: datetime
    end: datetime
    split_at: int  # rows [0, split_at) train the candidate, the rest is the holdout


@dataclass
class Comparison:
    metric: str
    higher_is_better: bool
    candidate: float
    baseline: float | None
    baseline_source: str | None
    scores: dict[str, float]

    def improvement(self) -> float | None:
        """Relative improvement of the candidate over the baseline (positive = better)."""
        if self.baseline is None:
            return None
        gain = self.candidate - self.baseline if self.higher_is_better else self.baseline - self.candidate
        return gain / max(abs(self.baseline), 1e-12)


def retrain_settings(model: ModelConfig) -> RetrainAction:
    actions = getattr(model, "actions", None) or DEFAULT_ACTIONS
    return actions.retrain or DEFAULT_RETRAIN


def training_rows(
    engine: Engine, model: ModelConfig, lookback_hours: int, holdout_fraction: float, as_of: datetime | None = None
) -> TrainingData:
    """Labelled rows of the ``lookback_hours`` before ``as_of`` (default: the log's newest row),
    oldest first, with the split."""
    if as_of is None:
        table = log_table(model)
        with engine.connect() as connection:
            newest = connection.execute(sa.select(sa.func.max(table.c[model.timestamp_column]))).scalar_one()
        if newest is None:
            return TrainingData(pd.DataFrame(), datetime.now(UTC), datetime.now(UTC), 0)
        end = floor_hour(newest) + HOUR
    else:
        end = as_of
    start = end - timedelta(hours=lookback_hours)
    frame = read_rows(engine, model, start, end)
    label = model.label_field
    if label is None or label not in frame:
        return TrainingData(frame.iloc[0:0], start, end, 0)
    frame = frame[frame[label].notna()].sort_values(model.timestamp_column, kind="stable").reset_index(drop=True)
    if model.task == "classification":
        frame["__y__"] = positive_indicator(frame, model)
    else:
        frame["__y__"] = pd.to_numeric(frame[label], errors="coerce")
    frame = frame[frame["__y__"].notna()].reset_index(drop=True)
    if not frame.empty:
        times = pd.to_datetime(frame[model.timestamp_column], utc=True)
        start = floor_hour(times.iloc[0].to_pydatetime())
        end = floor_hour(times.iloc[-1].to_pydatetime()) + HOUR
    split_at = int(round(len(frame) * (1 - holdout_fraction)))
    return TrainingData(frame, start, end, split_at)


def build_estimator(model: ModelConfig) -> Any:
    """Numeric features (median-imputed, scaled) + one-hot categorical ones, then LogisticRegression or Ridge."""
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression, Ridge
    from sklearn.pipeline import Pipeline, make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    parts = []
    if model.features.numeric:
        parts.append(
            ("numeric", make_pipeline(SimpleImputer(strategy="median"), StandardScaler()), list(model.features.numeric))
        )
    if model.features.categorical:
        parts.append(
            (
                "categorical",
                make_pipeline(SimpleImputer(strategy="most_frequent"), OneHotEncoder(handle_unknown="ignore")),
                list(model.features.categorical),
            )
        )
    head = LogisticRegression(max_iter=1000) if model.task == "classification" else Ridge(alpha=1.0)
    return Pipeline([("features", ColumnTransformer(parts)), ("model", head)])


def feature_frame(frame: pd.DataFrame, model: ModelConfig) -> pd.DataFrame:
    out = pd.DataFrame(index=frame.index)
    for column in model.features.numeric:
        out[column] = pd.to_numeric(frame[column], errors="coerce").astype(float)
    for column in model.features.categorical:
        out[column] = frame[column].astype(object).where(frame[column].notna(), np.nan)
    return out


def _score(y: np.ndarray, predicted: np.ndarray, model: ModelConfig) -> tuple[str, bool, float]:
    from sklearn.metrics import accuracy_score, mean_squared_error, roc_auc_score

    if model.task == "classification":
        if len(np.unique(y)) == 2:
            return "roc_auc", True, float(roc_auc_score(y, predicted))
        return "accuracy", True, float(accuracy_score(y, predicted >= 0.5))
    return "rmse", False, float(np.sqrt(mean_squared_error(y, predicted)))


def _predict(estimator: Any, features: pd.DataFrame, model: ModelConfig) -> np.ndarray:
    if model.task == "classification":
        return np.asarray(estimator.predict_proba(features)[:, 1], dtype=float)
    return np.asarray(estimator.predict(features), dtype=float)


def logged_predictions(frame: pd.DataFrame, model: ModelConfig) -> np.ndarray | None:
    """What the current model said on these rows: its score (classifiers, if logged) or its prediction."""
    if model.task == "classification" and not model.score_column:
        values = frame[model.prediction_column]
        positive = model.performance.positive_label
        if isinstance(positive, int | float) and not isinstance(positive, bool):
            hits = pd.to_numeric(values, errors="coerce").to_numpy(dtype=float, na_value=np.nan) == float(positive)
        else:
            hits = values.astype(str).to_numpy() == str(positive)
        predicted = np.where(values.notna().to_numpy(), hits.astype(float), np.nan)
    else:
        column = model.score_column if model.task == "classification" else model.prediction_column
        predicted = pd.to_numeric(frame[column], errors="coerce").to_numpy(dtype=float, na_value=np.nan)
    return None if len(predicted) == 0 or np.isnan(predicted).any() else predicted


def train_candidate(data: TrainingData, model: ModelConfig) -> Any:
    train = data.frame.iloc[: data.split_at]
    estimator = build_estimator(model)
    estimator.fit(feature_frame(train, model), train["__y__"].to_numpy(dtype=float))
    return estimator


def compare(candidate: Any, data: TrainingData, model: ModelConfig, stored: dict[str, Any] | None) -> Comparison:
    """Candidate vs the current model on the holdout; the baseline is the better of the logged
    predictions and the latest stored version."""
    holdout = data.frame.iloc[data.split_at :]
    y = holdout["__y__"].to_numpy(dtype=float)
    features = feature_frame(holdout, model)
    metric, higher, candidate_score = _score(y, _predict(candidate, features, model), model)
    scores = {"candidate": candidate_score}
    logged = logged_predictions(holdout, model)
    if logged is not None:
        scores["logged predictions"] = _score(y, logged, model)[2]
    if stored is not None and stored.get("artifact"):
        try:
            previous = pickle.loads(stored["artifact"])  # our own artifact, from our own table
            scores[f"model version {stored['version']}"] = _score(y, _predict(previous, features, model), model)[2]
        except Exception:  # features changed since: that version cannot score these rows
            pass
    baselines = {k: v for k, v in scores.items() if k != "candidate"}
    if not baselines:
        return Comparison(metric, higher, candidate_score, None, None, scores)
    source = (max if higher else min)(baselines, key=baselines.__getitem__)
    return Comparison(metric, higher, candidate_score, baselines[source], source, scores)


def promote(
    engine: Engine,
    model: ModelConfig,
    candidate: Any,
    data: TrainingData,
    comparison: Comparison,
    reason: str,
    flow_run_id: str | None,
    reference: tuple[datetime, datetime] | None = None,
    effective_from: datetime | None = None,
) -> dict[str, Any]:
    """Record the new model version and a new reference version, in one transaction.

    ``reference`` is the new reference range (default: the training data's). ``effective_from``
    (default: now, the promotion): windows starting at or after it are judged against the new
    reference; earlier windows keep the one they were judged against (``promote_reference``)."""
    reference_start, reference_end = reference or (data.start, data.end)
    with engine.begin() as connection:
        connection.execute(sa.text("SELECT pg_advisory_xact_lock(hashtext(:key))"), {"key": f"versions|{model.name}"})
        version_id, version = record_model_version(
            connection,
            {
                "model": model.name,
                "estimator": type(candidate.named_steps["model"]).__name__,
                "artifact": pickle.dumps(candidate),
                "features": model.features.model_dump(),
                "train_start": data.start,
                "train_end": data.end,
                "metric": comparison.metric,
                "score": comparison.candidate,
                "baseline_score": comparison.baseline,
                "baseline_source": comparison.baseline_source,
                "metrics": {"holdout": comparison.scores, "rows": len(data.frame), "train_rows": data.split_at},
                "reason": reason[:1000],
                "flow_run_id": flow_run_id,
            },
        )
        promoted = promote_reference(
            connection,
            model=model,
            version=version,
            reference_start=reference_start,
            reference_end=reference_end,
            effective_from=effective_from,
            note=f"retrain: model version {version}",
            promoted_by=f"flow run {flow_run_id}" if flow_run_id else "retrain",
            model_version_id=version_id,
            source="retrain",
        )
    return {
        "version": version,
        "model_version_id": version_id,
        "reference_version": promoted.version,
        "effective_from": promoted.effective_from.isoformat() if promoted.effective_from else None,
        "reference_start": reference_start.isoformat(),
        "reference_end": reference_end.isoformat(),
    }


def promotion_effective_from(results_engine: Engine, model: str, as_of: datetime | None) -> datetime | None:
    """When a promotion takes effect: triggered by a window, the hour after it — or, if later hours
    were judged meanwhile, the end of the latest one, so no stored verdict changes on a rerun; run
    by hand, ``None`` (now, the promotion time)."""
    if as_of is None:
        return None
    latest = latest_window_end(results_engine, model)
    return as_of if latest is None else max(as_of, latest)


training_rows_task = task(training_rows, name="training-rows", **IO)
train_candidate_task = task(train_candidate, name="train-candidate", **PURE)
compare_task = task(compare, name="compare-on-holdout", **PURE)
promote_task = task(promote, name="promote-model-version", **PURE)


def _run_name() -> str:
    return f"retrain-{flow_run.parameters.get('model')}"


def _utc(value: str | datetime | None) -> datetime | None:
    """An ISO 8601 instant (naive = UTC) as an aware UTC datetime; None for None or ''."""
    if value is None or value == "":
        return None
    moment = value if isinstance(value, datetime) else datetime.fromisoformat(value)
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


@flow(name="retrain", flow_run_name=_run_name)
def retrain(
    model: str,
    reason: str = "",
    config_path: str | None = None,
    require_approval: bool | None = None,
    cooldown_hours: float | None = None,
    lookback_hours: int | None = None,
    approval_timeout_s: int = 86_400,
    # Strings, not datetimes: the automation renders them from the event as text, and with a
    # ``datetime`` annotation the run served by tests/e2e failed parameter validation
    # ("RetrainModel is not fully defined; define datetime": postponed annotations).
    window_start: str | None = None,
    window_end: str | None = None,
) -> dict[str, Any]:
    """Train a candidate on recent labelled rows; keep it (and move the reference) only if it is better.

    ``window_start``/``window_end``: the window whose event triggered the run (automations pass
    them); training stops at its end and a promotion moves the reference to it."""
    logger = get_run_logger()
    since, as_of = _utc(window_start), _utc(window_end)  # a bad value fails here, before anything is claimed
    if since is not None and as_of is not None and since >= as_of:
        since = None  # not a window: train up to its end, keep the training range as reference
    config = load_run_config(config_path)
    model_config = config.model(model)
    settings = retrain_settings(model_config)
    databases = open_databases(config)
    run_id = str(flow_run.id) if flow_run.id else None
    cooldown = settings.cooldown_hours if cooldown_hours is None else cooldown_hours
    retrain_id, previous = claim_retrain(databases.results, model, reason, run_id, cooldown)
    outcome: dict[str, Any] = {"model": model, "reason": reason, "retrain_id": retrain_id}
    if previous is not None:
        logger.info("%s: retrained at %s, within the %sh cooldown: skipped", model, previous.isoformat(), cooldown)
        return outcome | {"status": "skipped", "previous_start": previous.isoformat()}
    try:
        data = training_rows_task(
            databases.data,
            model_config,
            lookback_hours or settings.lookback_hours,
            settings.holdout_fraction,
            as_of,
        )
        holdout_rows = len(data.frame) - data.split_at
        outcome |= {"rows": len(data.frame), "train_start": data.start.isoformat(), "train_end": data.end.isoformat()}
        if len(data.frame) < settings.min_rows or holdout_rows < 10 or data.frame["__y__"].nunique() < 2:
            details = outcome | {"status": "rejected", "why": f"not enough labelled rows ({len(data.frame)})"}
            finish_retrain(databases.results, retrain_id, "rejected", details)
            logger.warning("%s: %s", model, details["why"])
            return details
        candidate = train_candidate_task(data, model_config)
        comparison = compare_task(candidate, data, model_config, latest_model_version(databases.results, model))
        improvement = comparison.improvement()
        outcome |= {
            "metric": comparison.metric,
            "scores": comparison.scores,
            "baseline": comparison.baseline_source,
            "improvement": improvement,
        }
        logger.info("%s: holdout %s %s", model, comparison.metric, comparison.scores)
        if improvement is not None and improvement <= settings.min_improvement:
            details = outcome | {"status": "rejected", "why": "the candidate does not beat the current model"}
            finish_retrain(databases.results, retrain_id, "rejected", details)
            return details
        if settings.approval_required if require_approval is None else require_approval:
            from prefect.flow_runs import pause_flow_run

            logger.info("%s: waiting for approval (resume this flow run with approve=true/false)", model)
            try:
                answer = pause_flow_run(wait_for_input=RetrainApproval, timeout=approval_timeout_s, poll_interval=1)
            except Exception as exc:  # timed out: nobody approved
                answer = RetrainApproval(approve=False, note=f"no answer: {type(exc).__name__}")
            outcome["approval"] = {"approve": answer.approve, "note": answer.note}
            if not answer.approve:
                details = outcome | {"status": "rejected", "why": "not approved"}
                finish_retrain(databases.results, retrain_id, "rejected", details)
                return details
        new_reference = (since, as_of) if since is not None and as_of is not None else None
        promoted = promote_task(
            databases.results,
            model_config,
            candidate,
            data,
            comparison,
            reason,
            run_id,
            new_reference,
            promotion_effective_from(databases.results, model, as_of),
        )
        outcome |= promoted | {"status": "promoted"}
        sent, queued = emit_events(
            [
                build_event(
                    RETRAIN_PROMOTED,
                    model,
                    {k: v for k, v in outcome.items() if k != "scores"} | {"scores": comparison.scores},
                )
            ],
            databases.results,
            model,
        )
        outcome["events"] = sent + queued
        finish_retrain(databases.results, retrain_id, "promoted", outcome)
        logger.info(
            "%s: promoted model version %s; reference now %s .. %s",
            model,
            promoted["version"],
            promoted["reference_start"],
            promoted["reference_end"],
        )
        return outcome
    except Exception as exc:
        finish_retrain(databases.results, retrain_id, "failed", outcome | {"error": f"{type(exc).__name__}: {exc}"})
        raise
