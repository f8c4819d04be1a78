"""Multivariate drift: can a classifier tell the window's rows from the reference's?

A domain classifier (scikit-learn's HistGradientBoostingClassifier, which takes NaN as it is) is
trained to separate a sample of reference rows from a sample of window rows; its cross-validated
ROC AUC is the statistic. 0.5 means indistinguishable; a change in the *joint* distribution (e.g.
a correlation that flips sign) raises it even when every feature's own distribution is unchanged.
Opt-in (``monitors: [{name: multivariate_drift}]``): it reads a sample of the rows of the reference
version the window is judged against (``resolve_reference``) from the log, or from the configured
table, query or file when the reference comes from elsewhere.

Parameters (``params``): ``sample_size`` (5,000 rows per side), ``warning`` (0.6), ``alert`` (0.7),
``alpha`` (0.01: the AUC must also be significantly above 0.5, Mann-Whitney null).
"""

from __future__ import annotations

import math
import threading
from typing import Any

import numpy as np
import pandas as pd
import sqlalchemy as sa
from scipy import stats as sps

from driftline.core.results import Kind, Result, Status
from driftline.stats.verdict import judge
from driftline.tasks.context import WindowContext
from driftline.tasks.extract import log_table

_SAMPLES: dict[tuple[Any, ...], pd.DataFrame] = {}
_LOCK = threading.Lock()


def reference_sample(context: WindowContext, size: int) -> pd.DataFrame:
    """A sample of the rows of the reference version the window is judged against (feature columns),
    read once per process and range.

    The same rows on every rerun (a hash of the timestamp orders them, not ``random()``), so a rerun
    of a window reproduces its verdict. Empty when the window has no usable reference (warm-up, too
    few rows: ``context.reference_reason``); the monitors then report ``unknown`` with that reason.
    """
    model = context.model
    if context.reference_reason is not None:
        return pd.DataFrame(columns=[c for c, _ in model.features.items()])
    version = context.reference_version
    if version is not None:
        start, end = version.start, version.end
    else:  # a context built without the resolver (e.g. a team's own flow): the configured range
        start, end = model.reference.span_for(context.window.start)
    features = tuple(c for c, _ in model.features.items())
    from_source = model.reference.source if version is None or version.configured else None
    key = (model.name, model.schema_and_table, features, start.isoformat(), end.isoformat(), size, from_source)
    with _LOCK:
        if key in _SAMPLES:
            return _SAMPLES[key]
    assert context.data_engine is not None
    if from_source is not None:  # a training table, query or file: it has no range of the log to sample
        frame = _source_sample(context, features, size)
        with _LOCK:
            _SAMPLES[key] = frame
        return frame
    table = log_table(model)
    ts = table.c[model.timestamp_column]
    columns = [table.c[c] for c in features]
    order = [sa.func.md5(sa.cast(ts, sa.Text)), ts]
    if model.id_column:
        order.append(table.c[model.id_column])
    statement = sa.select(*columns).where(ts >= start, ts < end).order_by(*order).limit(size)
    with context.data_engine.connect() as connection:
        result = connection.execute(statement)
        frame = pd.DataFrame(result.fetchall(), columns=list(result.keys()))
    with _LOCK:
        _SAMPLES[key] = frame
    return frame


def _source_sample(context: WindowContext, features: tuple[str, ...], size: int) -> pd.DataFrame:
    """``size`` rows of a reference read from a table, query or file, chosen by a hash of their values
    (not their order, which a table does not guarantee), so a rerun samples the same rows."""
    from driftline.tasks.reference_source import read_reference_rows

    assert context.data_engine is not None
    rows = read_reference_rows(context.data_engine, context.model, context.window)[list(features)]
    if len(rows) > size:
        order = np.argsort(pd.util.hash_pandas_object(rows, index=False).to_numpy(), kind="stable")
        rows = rows.iloc[np.sort(order[:size])]
    return rows.reset_index(drop=True)


def design_matrix(frame: pd.DataFrame, numeric: list[str], categorical: list[str]) -> np.ndarray:
    """Numeric columns as floats (NaN kept) and categorical ones one-hot (top 30 categories)."""
    parts = [frame[numeric].apply(pd.to_numeric, errors="coerce").to_numpy(dtype=float)] if numeric else []
    for column in categorical:
        values = frame[column].astype("string").fillna("__null__")
        top = values.value_counts().index[:30]
        parts.append(pd.get_dummies(values.where(values.isin(top), "__other__"), dtype=float).to_numpy())
    return np.hstack(parts) if parts else np.empty((len(frame), 0))


def domain_auc(
    reference: pd.DataFrame, window: pd.DataFrame, numeric: list[str], categorical: list[str], seed: int = 0
) -> tuple[float, int, int]:
    """Cross-validated (5-fold) ROC AUC of reference-vs-window; returns (auc, n_reference, n_window)."""
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import StratifiedKFold, cross_val_predict
    from threadpoolctl import threadpool_limits

    both = pd.concat([reference, window], ignore_index=True)
    x = design_matrix(both, numeric, categorical)
    y = np.r_[np.zeros(len(reference)), np.ones(len(window))]
    classifier = HistGradientBoostingClassifier(max_iter=100, learning_rate=0.1, max_leaf_nodes=15, random_state=seed)
    folds = StratifiedKFold(n_splits=5, shuffle=True, random_state=seed)
    # One OpenMP thread: the samples are small (two sides of 5,000 rows by default) and the monitor runs
    # beside other models' windows. With a thread per core on a busy 2-core machine the threads spin
    # waiting for each other: one window took 109 s with OpenMP's default and 13 s with one thread
    # (tests/flows/test_reference_sources.py, load average ~9).
    with threadpool_limits(limits=1, user_api="openmp"):
        scores = cross_val_predict(classifier, x, y, cv=folds, method="predict_proba")[:, 1]
    return float(roc_auc_score(y, scores)), len(reference), len(window)


def evaluate_multivariate(context: WindowContext) -> list[Result]:
    params: dict[str, Any] = context.parameters
    size = int(params.get("sample_size", 5000))
    warning, alert = float(params.get("warning", 0.6)), float(params.get("alert", 0.7))
    alpha = float(params.get("alpha", 0.01))
    model = context.model
    numeric, categorical = model.features.numeric, model.features.categorical
    base = {"warning": warning, "alert": alert, "alpha": alpha, "classifier": "HistGradientBoostingClassifier"}
    window = context.frame[[c for c, _ in model.features.items()]]
    if len(window) > size:
        window = window.sample(n=size, random_state=0)
    reference = reference_sample(context, size)
    if min(len(window), len(reference)) < 50:
        why = f"needs 50 rows per side; reference {len(reference)}, window {len(window)}"
        return [
            context.result(
                kind=Kind.DATA_DRIFT,
                metric="domain_classifier_auc",
                feature=None,
                value=None,
                threshold=alert,
                status=Status.UNKNOWN,
                details={**base, "reason": why},
            )
        ]
    auc, n_ref, n_win = domain_auc(reference, window, numeric, categorical)
    # Mann-Whitney null: AUC ~ N(0.5, (n1 + n2 + 1) / (12 n1 n2)).
    se0 = math.sqrt((n_ref + n_win + 1) / (12 * n_ref * n_win))
    pvalue = float(sps.norm.sf((auc - 0.5) / se0))
    status = judge(auc, warning, alert, pvalue, alpha)
    return [
        context.result(
            kind=Kind.DATA_DRIFT,
            metric="domain_classifier_auc",
            feature=None,
            value=auc,
            threshold=alert,
            status=status,
            details={**base, "p_value": pvalue, "reference_rows": n_ref, "window_rows": n_win},
        )
    ]
