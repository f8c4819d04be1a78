"""Validation of user-written Great Expectations expectations (imported lazily: GX is slow to import).

``validate_expectation(type, kwargs)`` is what ``monitors.yaml``'s ``quality.expectations`` entries
go through when the config loads, so a typo fails ``driftline validate`` instead of every hourly run:

``monitors.yaml: model 'loan': quality.expectations.0: unknown expectation type
'expect_column_values_to_be_betwen'; did you mean expect_column_values_to_be_between?``
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Mapping, Sequence
from typing import Any

from driftline.stats.expectations import STREAMED_EXPECTATIONS

#: GX fields Driftline sets itself; a user may not pass them in ``kwargs``.
RESERVED_ARGUMENTS = {
    "id": "GX assigns it",
    "batch_id": "Driftline chooses the batch",
    "rendered_content": "GX renders it",
    "result_format": "Driftline chooses the result format",
    "catch_exceptions": "Driftline always catches exceptions (a failing expectation becomes 'unknown')",
    "windows": "GX Cloud windows are not supported",
    "severity": "set 'severity' (warning or alert) on the entry itself, next to 'type', not in 'kwargs'",
}

#: Driftline validates each window's rows in memory, with GX's pandas execution engine.
EXECUTION_ENGINE = "PandasExecutionEngine"

#: GX arguments the streamed evaluation does not apply (it would silently ignore them).
UNSTREAMED_ARGUMENTS = {
    "row_condition": "row conditions are not applied to the streamed window",
    "condition_parser": "row conditions are not applied to the streamed window",
}


def _registry() -> dict[str, type]:
    """Every expectation class GX ships, by snake_case type."""
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    from great_expectations.expectations import registry

    registry.register_core_expectations()
    return dict(registry._registered_expectations)


def expectation_class(expectation_type: str) -> type:
    """The GX class of a snake_case expectation type; ``ValueError`` (with close matches) if unknown."""
    known = _registry()
    cls = known.get(expectation_type)
    if cls is None:
        close = difflib.get_close_matches(expectation_type, known, n=3, cutoff=0.6)
        hint = f"; did you mean {' or '.join(close)}?" if close else "; see https://greatexpectations.io/expectations"
        raise ValueError(f"unknown expectation type {expectation_type!r}{hint}")
    return cls


def accepted_arguments(expectation_type: str) -> list[str]:
    """The arguments a user may pass to this expectation (GX's own fields minus the reserved ones)."""
    cls = expectation_class(expectation_type)
    return [name for name in cls.__fields__ if name not in RESERVED_ARGUMENTS]  # type: ignore[attr-defined]


def _describe_errors(expectation_type: str, errors: Sequence[Mapping[str, Any]], accepted: list[str]) -> str:
    """One readable sentence from GX's (pydantic v1) validation errors: the first problem per argument."""
    seen: dict[str, str] = {}
    if any(str(e.get("loc", ("",))[0]) != "__root__" for e in errors):
        # A model-level complaint after a field error is usually a consequence of it (GX drops the bad field).
        errors = [e for e in errors if str(e.get("loc", ("",))[0]) != "__root__"]
    for error in errors:
        location = ".".join(str(part) for part in error.get("loc", ()))
        kind = str(error.get("type", ""))
        if location in seen:
            continue
        if kind == "value_error.extra":
            close = difflib.get_close_matches(location, accepted, n=1, cutoff=0.6)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            seen[location] = f"unknown argument {location!r}{hint}; accepted: {', '.join(accepted)}"
        elif kind == "value_error.missing":
            seen[location] = f"missing required argument {location!r}"
        elif location in ("", "__root__"):
            seen[location] = str(error.get("msg", "invalid arguments"))
        else:
            seen[location] = f"invalid value for {location!r}: {error.get('msg')}"
    return f"{expectation_type}: " + "; ".join(seen.values())


def _unsupported_reason(cls: type) -> str | None:
    """Why this expectation cannot run on Driftline's (pandas) backend, if GX's metric registry says so."""
    try:
        from great_expectations.expectations import registry

        registry.register_core_metrics()
        metrics = registry._registered_metrics
        needed = list(getattr(cls, "metric_dependencies", ()) or ())
        map_metric = getattr(cls, "map_metric", None)
        if map_metric:
            needed.append(f"{map_metric}.condition")
        for name in needed:
            providers = metrics.get(name, {}).get("providers")
            if providers and EXECUTION_ENGINE not in providers:
                return (
                    f"needs metric {name!r}, which GX implements only for {', '.join(sorted(providers))}; "
                    "Driftline validates each window's rows in memory with GX's pandas engine"
                )
    except Exception:  # GX internals moved: skip this best-effort check, the hourly run reports it
        return None
    return None


def validate_expectation(expectation_type: str, kwargs: dict[str, Any]) -> None:
    """Raise ``ValueError`` naming an unknown expectation type or an unknown or invalid argument.

    Parameters
    ----------
    expectation_type
        GX's snake_case name, e.g. ``expect_column_values_to_match_regex``.
    kwargs
        Its arguments, validated by instantiating GX's own (pydantic) expectation class.

    Notes
    -----
    Close matches are suggested for a misspelt type or argument. Arguments Driftline sets itself
    (``result_format``, ``catch_exceptions``, ``severity``, ...) are refused with the reason.
    Expectations GX cannot evaluate on its pandas engine (SQL ``LIKE`` patterns, query
    expectations) are refused too, and so is every type outside :data:`STREAMED_EXPECTATIONS`
    (a median or a quantile needs the whole window) and a ``row_condition``. Importing GX takes
    seconds, so it happens only here, on demand.

    Examples
    --------
    >>> validate_expectation("expect_column_values_to_be_between", {"column": "age", "min_value": 0})
    >>> validate_expectation("expect_column_values_to_be_betwen", {})
    Traceback (most recent call last):
    ValueError: unknown expectation type 'expect_column_values_to_be_betwen'; did you mean ...
    """
    if not isinstance(kwargs, dict):
        raise ValueError("kwargs must be a mapping of argument names to values")
    cls = expectation_class(expectation_type)
    reserved = [name for name in kwargs if name in RESERVED_ARGUMENTS]
    if reserved:
        name = reserved[0]
        raise ValueError(f"{expectation_type}: argument {name!r} is not allowed: {RESERVED_ARGUMENTS[name]}")
    reason = _unsupported_reason(cls)
    if reason:
        raise ValueError(f"{expectation_type} is not supported: {reason}")
    if expectation_type not in STREAMED_EXPECTATIONS:
        raise ValueError(
            f"{expectation_type} is not supported: it needs the whole window's rows, and Driftline evaluates "
            f"expectations on the window as it streams; supported: {', '.join(STREAMED_EXPECTATIONS)}"
        )
    unstreamed = [name for name in kwargs if name in UNSTREAMED_ARGUMENTS and kwargs[name] is not None]
    if unstreamed:
        name = unstreamed[0]
        raise ValueError(f"{expectation_type}: argument {name!r} is not supported: {UNSTREAMED_ARGUMENTS[name]}")

    from great_expectations.compatibility import pydantic

    try:
        cls(**kwargs)
    except pydantic.ValidationError as exc:
        accepted = accepted_arguments(expectation_type)
        raise ValueError(_describe_errors(expectation_type, exc.errors(), accepted)) from None
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{expectation_type}: invalid arguments: {exc}") from None
