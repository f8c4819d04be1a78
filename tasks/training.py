"""Building blocks of a retraining pipeline: read the training rows, train a candidate, compare it with
the incumbent on a holdout, record it as a model version. Driftline's example trainer
(``flows/retrain.py``) sequences them; a team's own flow can compose the same functions.

Every function is plain (testable without Prefect); the ``*_task`` names are the same functions as
Prefect tasks. Promotion itself (a new reference version, the ``driftline.retrain.promoted`` event)
is ``driftline.tasks.promotion``.
"""

from __future__ import annotations

import pickle
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd
import sqlalchemy as sa
from prefect import task
from prefect.input import RunInput
from sqlalchemy.engine import Engine

from driftline.config.monitors import ModelConfig
from driftline.core.window import HOUR, floor_hour
from driftline.storage.retrains import record_model_version
from driftline.tasks._prefect import NO_RETRIES, RETRY_TRANSIENT
from driftline.tasks.extract import log_table, read_rows
from driftline.tasks.profiles import positive_indicator


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

    def holdout_range(self, model_config: ModelConfig) -> tuple[str | None, str | None]:
        """First and last timestamp of the holdout rows (ISO 8601), or (None, None) without any."""
        holdout = self.frame.iloc[self.split_at :]
        if holdout.empty:
            return None, None
        times = pd.to_datetime(holdout[model_config.timestamp_column], utc=True)
        return times.iloc[0].isoformat(), times.iloc[-1].isoformat()


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


def training_rows(
    engine: Engine,
    model_config: ModelConfig,
    lookback_hours: int,
    holdout_fraction: float,
    as_of: datetime | None = None,
    since: datetime | None = None,
) -> TrainingData:
    """Labelled rows of ``[since, as_of)``, oldest first, with the train/holdout split.

    ``as_of`` defaults to the end of the log's newest hour; ``since`` to ``lookback_hours`` before
    ``as_of``. An unlabelled model (no label column) gives no rows.
    """
    if as_of is None:
        table = log_table(model_config)
        with engine.connect() as connection:
            newest = connection.execute(sa.select(sa.func.max(table.c[model_config.timestamp_column]))).scalar_one()
        if newest is None:
            return TrainingData(pd.DataFrame(), datetime.now(UTC), datetime.now(UTC), 0)
        end = floor_hour(newest) + HOUR
    else:
        end = as_of
    start = since if since is not None else end - timedelta(hours=lookback_hours)
    frame = read_rows(engine, model_config, start, end)
    label = model_config.label_field
    if label is None or label not in frame:
        return TrainingData(frame.iloc[0:0], start, end, 0)
    frame = frame[frame[label].notna()].sort_values(model_config.timestamp_column, kind="stable").reset_index(drop=True)
    if model_config.task == "classification":
        frame["__y__"] = positive_indicator(frame, model_config)
    else:
        frame["__y__"] = pd.to_numeric(frame[label], errors="coerce")
    frame = frame[frame["__y__"].notna()].reset_index(drop=True)
    if not frame.empty:
        times = pd.to_datetime(frame[model_config.timestamp_column], utc=True)
        start = floor_hour(times.iloc[0].to_pydatetime())
        end = floor_hour(times.iloc[-1].to_pydatetime()) + HOUR
    split_at = int(round(len(frame) * (1 - holdout_fraction)))
    return TrainingData(frame, start, end, split_at)


def build_estimator(model_config: ModelConfig) -> Any:
    """Numeric features (median-imputed, scaled) + one-hot categorical ones, then LogisticRegression or Ridge."""
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression, Ridge
    from sklearn.pipeline import Pipeline, make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    parts = []
    if model_config.features.numeric:
        parts.append(
            (
                "numeric",
                make_pipeline(SimpleImputer(strategy="median"), StandardScaler()),
                list(model_config.features.numeric),
            )
        )
    if model_config.features.categorical:
        parts.append(
            (
                "categorical",
                make_pipeline(SimpleImputer(strategy="most_frequent"), OneHotEncoder(handle_unknown="ignore")),
                list(model_config.features.categorical),
            )
        )
    head = LogisticRegression(max_iter=1000) if model_config.task == "classification" else Ridge(alpha=1.0)
    return Pipeline([("features", ColumnTransformer(parts)), ("model", head)])


def feature_frame(frame: pd.DataFrame, model_config: ModelConfig) -> pd.DataFrame:
    out = pd.DataFrame(index=frame.index)
    for column in model_config.features.numeric:
        out[column] = pd.to_numeric(frame[column], errors="coerce").astype(float)
    for column in model_config.features.categorical:
        out[column] = frame[column].astype(object).where(frame[column].notna(), np.nan)
    return out


def score(y: np.ndarray, predicted: np.ndarray, model_config: ModelConfig) -> tuple[str, bool, float]:
    """(metric, higher is better, value): ROC AUC (accuracy on a one-class holdout) or RMSE."""
    from sklearn.metrics import accuracy_score, mean_squared_error, roc_auc_score

    if model_config.task == "classification":
        if len(np.unique(y)) == 2:
            return "roc_auc", True, float(roc_auc_score(y, predicted))
        return "accuracy", True, float(accuracy_score(y, predicted >= 0.5))
    return "rmse", False, float(np.sqrt(mean_squared_error(y, predicted)))


def predict(estimator: Any, features: pd.DataFrame, model_config: ModelConfig) -> np.ndarray:
    if model_config.task == "classification":
        return np.asarray(estimator.predict_proba(features)[:, 1], dtype=float)
    return np.asarray(estimator.predict(features), dtype=float)


def logged_predictions(frame: pd.DataFrame, model_config: ModelConfig) -> np.ndarray | None:
    """What the current model said on these rows: its score (classifiers, if logged) or its prediction."""
    if model_config.task == "classification" and not model_config.score_column:
        values = frame[model_config.prediction_column]
        positive = model_config.performance.positive_label
        if isinstance(positive, int | float) and not isinstance(positive, bool):
            hits = pd.to_numeric(values, errors="coerce").to_numpy(dtype=float, na_value=np.nan) == float(positive)
        else:
            hits = values.astype(str).to_numpy() == str(positive)
        predicted = np.where(values.notna().to_numpy(), hits.astype(float), np.nan)
    else:
        column = model_config.score_column if model_config.task == "classification" else model_config.prediction_column
        predicted = pd.to_numeric(frame[column], errors="coerce").to_numpy(dtype=float, na_value=np.nan)
    return None if len(predicted) == 0 or np.isnan(predicted).any() else predicted


def train_candidate(data: TrainingData, model_config: ModelConfig) -> Any:
    train = data.frame.iloc[: data.split_at]
    estimator = build_estimator(model_config)
    estimator.fit(feature_frame(train, model_config), train["__y__"].to_numpy(dtype=float))
    return estimator


def compare(candidate: Any, data: TrainingData, model_config: ModelConfig, stored: dict[str, Any] | None) -> Comparison:
    """Candidate vs the current model on the holdout; the baseline (the incumbent) is the better of
    the logged predictions and the latest stored version."""
    holdout = data.frame.iloc[data.split_at :]
    y = holdout["__y__"].to_numpy(dtype=float)
    features = feature_frame(holdout, model_config)
    metric, higher, candidate_score = score(y, predict(candidate, features, model_config), model_config)
    scores = {"candidate": candidate_score}
    logged = logged_predictions(holdout, model_config)
    if logged is not None:
        scores["logged predictions"] = score(y, logged, model_config)[2]
    if stored is not None and stored.get("artifact"):
        try:
            previous = pickle.loads(stored["artifact"])  # our own artifact, from our own table
            scores[f"model version {stored['version']}"] = score(
                y, predict(previous, features, model_config), model_config
            )[2]
        except Exception:  # features changed since: that version cannot score these rows
            pass
    baselines = {k: v for k, v in scores.items() if k != "candidate"}
    if not baselines:
        return Comparison(metric, higher, candidate_score, None, None, scores)
    source = (max if higher else min)(baselines, key=baselines.__getitem__)
    return Comparison(metric, higher, candidate_score, baselines[source], source, scores)


def record_candidate(
    connection: sa.Connection,
    model_config: ModelConfig,
    candidate: Any,
    data: TrainingData,
    comparison: Comparison,
    reason: str,
    flow_run_id: str | None,
) -> tuple[int, int]:
    """Store the candidate as the model's next version (``driftline.model_versions``); (row id, version).

    Runs in the caller's transaction, under a per-model advisory lock, so the promotion that refers
    to the version commits with it or not at all.
    """
    return record_model_version(
        connection,
        {
            "model": model_config.name,
            "estimator": type(candidate.named_steps["model"]).__name__,
            "artifact": pickle.dumps(candidate),
            "features": model_config.features.model_dump(),
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


def approval_request(model_config: ModelConfig, data: TrainingData, comparison: Comparison, reference: str) -> str:
    """The Markdown a reviewer sees on the paused run (Prefect UI: Resume): scores and the data."""
    holdout_from, holdout_to = data.holdout_range(model_config)
    lines = [
        f"## Promote a new `{model_config.name}` model?",
        "",
        f"Holdout **{comparison.metric}** ({'higher' if comparison.higher_is_better else 'lower'} is better):",
        "",
        "| model | score |",
        "|---|---|",
        *(f"| {name} | {value:.4f} |" for name, value in comparison.scores.items()),
        "",
        f"- incumbent: **{comparison.baseline_source or 'none'}**",
        f"- trained on {data.split_at} labelled rows of {data.start.isoformat()} .. {data.end.isoformat()}",
        f"- judged on the newest {len(data.frame) - data.split_at} rows ({holdout_from} .. {holdout_to})",
        f"- if approved, the reference becomes: {reference}",
        "",
        "Answer `approve: true` or `false`, with a `note`.",
    ]
    return "\n".join(lines)


training_rows_task = task(training_rows, name="training-rows", **RETRY_TRANSIENT)
train_candidate_task = task(train_candidate, name="train-candidate", **NO_RETRIES)
compare_task = task(compare, name="compare-on-holdout", **NO_RETRIES)
