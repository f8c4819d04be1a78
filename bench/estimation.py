"""Estimated performance against the realised one: Driftline and NannyML's CBPE on the same chunks.

One command (from the repository root; NannyML needs pandas < 3, so this runs in ``.venv-bench``,
made with ``python3 -m venv .venv-bench && .venv-bench/bin/pip install -e '.[bench]'``)::

    flock /work/bench.lock .venv-bench/bin/python bench/estimation.py [--out docs/estimation-bench.md]

Three scenarios, each a labelled reference and a run of equal chunks whose labels are withheld from
both tools and used only to score them:

(a) **covariate shift, calibrated score** — a seeded loan model (reference 20,000 rows; 20 chunks
    of 2,000): the input mix moves chunk by chunk (income towards the decision boundary, then past
    it; the region mix changes) while ``P(label | score)`` stays the reference's. Realised accuracy,
    F1 and ROC AUC move; the estimates must follow them.
(b) **concept drift** — the same reference; the inputs and scores do not move, but the relation
    does: a share ``lambda`` (0 -> 0.6 over the 20 chunks) of each chunk's labels is drawn from the
    flipped score. Realised performance falls; no score-based estimate can see it. This is the
    documented limit, measured.
(c) **NannyML's synthetic car-loan data** (``nannyml.load_synthetic_car_loan_dataset()``: 50,000
    reference rows, 50,000 analysis rows with targets), chunked by NannyML's size chunker at 5,000
    (its documentation's choice: 10 chunks) and at 1,000 rows (50 chunks).

For each tool, per metric: the mean absolute error of the estimate against the realised metric
(scikit-learn on the chunk's withheld labels) and the share of chunks whose realised value lies
inside the tool's band — Driftline's default 95% band (estimate +- 1.96 standard errors) and
NannyML's own confidence band (estimate +- 3 sampling errors, clipped to [0, 1]); for a like-for-like
reading also NannyML's estimate +- 1.96 sampling errors. Driftline runs its public functions
(``fit_reference``, ``profile_window``, ``estimate_results``: what the hourly flow calls) on the
same rows in memory; NannyML runs ``CBPE`` fitted on the reference and estimated on the analysis rows.
Driftline's coverage is given twice from the same run: for the band before #17's fix (estimate +-
1.96 sampling errors of the window) and for the band now drawn (the sampling error and the
calibration's error from the reference labels combined). A diagnosis table then shows why car-loan
precision and recall still miss: the error on the unshifted and the shifted half of the analysis, for
Driftline's estimate, the same with the calibration fitted on the analysis's own labels, and a
gradient-boosted model of the label on the features and score fitted on the reference.

(d) **Regressors**: Driftline's loss model against NannyML's DLE on NannyML's synthetic car-price
data (``nannyml.load_synthetic_car_price_dataset()``: 60,000 reference and 60,000 analysis rows),
chunked at 6,000 (its documentation's choice) and at 1,000 rows: MAE and RMSE, the error of each
tool's estimate against the realised metric, its band's coverage, and each tool's time (fit and all
chunks' estimates).

Last, the false-alarm rate of the estimated verdicts: 200 unchanged windows of 300 rows, the share
flagged warning or alert per estimated result. Prints markdown tables (and writes them to ``--out``)
with the data sizes and the machine's load.
"""

from __future__ import annotations

import argparse
import math
import os
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn import metrics as skm

from driftline.config.monitors import RESIDUAL, parse_config
from driftline.core.window import Window
from driftline.tasks.estimation import estimate_results
from driftline.tasks.profiles import fit_reference, profile_window

METRICS = ("roc_auc", "accuracy", "precision", "recall", "f1")
Z95 = 1.959963984540054
WINDOW = Window(pd.Timestamp("2026-01-01T00:00Z").to_pydatetime(), pd.Timestamp("2026-01-01T01:00Z").to_pydatetime())


# --------------------------------------------------------------------------------------------
# Data
# --------------------------------------------------------------------------------------------


def _loan(
    rng: np.random.Generator, n: int, income_mean: float = 0.0, west: float = 0.2, flip: float = 0.0
) -> pd.DataFrame:
    """A loan model: score from income, debt and region; label ~ Bernoulli(score) for a share
    ``1 - flip`` of the rows, ~ Bernoulli(1 - score) for the others."""
    income = rng.normal(income_mean, 1.0, n)
    debt = rng.beta(2, 5, n)
    region = np.where(rng.uniform(size=n) < west, "west", rng.choice(["north", "south", "east"], n))
    logit = 1.6 * income - 2.0 * (debt - 0.28) + np.where(region == "west", -0.6, 0.2)
    score = 1 / (1 + np.exp(-logit))
    truth = np.where(rng.uniform(size=n) < flip, 1 - score, score)
    return pd.DataFrame(
        {
            "income": income,
            "debt": debt,
            "region": region,
            "y_pred_proba": score,
            "y_pred": (score >= 0.5).astype(int),
            "repaid": (rng.uniform(size=n) < truth).astype(float),
        }
    )


def seeded(kind: str, reference_rows: int = 20_000, chunks: int = 20, chunk_rows: int = 2_000) -> dict[str, Any]:
    rng = np.random.default_rng(17 if kind == "covariate" else 23)
    reference = _loan(rng, reference_rows)
    parts = []
    for i in range(chunks):
        step = i / (chunks - 1)
        if kind == "covariate":
            # Incomes fall towards the boundary (-0.4 sd ... ) then below it; the region mix moves west.
            parts.append(_loan(rng, chunk_rows, income_mean=-0.9 * step, west=0.2 + 0.5 * step))
        else:
            parts.append(_loan(rng, chunk_rows, flip=0.6 * step))
    analysis = pd.concat(parts, ignore_index=True)
    return {
        "reference": reference,
        "analysis": analysis,
        "features": {"numeric": ["income", "debt"], "categorical": ["region"]},
        "chunk_size": chunk_rows,
    }


def car_loan(chunk_size: int) -> dict[str, Any]:
    import nannyml as nml

    reference, analysis, targets = nml.load_synthetic_car_loan_dataset()
    analysis = analysis.merge(targets, on="id")
    for frame in (reference, analysis):
        frame["repaid_loan_on_prev_car"] = frame["repaid_loan_on_prev_car"].astype(str)
    return {
        "reference": reference,
        "analysis": analysis,
        "features": {
            "numeric": ["car_value", "debt_to_income_ratio", "driver_tenure", "loan_length"],
            "categorical": ["salary_range", "repaid_loan_on_prev_car", "size_of_downpayment"],
        },
        "chunk_size": chunk_size,
    }


# --------------------------------------------------------------------------------------------
# The tools
# --------------------------------------------------------------------------------------------


def nannyml_cbpe(data: dict[str, Any]) -> pd.DataFrame:
    """One row per chunk: start/end index, and per metric the estimate and NannyML's sampling error and band."""
    import nannyml as nml

    estimator = nml.CBPE(
        y_pred_proba="y_pred_proba",
        y_pred="y_pred",
        y_true="repaid",
        metrics=list(METRICS),
        chunk_size=data["chunk_size"],
        problem_type="classification_binary",
    )
    analysis = data["analysis"].drop(columns=["repaid"])
    estimator.fit(data["reference"])
    result = estimator.estimate(analysis).filter(period="analysis").to_df()
    out = pd.DataFrame(
        {
            "start": result[("chunk", "start_index")].to_numpy(),
            "end": result[("chunk", "end_index")].to_numpy(),
        }
    )
    for metric in METRICS:
        out[f"{metric}_value"] = result[(metric, "value")].to_numpy()
        out[f"{metric}_se"] = result[(metric, "sampling_error")].to_numpy()
        out[f"{metric}_low"] = result[(metric, "lower_confidence_boundary")].to_numpy()
        out[f"{metric}_high"] = result[(metric, "upper_confidence_boundary")].to_numpy()
    return out


def driftline_model(data: dict[str, Any]) -> Any:
    entry = {
        "name": "bench",
        "table": "bench",
        "timestamp_column": "ts",
        "task": "classification",
        "features": data["features"],
        "prediction_column": "y_pred",
        "score_column": "y_pred_proba",
        "label_column": "repaid",
        "reference": {"start": "2026-01-01T00:00:00Z", "end": "2026-01-02T00:00:00Z"},
    }
    return parse_config({"models": [entry]}).models[0]


def driftline_estimates(data: dict[str, Any], chunks: pd.DataFrame) -> tuple[pd.DataFrame, dict[str, Any], float]:
    model = driftline_model(data)
    began = time.perf_counter()
    reference = fit_reference(data["reference"].reset_index(drop=True), model)
    rows = []
    for start, end in zip(chunks["start"], chunks["end"], strict=True):
        chunk = data["analysis"].iloc[int(start) : int(end) + 1].copy()
        chunk["repaid"] = np.nan  # withheld
        results = {
            r.metric: r for r in estimate_results(model, WINDOW, reference, profile_window(chunk, reference, model))
        }
        row: dict[str, Any] = {}
        for metric in METRICS:
            r = results[f"estimated_{metric}"]
            row[f"{metric}_value"] = r.value
            row[f"{metric}_se"] = r.details.get("standard_error")
            row[f"{metric}_calibration_se"] = r.details.get("calibration_error")
            band = r.details.get("band") or [np.nan, np.nan]
            row[f"{metric}_low"], row[f"{metric}_high"] = band
        rows.append(row)
    elapsed = time.perf_counter() - began
    return pd.DataFrame(rows), reference.fitted.estimator["calibration"], elapsed


def realised(data: dict[str, Any], chunks: pd.DataFrame) -> pd.DataFrame:
    rows = []
    for start, end in zip(chunks["start"], chunks["end"], strict=True):
        chunk = data["analysis"].iloc[int(start) : int(end) + 1]
        y, s, p = chunk["repaid"].to_numpy(), chunk["y_pred_proba"].to_numpy(), chunk["y_pred"].to_numpy()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            rows.append(
                {
                    "roc_auc": skm.roc_auc_score(y, s),
                    "accuracy": skm.accuracy_score(y, p),
                    "precision": skm.precision_score(y, p, zero_division=np.nan),
                    "recall": skm.recall_score(y, p, zero_division=np.nan),
                    "f1": skm.f1_score(y, p, zero_division=np.nan),
                }
            )
    return pd.DataFrame(rows)


def score(estimates: pd.DataFrame, truth: pd.DataFrame, metric: str, z: float | None = None) -> tuple[float, float]:
    """(MAE, coverage) of one tool on one metric; ``z`` replaces the tool's band by estimate +- z SE."""
    value, real = estimates[f"{metric}_value"].to_numpy(float), truth[metric].to_numpy(float)
    if z is None:
        low, high = estimates[f"{metric}_low"].to_numpy(float), estimates[f"{metric}_high"].to_numpy(float)
    else:
        se = estimates[f"{metric}_se"].to_numpy(float)
        low, high = value - z * se, value + z * se
    keep = np.isfinite(value) & np.isfinite(real)
    inside = (real[keep] >= low[keep]) & (real[keep] <= high[keep])
    return float(np.mean(np.abs(value[keep] - real[keep]))), float(np.mean(inside))


def run(name: str, data: dict[str, Any]) -> tuple[list[str], dict[str, Any]]:
    began = time.perf_counter()
    nanny = nannyml_cbpe(data)
    nanny_seconds = time.perf_counter() - began
    ours, calibration, ours_seconds = driftline_estimates(data, nanny)
    truth = realised(data, nanny)
    lines = []
    for metric in METRICS:
        d_mae, d_cov = score(ours, truth, metric)
        _, d_cov_sampling = score(ours, truth, metric, Z95)  # the band before #17's fix: sampling error only
        n_mae, n_cov = score(nanny, truth, metric)
        _, n_cov95 = score(nanny, truth, metric, Z95)
        spread = float(truth[metric].max() - truth[metric].min())
        lines.append(
            f"| {name} | {metric} | {spread:.3f} | {d_mae:.4f} | {d_cov_sampling:.0%} | {d_cov:.0%} "
            f"| {n_mae:.4f} | {n_cov:.0%} | {n_cov95:.0%} |"
        )
    facts = {
        "reference_rows": len(data["reference"]),
        "analysis_rows": len(data["analysis"]),
        "chunks": len(nanny),
        "chunk_rows": data["chunk_size"],
        "calibration": calibration,
        # Driftline's two errors, mean over the chunks: the window's sampling error and the calibration's.
        "mean_standard_error": {
            m: [round(float(ours[f"{m}_se"].mean()), 4), round(float(ours[f"{m}_calibration_se"].mean()), 4)]
            for m in ("precision", "recall")
        },
        "seconds": {"driftline": round(ours_seconds, 2), "nannyml": round(nanny_seconds, 2)},
    }
    return lines, facts


def diagnose_car_loan(chunk_size: int = 5_000) -> list[str]:
    """Why the car-loan precision/recall bands miss: the error of three estimates of each chunk's
    precision and recall, on the unshifted first half of the analysis and on its shifted second half.

    * Driftline's estimate (isotonic calibration fitted on the reference's labels);
    * the same estimate with the calibration fitted on the *analysis's* own labels (a yardstick no
      monitor has: it tells whether ``P(label | score)`` itself moved);
    * a gradient-boosted model of ``P(label | features, score)`` fitted on the reference, the sum of
      its probabilities over the chunk's rows (what any reference-fitted, feature-aware estimator can do).
    """
    import nannyml as nml
    from sklearn.ensemble import HistGradientBoostingClassifier

    from driftline.stats.estimation import estimate_classification, fit_isotonic, plateau_counts

    reference, analysis, targets = nml.load_synthetic_car_loan_dataset()
    analysis = analysis.merge(targets, on="id")
    columns = [*car_loan(chunk_size)["features"]["numeric"], *car_loan(chunk_size)["features"]["categorical"]]

    def inputs(frame: pd.DataFrame) -> pd.DataFrame:
        out = frame[[*columns, "y_pred_proba"]].copy()
        for column in ("salary_range", "repaid_loan_on_prev_car", "size_of_downpayment"):
            out[column] = out[column].astype(str).astype("category").cat.codes
        return out

    from_reference = fit_isotonic(reference["y_pred_proba"], reference["repaid"])
    from_analysis = fit_isotonic(analysis["y_pred_proba"], analysis["repaid"])
    boosted = HistGradientBoostingClassifier(random_state=0).fit(inputs(reference), reference["repaid"])
    boosted_probability = boosted.predict_proba(inputs(analysis))[:, 1]
    errors: dict[tuple[str, str, int], list[float]] = {}
    half = len(analysis) // 2
    for start in range(0, len(analysis), chunk_size):
        chunk = analysis.iloc[start : start + chunk_size]
        y, predicted = chunk["repaid"].to_numpy(), chunk["y_pred"].to_numpy().astype(float)
        truth = {"precision": skm.precision_score(y, predicted), "recall": skm.recall_score(y, predicted)}
        p = boosted_probability[start : start + chunk_size]
        tp = float(p[predicted == 1].sum())
        estimates = {
            "gradient-boosted P(label given features and score), fitted on the reference": {
                "precision": tp / (predicted == 1).sum(),
                "recall": tp / p.sum(),
            }
        }
        for label, calibrator in (
            ("Driftline (calibration on the reference)", from_reference),
            ("calibration on the analysis labels (yardstick)", from_analysis),
        ):
            counts = plateau_counts(
                calibrator.plateau(chunk["y_pred_proba"].to_numpy()), predicted, calibrator.plateaus
            )
            found = estimate_classification(calibrator.levels, counts)
            estimates[label] = {m: found[m].value for m in truth}
        for label, values in estimates.items():
            for metric, value in values.items():
                errors.setdefault((label, metric, int(start >= half)), []).append(value - truth[metric])
    lines = [
        f"| estimate ({chunk_size:,}-row chunks) | metric | mean error, unshifted half | mean error, shifted half "
        "| MAE, unshifted half | MAE, shifted half |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for label in dict.fromkeys(k[0] for k in errors):
        for metric in ("precision", "recall"):
            first, second = np.asarray(errors[(label, metric, 0)]), np.asarray(errors[(label, metric, 1)])
            lines.append(
                f"| {label} | {metric} | {first.mean():+.4f} | {second.mean():+.4f} "
                f"| {np.abs(first).mean():.4f} | {np.abs(second).mean():.4f} |"
            )
    return lines


# --------------------------------------------------------------------------------------------
# Regressors: Driftline's additive loss model against NannyML's DLE
# --------------------------------------------------------------------------------------------

REGRESSION_METRICS = ("mae", "rmse")


def car_price(chunk_size: int) -> dict[str, Any]:
    import nannyml as nml

    reference, analysis, targets = nml.load_synthetic_car_price_dataset()
    return {
        "reference": reference,
        "analysis": analysis.merge(targets, on="id"),
        "features": {
            "numeric": ["car_age", "km_driven", "price_new", "accident_count", "door_count"],
            "categorical": ["fuel", "transmission"],
        },
        "chunk_size": chunk_size,
    }


def nannyml_dle(data: dict[str, Any]) -> pd.DataFrame:
    import nannyml as nml

    features = [*data["features"]["numeric"], *data["features"]["categorical"]]
    estimator = nml.DLE(
        feature_column_names=features,
        y_pred="y_pred",
        y_true="y_true",
        metrics=list(REGRESSION_METRICS),
        chunk_size=data["chunk_size"],
        tune_hyperparameters=False,
    )
    estimator.fit(data["reference"])
    result = estimator.estimate(data["analysis"].drop(columns=["y_true"])).filter(period="analysis").to_df()
    out = pd.DataFrame(
        {"start": result[("chunk", "start_index")].to_numpy(), "end": result[("chunk", "end_index")].to_numpy()}
    )
    for metric in REGRESSION_METRICS:
        out[f"{metric}_value"] = result[(metric, "value")].to_numpy()
        out[f"{metric}_se"] = result[(metric, "sampling_error")].to_numpy()
        out[f"{metric}_low"] = result[(metric, "lower_confidence_boundary")].to_numpy()
        out[f"{metric}_high"] = result[(metric, "upper_confidence_boundary")].to_numpy()
    return out


def driftline_regression(data: dict[str, Any], chunks: pd.DataFrame) -> tuple[pd.DataFrame, float]:
    entry = {
        "name": "bench",
        "table": "bench",
        "timestamp_column": "ts",
        "task": "regression",
        "features": data["features"],
        "prediction_column": "y_pred",
        "label_column": "y_true",
        "reference": {"start": "2026-01-01T00:00:00Z", "end": "2026-01-02T00:00:00Z"},
    }
    model = parse_config({"models": [entry]}).models[0]
    began = time.perf_counter()
    frame = data["reference"].reset_index(drop=True)
    frame[RESIDUAL] = frame["y_true"] - frame["y_pred"]  # the flow's extraction adds the residual
    reference = fit_reference(frame, model)
    rows = []
    for start, end in zip(chunks["start"], chunks["end"], strict=True):
        chunk = data["analysis"].iloc[int(start) : int(end) + 1].copy()
        chunk["y_true"] = chunk[RESIDUAL] = np.nan  # withheld
        results = {
            r.metric: r for r in estimate_results(model, WINDOW, reference, profile_window(chunk, reference, model))
        }
        row: dict[str, Any] = {}
        for metric in REGRESSION_METRICS:
            r = results[f"estimated_{metric}"]
            row[f"{metric}_value"] = r.value
            row[f"{metric}_se"] = r.details.get("standard_error")
            row[f"{metric}_model_se"] = r.details.get("model_error")
            row[f"{metric}_low"], row[f"{metric}_high"] = r.details.get("band") or [np.nan, np.nan]
        rows.append(row)
    return pd.DataFrame(rows), time.perf_counter() - began


def run_regression(name: str, data: dict[str, Any]) -> tuple[list[str], dict[str, Any]]:
    began = time.perf_counter()
    nanny = nannyml_dle(data)
    nanny_seconds = time.perf_counter() - began
    ours, ours_seconds = driftline_regression(data, nanny)
    truth = []
    for start, end in zip(nanny["start"], nanny["end"], strict=True):
        chunk = data["analysis"].iloc[int(start) : int(end) + 1]
        error = chunk["y_true"].to_numpy() - chunk["y_pred"].to_numpy()
        truth.append({"mae": float(np.mean(np.abs(error))), "rmse": float(np.sqrt(np.mean(error**2)))})
    realised_frame = pd.DataFrame(truth)
    lines = []
    for metric in REGRESSION_METRICS:
        d_mae, d_cov = score(ours, realised_frame, metric)
        _, d_cov_sampling = score(ours, realised_frame, metric, Z95)  # the band before: sampling error only
        n_mae, n_cov = score(nanny, realised_frame, metric)
        _, n_cov95 = score(nanny, realised_frame, metric, Z95)
        level = float(realised_frame[metric].mean())
        spread = float(realised_frame[metric].max() - realised_frame[metric].min())
        lines.append(
            f"| {name} | {metric} | {level:,.0f} | {spread:,.0f} | {d_mae:,.1f} ({d_mae / level:.1%}) "
            f"| {d_cov_sampling:.0%} | {d_cov:.0%} "
            f"| {n_mae:,.1f} ({n_mae / level:.1%}) | {n_cov:.0%} | {n_cov95:.0%} |"
        )
    facts = {
        "reference_rows": len(data["reference"]),
        "analysis_rows": len(data["analysis"]),
        "chunks": len(nanny),
        "chunk_rows": data["chunk_size"],
        # Driftline's two errors, mean over the chunks: the window's sampling error and the loss model's.
        "mean_standard_error": {
            m: [round(float(ours[f"{m}_se"].mean()), 2), round(float(ours[f"{m}_model_se"].mean()), 2)]
            for m in REGRESSION_METRICS
        },
        "seconds": {"driftline": round(ours_seconds, 2), "nannyml": round(nanny_seconds, 2)},
    }
    return lines, facts


def false_alarms(windows: int = 200, rows: int = 300) -> list[str]:
    """Verdicts of the estimates on unchanged data: the share of windows flagged warning or alert."""
    from driftline.core.results import Status

    rng = np.random.default_rng(31)
    data = {"features": {"numeric": ["income", "debt"], "categorical": ["region"]}}
    model = driftline_model(data)
    reference = fit_reference(_loan(rng, 20_000), model)
    flagged: dict[str, int] = {}
    for _ in range(windows):
        chunk = _loan(rng, rows)
        chunk["repaid"] = np.nan
        for r in estimate_results(model, WINDOW, reference, profile_window(chunk, reference, model)):
            key = r.metric if r.feature is None else f"{r.metric} ({r.feature})"
            flagged[key] = flagged.get(key, 0) + (r.status in (Status.WARNING, Status.ALERT))
    lines = ["| estimated result | windows flagged (warning or alert) |", "|---|---:|"]
    lines += [f"| {key} | {count} of {windows} ({count / windows:.1%}) |" for key, count in flagged.items()]
    return lines


def feature_calibration_prototype(ridges: tuple[float, ...] = (30.0, 300.0, 3000.0)) -> list[str]:
    """The car-loan gap's candidate fixes, measured (not shipped; ``--car-loan-fixes``).

    1. A feature-aware calibration from what the fold already counts: the calibrated probability plus
       an additive correction per (feature segment, score group) — 20 score groups as the fold's
       segment cells, 10 reference-quantile segments per numeric feature, every category — fitted by
       ridge on the reference's residuals ``label - p(score)`` (``ridge`` in rows: the shrinkage
       towards the score-only calibration; 0 is Driftline's estimate). Additive in the probability, a
       window's expected confusion matrix needs only its per-segment counts. Per metric: MAE and the
       coverage of estimate +- 1.96 window sampling errors, at 5,000- and 1,000-row chunks.
    2. A misspecification term measured on the reference's own held-out split (calibrate on one time
       half, estimate the other's 5,000-row chunks): the error's spread beyond the sampling error.
    """
    import nannyml as nml
    from scipy import sparse
    from scipy.sparse.linalg import spsolve

    from driftline.stats.estimation import estimate_classification, fit_isotonic, plateau_counts

    reference, analysis, targets = nml.load_synthetic_car_loan_dataset()
    analysis = analysis.merge(targets, on="id")
    spec = car_loan(5_000)["features"]
    calibrator = fit_isotonic(reference["y_pred_proba"], reference["repaid"])
    rows = calibrator.rows.astype(float)
    group_of_bin = np.minimum(((np.cumsum(rows) - rows) / rows.sum() * 20).astype(int), 19)

    def design(frame: pd.DataFrame) -> Any:
        group = group_of_bin[calibrator.plateau(frame["y_pred_proba"].to_numpy())]
        columns, offset = [], 0
        for feature in spec["numeric"]:
            edges = np.unique(np.quantile(reference[feature], np.linspace(0, 1, 11)[1:-1]))
            columns.append(offset + np.searchsorted(edges, frame[feature].to_numpy(), side="right") * 20 + group)
            offset += (edges.size + 1) * 20
        for feature in spec["categorical"]:
            categories = pd.Index(reference[feature].astype(str).value_counts().index)
            columns.append(offset + categories.get_indexer(frame[feature].astype(str)).clip(0) * 20 + group)
            offset += categories.size * 20
        stacked = np.column_stack(columns)
        pointers = np.arange(0, stacked.size + 1, stacked.shape[1])
        return sparse.csr_matrix((np.ones(stacked.size), stacked.ravel(), pointers), shape=(len(frame), offset))

    reference_design, analysis_design = design(reference), design(analysis)
    residual = reference["repaid"].to_numpy() - calibrator.calibrate(reference["y_pred_proba"].to_numpy())
    base = calibrator.calibrate(analysis["y_pred_proba"].to_numpy())
    label, predicted = analysis["repaid"].to_numpy(), analysis["y_pred"].to_numpy().astype(int)
    scorers = {
        "accuracy": skm.accuracy_score,
        "precision": skm.precision_score,
        "recall": skm.recall_score,
        "f1": skm.f1_score,
    }
    lines = [
        "| estimate | chunk rows | " + " | ".join(f"{m} MAE | {m} coverage" for m in scorers) + " |",
        "|---|---:|" + "---:|" * (2 * len(scorers)),
    ]
    for ridge in (0.0, *ridges):
        probability = base
        if ridge > 0:
            system = (
                reference_design.T @ reference_design + ridge * sparse.identity(reference_design.shape[1])
            ).tocsc()
            probability = np.clip(base + analysis_design @ spsolve(system, reference_design.T @ residual), 0.0, 1.0)
        for size in (5_000, 1_000):
            errors: dict[str, list[float]] = {m: [] for m in scorers}
            inside: dict[str, list[bool]] = {m: [] for m in scorers}
            for start in range(0, len(analysis), size):
                chunk = slice(start, start + size)
                counts = np.zeros((2, predicted[chunk].size))
                counts[predicted[chunk], np.arange(predicted[chunk].size)] = 1
                found = estimate_classification(probability[chunk], counts)
                for metric, scorer in scorers.items():
                    gap = found[metric].value - scorer(label[chunk], predicted[chunk])
                    errors[metric].append(gap)
                    inside[metric].append(abs(gap) <= Z95 * found[metric].standard_error)
            name = (
                "Driftline (score-only calibration)" if ridge == 0 else f"+ segment x score correction, ridge {ridge:g}"
            )
            cells = " | ".join(f"{np.mean(np.abs(errors[m])):.4f} | {np.mean(inside[m]):.0%}" for m in scorers)
            lines.append(f"| {name} | {size:,} | {cells} |")
    half = len(reference) // 2
    halves = (reference.iloc[:half], reference.iloc[half:])
    held_out: dict[str, list[tuple[float, float]]] = {"precision": [], "recall": []}
    for fit_on, check_on in (halves, halves[::-1]):
        split = fit_isotonic(fit_on["y_pred_proba"], fit_on["repaid"])
        for start in range(0, len(check_on), 5_000):
            chunk = check_on.iloc[start : start + 5_000]
            y, p = chunk["repaid"].to_numpy(), chunk["y_pred"].to_numpy().astype(float)
            counts = plateau_counts(split.plateau(chunk["y_pred_proba"].to_numpy()), p, split.plateaus)
            found = estimate_classification(split.levels, counts)
            for metric in held_out:
                held_out[metric].append((found[metric].value - scorers[metric](y, p), found[metric].standard_error))
    lines += [
        "",
        "| reference held-out split, 5,000-row chunks | chunks | mean error | RMS error | mean window SE "
        "| spread beyond sampling |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for metric, pairs in held_out.items():
        gap, se = np.asarray([g for g, _ in pairs]), np.asarray([s for _, s in pairs])
        beyond = math.sqrt(max(float(np.mean(gap**2) - np.mean(se**2)), 0.0))
        lines.append(
            f"| {metric} | {gap.size} | {gap.mean():+.4f} | {math.sqrt(float(np.mean(gap**2))):.4f} "
            f"| {se.mean():.4f} | {beyond:.4f} |"
        )
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path)
    parser.add_argument(
        "--car-loan-fixes", action="store_true", help="only measure the car-loan gap's candidate fixes (not shipped)"
    )
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    os.environ.setdefault("NML_DISABLE_USAGE_LOGGING", "1")  # NannyML's telemetry: no network from a benchmark
    if args.car_loan_fixes:
        load_before = os.getloadavg()
        lines = feature_calibration_prototype()
        print("\n".join([*lines, "", f"Load average before: {load_before}, after: {os.getloadavg()}"]))
        return
    load_before = os.getloadavg()
    scenarios = {
        "(a) covariate shift": seeded("covariate"),
        "(b) concept drift": seeded("concept"),
        "(c) car loan, 5,000-row chunks": car_loan(5_000),
        "(c) car loan, 1,000-row chunks": car_loan(1_000),
    }
    header = [
        "| scenario | metric | realised range | Driftline MAE | Driftline coverage, sampling-only band (before) "
        "| Driftline coverage, 95% band with calibration error (after) | NannyML MAE "
        "| NannyML coverage (its +-3 SE band) | NannyML coverage (+-1.96 SE) |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    table, notes = list(header), []
    for name, data in scenarios.items():
        lines, facts = run(name, data)
        table += lines
        notes.append(f"- {name}: {facts}")
        print(name, facts, flush=True)
    diagnosis = diagnose_car_loan()
    regression = [
        "| data | metric | realised mean | realised range | Driftline MAE of the estimate | Driftline coverage, "
        "sampling-only band (before) | Driftline coverage, 95% band with the loss model's error (after) "
        "| NannyML DLE MAE of the estimate | NannyML coverage (its +-3 SE band) | NannyML coverage (+-1.96 SE) |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    regression_notes = []
    for name, data in {
        "car price, 6,000-row chunks": car_price(6_000),
        "car price, 1,000-row chunks": car_price(1_000),
    }.items():
        lines, facts = run_regression(name, data)
        regression += lines
        regression_notes.append(f"- {name}: {facts}")
        print(name, facts, flush=True)
    alarms = false_alarms()
    load_after = os.getloadavg()
    text = "\n".join(
        [
            *table,
            "",
            *notes,
            "",
            "Why car-loan precision and recall miss (estimate minus realised):",
            "",
            *diagnosis,
            "",
            "Regressors: Driftline's additive loss model against NannyML's DLE, NannyML's synthetic car-price data:",
            "",
            *regression,
            "",
            *regression_notes,
            "",
            "Unchanged data (reference 20,000 rows as in (a); 200 windows of 300 rows from the same distribution):",
            "",
            *alarms,
            "",
            f"Load average (1, 5, 15 min) before: {tuple(round(x, 2) for x in load_before)}, "
            f"after: {tuple(round(x, 2) for x in load_after)}; {os.cpu_count()} CPUs.",
        ]
    )
    print(text)
    if args.out:
        args.out.write_text(text + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
