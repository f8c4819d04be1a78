"""A window's profile computed inside PostgreSQL: only the counts leave the database (the bench's
``pushdown`` method in ``bench/window_scale.py``; the flow streams instead, faster at every size
measured, docs/scale.md).

``pushdown_window_profile`` returns what ``profile_window`` computes from the rows, without
reading them out: one scan groups every numeric feature's bin (``width_bucket`` on the reference's
edges) and every categorical feature's value (``GROUPING SETS``), a second sums nulls, infinities,
extremes and the shifted moments. Counts, nulls and extremes are exact; the moment sums agree up to
float rounding (PostgreSQL adds in another order).

Notes
-----
It applies only where SQL sees the values as pandas would (``pushdown_supported``): numeric features
stored as numbers, categorical ones stored as text or integers or floats (an integral float is its
integer's text, ``NaN`` is NULL, ``Infinity`` is ``inf``, as ``profile_categorical`` prints them).
A numeric feature stored as text (pandas coerces junk to NaN, SQL would raise) or a categorical
boolean or date column falls back to streaming the rows. Identifiers reach SQL through SQLAlchemy's
quoting; the bin edges are bound as ``float8[]`` parameters.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import Engine

from driftline.config.monitors import RESIDUAL, ModelConfig
from driftline.core.window import Window
from driftline.stats.model_profile import ModelProfile
from driftline.stats.profile import CategoricalProfile, FeatureProfile, NumericProfile, _capped
from driftline.tasks.extract import ColumnKinds, column_types, window_statement

FLOAT8 = postgresql.DOUBLE_PRECISION()
#: PostgreSQL's GROUPING() takes at most 31 arguments: larger models group in several scans.
_GROUPS_PER_SCAN = 31
_NAN = sa.literal_column("'NaN'::float8")
_POS_INF = sa.literal_column("'Infinity'::float8")
_NEG_INF = sa.literal_column("'-Infinity'::float8")
_EXACT_INTEGERS = float(2**53)


def _source_kind(name: str, model: ModelConfig, kinds: ColumnKinds) -> str | None:
    if name == RESIDUAL:
        label, prediction = model.label_field, model.prediction_column
        both = (kinds.get(label or ""), kinds.get(prediction))
        return "float" if all(k in ("integer", "float") for k in both) else None
    return kinds.get(name)


def pushdown_supported(model: ModelConfig, reference: ModelProfile, kinds: ColumnKinds) -> bool:
    """Whether every profiled column can be computed in SQL exactly as pandas would."""
    for name, profile in reference.features.items():
        kind = _source_kind(name, model, kinds)
        if isinstance(profile, NumericProfile) and kind not in ("integer", "float"):
            return False
        if isinstance(profile, CategoricalProfile) and kind not in ("integer", "float", "text"):
            return False
    return True


def _value(source: sa.Subquery, name: str, model: ModelConfig) -> sa.ColumnElement[Any]:
    if name == RESIDUAL:
        label = model.label_field or ""
        return sa.cast(source.c[label], FLOAT8) - sa.cast(source.c[model.prediction_column], FLOAT8)
    return source.c[name]


def _finite(x: sa.ColumnElement[Any]) -> sa.ColumnElement[bool]:
    return sa.and_(x.is_not(None), x.not_in([_NAN, _POS_INF, _NEG_INF]))


def _bucket(x: sa.ColumnElement[Any], profile: NumericProfile, index: int) -> sa.ColumnElement[Any]:
    """The index ``_bin_counts`` gives a value: ``searchsorted(edges, x, 'right')`` is ``width_bucket``;
    the reference maximum joins the last closed bin; non-finite values get no bin."""
    edges = profile.edges
    if edges.size == 0:
        return sa.case((_finite(x), sa.literal(0)), else_=sa.null())
    bound = sa.bindparam(f"edges_{index}", [float(e) for e in edges], type_=postgresql.ARRAY(FLOAT8))
    return sa.case(
        (sa.not_(_finite(x)), sa.null()),
        (x == sa.cast(sa.literal(float(edges[-1])), FLOAT8), sa.literal(len(edges) - 1)),
        else_=sa.func.width_bucket(x, bound),
    )


def _category_text(x: sa.ColumnElement[Any], kind: str) -> sa.ColumnElement[Any]:
    """The text ``profile_categorical`` counts a value under (NULL for what it counts as null)."""
    if kind == "text":
        return x
    if kind == "integer":
        return sa.cast(x, sa.Text)
    value = sa.cast(x, FLOAT8)
    return sa.case(
        (value == _NAN, sa.null()),
        (value == _POS_INF, sa.literal("inf")),
        (value == _NEG_INF, sa.literal("-inf")),
        (
            sa.and_(value == sa.func.trunc(value), sa.func.abs(value) < _EXACT_INTEGERS),
            sa.cast(sa.cast(value, sa.BigInteger), sa.Text),
        ),
        else_=sa.cast(value, sa.Text),
    )


def pushdown_window_profile(
    engine: Engine, model: ModelConfig, window: Window, reference: ModelProfile
) -> ModelProfile | None:
    """The window's profile on the reference's bins, computed by PostgreSQL; ``None`` where
    ``pushdown_supported`` says SQL would not see the values as pandas does (stream instead)."""
    kinds = column_types(engine, model)
    if not pushdown_supported(model, reference, kinds):
        return None
    source = window_statement(model, window.start, window.end).subquery("window_rows")
    numeric = {n: p for n, p in reference.features.items() if isinstance(p, NumericProfile)}
    categorical = [n for n, p in reference.features.items() if isinstance(p, CategoricalProfile)]

    as_float = {name: sa.cast(_value(source, name, model), FLOAT8) for name in numeric}

    # Scan 1: the row count, and per numeric column its nulls, infinities, extremes and moments.
    totals: list[sa.ColumnElement[Any]] = [sa.func.count().label("rows")]
    for i, (name, profile) in enumerate(numeric.items()):
        x = as_float[name]
        finite = _finite(x)
        centred = x - sa.cast(sa.literal(float(profile.shift)), FLOAT8)
        totals += [
            sa.func.count().filter(sa.or_(x.is_(None), x == _NAN)).label(f"nulls_{i}"),
            sa.func.count().filter(x == _POS_INF).label(f"pos_inf_{i}"),
            sa.func.count().filter(x == _NEG_INF).label(f"neg_inf_{i}"),
            sa.func.min(x).filter(finite).label(f"min_{i}"),
            sa.func.max(x).filter(finite).label(f"max_{i}"),
            sa.func.sum(centred).filter(finite).label(f"sum_{i}"),
            sa.func.sum(centred * centred).filter(finite).label(f"sumsq_{i}"),
        ]

    # Scan 2 (more for models of over 31 profiled columns): one GROUPING SET per column.
    keys: list[tuple[str, sa.ColumnElement[Any]]] = []
    for i, (name, profile) in enumerate(numeric.items()):
        keys.append((name, _bucket(as_float[name], profile, i)))
    for name in categorical:
        kind = _source_kind(name, model, kinds) or "text"
        keys.append((name, _category_text(_value(source, name, model), kind)))

    with engine.connect() as connection:
        # A `timestamp` (no time zone) column holds UTC wall time: bound the window in UTC (this
        # transaction only, as the streamed read does).
        connection.execute(sa.text("SET LOCAL TIME ZONE 'UTC'"))
        row = connection.execute(sa.select(*totals)).one()._mapping
        grouped: dict[str, dict[Any, int]] = {name: {} for name, _ in keys}
        for start in range(0, len(keys), _GROUPS_PER_SCAN):
            part = keys[start : start + _GROUPS_PER_SCAN]
            inner = sa.select(*(expr.label(f"k{j}") for j, (_, expr) in enumerate(part))).subquery("keys")
            columns = [inner.c[f"k{j}"] for j in range(len(part))]
            statement = sa.select(
                sa.func.grouping(*columns).label("grouped_out"), *columns, sa.func.count().label("n")
            ).group_by(sa.func.grouping_sets(*(sa.tuple_(c) for c in columns)))
            for result in connection.execute(statement):
                # GROUPING() sets a bit for each column grouped out: the one clear bit names the set.
                mask = int(result.grouped_out)
                for j, (name, _) in enumerate(part):
                    if not mask & (1 << (len(part) - 1 - j)):
                        grouped[name][result[j + 1]] = int(result.n)
                        break

    features: dict[str, FeatureProfile] = {}
    for i, (name, profile) in enumerate(numeric.items()):
        bins = grouped[name]
        size = len(profile.edges) + 1 if profile.edges.size else 1
        counts = np.zeros(size, dtype=np.int64)
        for index, count in bins.items():
            if index is not None:
                counts[int(index)] += count
        features[name] = NumericProfile(
            edges=profile.edges,
            groups=profile.groups if len(profile.groups) == size else np.zeros(size, np.int64),
            counts=counts,
            nulls=int(row[f"nulls_{i}"]),
            pos_inf=int(row[f"pos_inf_{i}"]),
            neg_inf=int(row[f"neg_inf_{i}"]),
            minimum=_or_nan(row[f"min_{i}"]),
            maximum=_or_nan(row[f"max_{i}"]),
            total=float(row[f"sum_{i}"] or 0.0),
            total_sq=float(row[f"sumsq_{i}"] or 0.0),
            shift=profile.shift,
        )
    for name in categorical:
        values = grouped[name]
        nulls = values.pop(None, 0)
        features[name] = _capped({str(k): v for k, v in values.items()}, nulls, 0)
    return ModelProfile(int(row["rows"]), features)


def _or_nan(value: Any) -> float:
    return float("nan") if value is None else float(value)
