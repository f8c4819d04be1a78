"""Great Expectations expectations evaluated on a streamed window, from mergeable tallies.

The suite stays GX's (``checks.completeness.plan_expectations`` and the user's
``quality.expectations``, validated by GX's own classes when the config loads); what changes is
where it is evaluated. Instead of handing GX the whole window as one DataFrame, each block of the
window is folded into one small :class:`Tally` per expectation (counts, the first unexpected
values, extremes, sums), tallies merge by addition, and the merged tally is finished into the
result GX would have given on the whole frame: the same ``success``, ``element_count``,
``unexpected_count``, ``missing_count``, percentages, ``partial_unexpected_list`` (row order) and
``observed_value``. ``tests/checks/test_streamed_completeness.py`` checks that equality against
GX's own validation of the whole frame over the fault cases.

Why tallies and not GX per block: GX's fixed cost per validation is ~0.3 s for the default suite
(building the metric graph), so validating each 20,000-row block of a 1M-row window would cost
~15 s; the tallies cost a few vectorised pandas calls per block (``bench/gx_timing.py``,
``docs/completeness.md``). Running no GX at all per window also removes GX's thread-safety
problems from the hourly run (the pyparsing ``push_first() missing 'toks'`` race between two
models validating at once).

Each condition below is GX 1.24's pandas condition, applied to a block (GX's own code is written
for a whole-frame execution engine and is not callable on a block):

* null / not-null: ``isnull()`` over all rows (GX does not drop nulls for these two);
* in set / not in set: ``isin(value_set)`` on the non-null values;
* between: vectorised comparisons for int/float/datetime columns, otherwise GX's per-value rule
  (a text value against a numeric bound raises ``TypeError``, so the expectation is ``unknown``);
* regex / not regex: ``astype(str).str.contains(regex)`` on the non-null values;
* unique: ``duplicated(keep=False)`` on the non-null values of the *whole* window, so the tally keeps
  that one column's non-null values (8 bytes a row for an integer id), not the window;
* min / max / sum / mean: pandas' skip-NaN reductions per block, merged (a mean is a sum over a
  count, so it can differ from pandas' single pass in the last bits);
* row count, column exists: counted / looked up.

An expectation type outside :data:`STREAMED_EXPECTATIONS` is refused when the config loads
(``driftline validate`` names it and lists the supported ones). Pure: pandas and numpy, no GX.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

#: The expectation types evaluated on a streamed window: each one's result is derived from tallies that
#: merge block by block and equals GX's validation of the whole window. Any other type would need the
#: window's rows whole (a median, a quantile, a KL divergence, ...) and is refused when the config loads
#: (``driftline.config.expectations``).
STREAMED_EXPECTATIONS = (
    "expect_column_to_exist",
    "expect_table_row_count_to_be_between",
    "expect_table_row_count_to_equal",
    "expect_column_values_to_not_be_null",
    "expect_column_values_to_be_null",
    "expect_column_values_to_be_in_set",
    "expect_column_values_to_not_be_in_set",
    "expect_column_values_to_be_between",
    "expect_column_values_to_match_regex",
    "expect_column_values_to_not_match_regex",
    "expect_column_values_to_be_unique",
    "expect_column_min_to_be_between",
    "expect_column_max_to_be_between",
    "expect_column_sum_to_be_between",
    "expect_column_mean_to_be_between",
)

#: Unexpected values kept per expectation (GX's ``partial_unexpected_count`` in Driftline's format).
PARTIAL_COUNT = 5

#: Map expectations that count nulls as unexpected (or expected) themselves: GX keeps null rows for them.
_NULL_MAPS = {"expect_column_values_to_not_be_null", "expect_column_values_to_be_null"}
#: Map expectations evaluated on the non-null values (GX drops null rows first).
_VALUE_MAPS = {
    "expect_column_values_to_be_in_set",
    "expect_column_values_to_not_be_in_set",
    "expect_column_values_to_be_between",
    "expect_column_values_to_match_regex",
    "expect_column_values_to_not_match_regex",
    "expect_column_values_to_be_unique",
}
_AGGREGATES = {
    "expect_column_min_to_be_between": "min",
    "expect_column_max_to_be_between": "max",
    "expect_column_sum_to_be_between": "sum",
    "expect_column_mean_to_be_between": "mean",
}
_BETWEEN_TYPE_ERROR = "Column values, min_value, and max_value must either be None or of the same type."

assert _NULL_MAPS | _VALUE_MAPS | set(_AGGREGATES) | {
    "expect_column_to_exist",
    "expect_table_row_count_to_be_between",
    "expect_table_row_count_to_equal",
} == set(STREAMED_EXPECTATIONS), "every streamed type needs its fold"


@dataclass
class StreamedResult:
    """What GX's ``ExpectationValidationResult`` carries and Driftline reads: success, result, error."""

    success: bool
    result: dict[str, Any]
    exception_info: dict[str, Any] | None = None


@dataclass
class Tally:
    """One expectation's mergeable partial state over the blocks folded so far.

    ``rows``: rows seen; ``missing``: null rows among them; ``unexpected``: rows failing the
    condition; ``partial``: the first :data:`PARTIAL_COUNT` unexpected values in row order;
    ``low``/``high``/``total``/``count``: a column's non-null extremes, sum and count; ``values``:
    the non-null values per block (only for uniqueness); ``columns``: the block's column names
    (column-exists); ``error``: the first error, after which the expectation is ``unknown``.
    """

    rows: int = 0
    missing: int = 0
    unexpected: int = 0
    partial: list[Any] = field(default_factory=list)
    low: Any = None
    high: Any = None
    total: Any = 0
    count: int = 0
    values: list[pd.Series] = field(default_factory=list)
    columns: list[str] | None = None
    error: str | None = None

    def merge(self, later: Tally) -> Tally:
        """The tally of this one's rows followed by ``later``'s (row order matters for ``partial``)."""
        return Tally(
            rows=self.rows + later.rows,
            missing=self.missing + later.missing,
            unexpected=self.unexpected + later.unexpected,
            partial=(self.partial + later.partial)[:PARTIAL_COUNT],
            low=_extreme(self.low, later.low, min),
            high=_extreme(self.high, later.high, max),
            total=self.total + later.total,
            count=self.count + later.count,
            values=self.values + later.values,
            columns=self.columns if self.columns is not None else later.columns,
            error=self.error or later.error,
        )


def _extreme(a: Any, b: Any, pick: Any) -> Any:
    if a is None:
        return b
    if b is None:
        return a
    return pick(a, b)


def _is_null(value: Any) -> bool:
    try:
        return bool(pd.isna(value))
    except (TypeError, ValueError):
        return False


def _first(values: pd.Series) -> list[Any]:
    return values.iloc[:PARTIAL_COUNT].tolist()


def _between_condition(column: pd.Series, kwargs: Mapping[str, Any]) -> pd.Series:
    """GX's ``column_values.between`` (pandas) on the non-null values: True where expected."""
    low, high = kwargs.get("min_value"), kwargs.get("max_value")
    strict_min, strict_max = kwargs.get("strict_min"), kwargs.get("strict_max")
    if low is None and high is None:
        raise ValueError("min_value and max_value cannot both be None")
    if low is not None and high is not None and low > high:
        raise ValueError("min_value cannot be greater than max_value")
    if column.dtype in [int, float] or isinstance(column.dtype, pd.DatetimeTZDtype) or (
        pd.api.types.is_datetime64_ns_dtype(column.dtype)
    ):
        if isinstance(column.dtype, pd.DatetimeTZDtype) or pd.api.types.is_datetime64_ns_dtype(column.dtype):
            # GX parses text bounds with dateutil; pandas' parser reads the ISO 8601 a config holds alike.
            low = pd.Timestamp(low) if isinstance(low, str) else low
            high = pd.Timestamp(high) if isinstance(high, str) else high
        above = True if low is None else (column > low if strict_min else column >= low)
        below = True if high is None else (column < high if strict_max else column <= high)
        if low is None:
            return below  # type: ignore[return-value]
        if high is None:
            return above  # type: ignore[return-value]
        return above & below

    def is_between(value: Any) -> bool:
        for bound in (low, high):
            if bound is not None and isinstance(value, str) != isinstance(bound, str):
                raise TypeError(_BETWEEN_TYPE_ERROR)
        ok = True
        if low is not None:
            ok = ok and (value > low if strict_min else value >= low)
        if high is not None:
            ok = ok and (value < high if strict_max else value <= high)
        return bool(ok)

    return column.map(is_between)


#: Expectations with a numpy path for int64/float64 columns (same results, without pandas' per-call cost).
_NUMPY_KINDS = _NULL_MAPS | set(_AGGREGATES) | {
    "expect_column_values_to_be_in_set",
    "expect_column_values_to_not_be_in_set",
    "expect_column_values_to_be_between",
}


def _numeric(column: pd.Series, cache: dict[str, Any]) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """``(values, nulls, non-null values)`` of an int64/float64 column as numpy arrays, once per block."""
    if column.dtype not in (np.dtype("float64"), np.dtype("int64")):
        return None
    key = str(column.name)
    if key not in cache:
        values = column.to_numpy()
        nulls = np.isnan(values) if values.dtype.kind == "f" else np.zeros(len(values), dtype=bool)
        cache[key] = (values, nulls, values[~nulls] if nulls.any() else values)
    return cache[key]  # type: ignore[no-any-return]


def _numbers(value_set: Any) -> np.ndarray | None:
    """A value set as a float array when every member is a plain number (else the pandas path decides)."""
    if value_set is None or any(isinstance(v, bool) or not isinstance(v, (int, float)) for v in value_set):
        return None
    return np.asarray(list(value_set), dtype=float)


def _fold_numpy(kind: str, kwargs: Mapping[str, Any], arrays: tuple[np.ndarray, ...], tally: Tally) -> bool:
    """GX's pandas conditions on numpy arrays of an int64/float64 column; False: not handled here."""
    values, nulls, present = arrays
    if kind in _NULL_MAPS:
        unexpected = nulls if kind == "expect_column_values_to_not_be_null" else ~nulls
        tally.unexpected = int(np.count_nonzero(unexpected))
        tally.partial = values[unexpected][:PARTIAL_COUNT].tolist() if tally.unexpected else []
        return True
    tally.missing = len(values) - len(present)
    if kind in _AGGREGATES:
        if len(present):
            tally.low, tally.high = present.min(), present.max()
            tally.total, tally.count = present.sum(), len(present)
        return True
    if kind == "expect_column_values_to_be_between":
        low, high = kwargs.get("min_value"), kwargs.get("max_value")
        if not all(b is None or (isinstance(b, (int, float)) and not isinstance(b, bool)) for b in (low, high)):
            return False
        if low is None and high is None:
            raise ValueError("min_value and max_value cannot both be None")
        if low is not None and high is not None and low > high:
            raise ValueError("min_value cannot be greater than max_value")
        expected = np.ones(len(present), dtype=bool)
        if low is not None:
            expected &= present > low if kwargs.get("strict_min") else present >= low
        if high is not None:
            expected &= present < high if kwargs.get("strict_max") else present <= high
    else:
        value_set = kwargs.get("value_set")
        if kind == "expect_column_values_to_be_in_set" and value_set is None:
            expected = np.ones(len(present), dtype=bool)
        else:
            numbers = _numbers(value_set or [])
            if numbers is None:
                return False
            inside = np.isin(present, numbers)
            expected = inside if kind == "expect_column_values_to_be_in_set" else ~inside
    failing = ~expected
    tally.unexpected = int(np.count_nonzero(failing))
    tally.partial = present[failing][:PARTIAL_COUNT].tolist() if tally.unexpected else []
    return True


def fold_block(
    kind: str, kwargs: Mapping[str, Any], block: pd.DataFrame, cache: dict[str, Any] | None = None
) -> Tally:
    """The tally of one expectation (``kind`` with resolved ``kwargs``) on one block of rows.

    ``cache`` is shared by the expectations of one block, so each numeric column is converted once.
    """
    tally = Tally(rows=len(block))
    cache = {} if cache is None else cache
    try:
        if kind == "expect_column_to_exist":
            tally.columns = [str(c) for c in block.columns]
            return tally
        if kind in ("expect_table_row_count_to_be_between", "expect_table_row_count_to_equal"):
            return tally
        name = kwargs["column"]
        if name not in block.columns:
            raise KeyError(f'The column "{name}" in BatchData does not exist.')
        column = block[name]
        if kind in _NUMPY_KINDS:
            arrays = _numeric(column, cache)
            if arrays is not None and _fold_numpy(kind, kwargs, arrays, tally):
                return tally
            tally.missing = 0
        nulls = column.isna()
        if kind in _NULL_MAPS:
            unexpected = nulls if kind == "expect_column_values_to_not_be_null" else ~nulls
            tally.unexpected = int(unexpected.sum())
            tally.partial = _first(column[unexpected]) if tally.unexpected else []
            return tally
        values = column[~nulls]
        tally.missing = len(column) - len(values)
        if kind in _VALUE_MAPS:
            if kind == "expect_column_values_to_be_unique":
                tally.values = [values]  # duplicates are judged on the whole window at the end
                return tally
            if kind == "expect_column_values_to_be_in_set":
                value_set = kwargs.get("value_set")
                expected = np.ones(len(values), dtype=bool) if value_set is None else values.isin(value_set)
            elif kind == "expect_column_values_to_not_be_in_set":
                expected = ~values.isin(kwargs.get("value_set") or [])
            elif kind == "expect_column_values_to_be_between":
                expected = _between_condition(values, kwargs)
            else:
                matches = values.astype(str).str.contains(kwargs["regex"])
                expected = matches if kind == "expect_column_values_to_match_regex" else ~matches
            failing = ~np.asarray(expected, dtype=bool)
            tally.unexpected = int(failing.sum())
            tally.partial = _first(values[failing]) if tally.unexpected else []
            return tally
        statistic = _AGGREGATES[kind]
        if statistic in ("sum", "mean") and not (
            pd.api.types.is_numeric_dtype(column.dtype) or pd.api.types.is_bool_dtype(column.dtype)
        ):
            # GX fails here too, even on no rows: pandas cannot average text, and a sum of text is text.
            raise TypeError(f"cannot take the {statistic} of {column.dtype} column {name!r}")
        if len(values):
            tally.low, tally.high = values.min(), values.max()
            if statistic in ("sum", "mean"):
                tally.total, tally.count = values.sum(), len(values)
        return tally
    except Exception as exc:  # the expectation becomes unknown, as GX's raised metric would make it
        tally.error = f"{type(exc).__name__}: {exc}"
        return tally


def _map_result(kind: str, kwargs: Mapping[str, Any], tally: Tally) -> StreamedResult:
    mostly = kwargs.get("mostly", 1.0)
    mostly = 1.0 if mostly is None else float(mostly)
    rows = tally.rows
    if kind in _NULL_MAPS:
        success = True if rows == 0 else (rows - tally.unexpected) / rows >= mostly
        return StreamedResult(bool(success), {
            "element_count": rows,
            "unexpected_count": tally.unexpected,
            "unexpected_percent": tally.unexpected / rows * 100 if rows else None,
            "partial_unexpected_list": tally.partial,
        })
    considered = rows - tally.missing
    success = True if considered == 0 else (float(considered) - tally.unexpected) / float(considered) >= mostly
    return StreamedResult(bool(success), {
        "element_count": rows,
        "unexpected_count": tally.unexpected,
        "unexpected_percent": tally.unexpected / considered * 100 if considered else None,
        "partial_unexpected_list": tally.partial,
        "missing_count": tally.missing,
        "missing_percent": tally.missing / rows * 100 if rows else None,
        "unexpected_percent_total": tally.unexpected / rows * 100 if rows else None,
        "unexpected_percent_nonmissing": tally.unexpected / considered * 100 if considered else None,
    })


def _between_success(value: Any, kwargs: Mapping[str, Any]) -> bool:
    """GX's ``_validate_metric_value_between``: no observed value fails; else the (strict) bounds."""
    low, high = kwargs.get("min_value"), kwargs.get("max_value")
    if isinstance(value, pd.Timestamp):
        low = pd.Timestamp(low) if isinstance(low, str) else low
        high = pd.Timestamp(high) if isinstance(high, str) else high
    above = True if low is None else (value > low if kwargs.get("strict_min") else value >= low)
    below = True if high is None else (value < high if kwargs.get("strict_max") else value <= high)
    return bool(above and below)


def finish(kind: str, kwargs: Mapping[str, Any], tally: Tally) -> StreamedResult:
    """GX's result for this expectation on all the rows folded into ``tally``."""
    if tally.error is not None:
        return StreamedResult(False, {}, {"raised_exception": True, "exception_message": tally.error})
    try:
        if kind == "expect_column_to_exist":
            columns = tally.columns or []
            exists = kwargs["column"] in columns
            index = kwargs.get("column_index")
            if exists and index is not None:
                exists = columns.index(kwargs["column"]) == index
            return StreamedResult(bool(exists), {})
        if kind == "expect_table_row_count_to_be_between":
            return StreamedResult(_between_success(tally.rows, kwargs), {"observed_value": tally.rows})
        if kind == "expect_table_row_count_to_equal":
            return StreamedResult(tally.rows == kwargs.get("value"), {"observed_value": tally.rows})
        if kind == "expect_column_values_to_be_unique":
            values = pd.concat(tally.values, ignore_index=True) if tally.values else pd.Series([], dtype=object)
            duplicated = values.duplicated(keep=False).to_numpy()
            tally = Tally(rows=tally.rows, missing=tally.missing, unexpected=int(duplicated.sum()),
                          partial=_first(values[duplicated]))
            return _map_result(kind, kwargs, tally)
        if kind in _NULL_MAPS or kind in _VALUE_MAPS:
            return _map_result(kind, kwargs, tally)
        statistic = _AGGREGATES[kind]
        if statistic == "min":
            observed = tally.low
        elif statistic == "max":
            observed = tally.high
        elif statistic == "sum":
            observed = tally.total
        else:
            observed = tally.total / tally.count if tally.count else None
        if observed is None or (not isinstance(observed, pd.Timestamp) and _is_null(observed)):
            return StreamedResult(False, {"observed_value": None})
        return StreamedResult(_between_success(observed, kwargs), {"observed_value": observed})
    except Exception as exc:
        message = f"{type(exc).__name__}: {exc}"
        return StreamedResult(False, {}, {"raised_exception": True, "exception_message": message})


@dataclass
class StreamedSuite:
    """The mergeable state of one suite over a window: one tally per expectation, in plan order.

    ``expectations`` are ``(type, resolved kwargs)`` pairs (window parameters already substituted).
    Fold blocks in row order (``fold``), or fold parts separately and ``merge`` them in row order;
    ``results()`` gives GX-shaped results, one per expectation, in the same order.
    """

    expectations: list[tuple[str, dict[str, Any]]]
    tallies: list[Tally] = field(default_factory=list)
    #: What the suite's owner needs to turn results into its records (the planner's inputs); not merged.
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.tallies:
            self.tallies = [Tally() for _ in self.expectations]

    def to_json(self) -> dict[str, Any]:
        """Not stored: a window's tallies (its id column among them) serve its own hour only; days and
        weeks have no completeness. The stored form is an empty suite."""
        return {"type": "completeness"}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> StreamedSuite:
        return cls([])

    def fold(self, block: pd.DataFrame) -> StreamedSuite:
        """Add one block of rows (later in the window than every block folded before)."""
        cache: dict[str, Any] = {}
        self.tallies = [
            tally.merge(fold_block(kind, kwargs, block, cache)) if tally.error is None else _counted(tally, block)
            for (kind, kwargs), tally in zip(self.expectations, self.tallies, strict=True)
        ]
        return self

    def merge(self, later: StreamedSuite) -> StreamedSuite:
        if [k for k, _ in self.expectations] != [k for k, _ in later.expectations]:
            raise ValueError("cannot merge the tallies of two different suites")
        return StreamedSuite(
            self.expectations, [a.merge(b) for a, b in zip(self.tallies, later.tallies, strict=True)], self.meta
        )

    def results(self) -> list[StreamedResult]:
        return [finish(kind, kwargs, tally) for (kind, kwargs), tally in zip(self.expectations, self.tallies,
                                                                             strict=True)]


def _counted(tally: Tally, block: pd.DataFrame) -> Tally:
    """An errored tally only keeps counting rows (its result is ``unknown`` anyway)."""
    tally.rows += len(block)
    return tally

