"""The registry of drift statistics: name -> pure function, default thresholds, column kinds.

Thresholds and verdicts live outside the functions (:mod:`driftline.stats.verdict`); the registry
only carries each statistic's *default* warning/alert levels and how its significance is judged.

A new statistic is one function decorated with :func:`register` in :mod:`driftline.stats.distances`
(see docs/architecture.md); monitors.yaml can then name it under ``drift.metrics``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, NamedTuple

ColumnKind = Literal["numeric", "categorical"]


class StatResult(NamedTuple):
    """What a statistic returns: the statistic, its p-value (None: no test), and details."""

    statistic: float
    pvalue: float | None
    details: dict[str, Any]


#: A statistic's function: reference profile, window profile -> StatResult.
Compute = Callable[[Any, Any], StatResult]
#: What the effect-size thresholds are compared with: the statistic itself, or a detail of it.
Effect = Literal["statistic", "cohens_w"]


@dataclass(frozen=True)
class Statistic:
    """A registered drift statistic.

    ``warning``/``alert`` are effect-size levels (compared with ``effect``); when the function
    returns a p-value, a level only counts if the (multiplicity-corrected) p-value is below alpha.
    """

    name: str
    kinds: frozenset[ColumnKind]
    compute: Compute
    warning: float
    alert: float
    effect: Effect = "statistic"
    description: str = ""
    #: Judged for every column that lists it, primary or not: it answers a different question than
    #: the primary (are there values the reference never had?), with its own test in the family.
    always_judged: bool = False


#: Filled by :func:`register` as :mod:`driftline.stats.distances` is imported (bottom of this module).
REGISTRY: dict[ColumnKind, dict[str, Statistic]] = {"numeric": {}, "categorical": {}}


def register(
    name: str,
    kind: ColumnKind,
    warning: float,
    alert: float,
    description: str,
    *,
    effect: Effect = "statistic",
    always_judged: bool = False,
) -> Callable[[Compute], Compute]:
    """Decorator: register ``compute(reference, window) -> StatResult`` as the ``kind`` statistic ``name``
    with its default warning/alert levels. The same name may be registered once per column kind (the
    same idea on either kind); a second registration of a (kind, name) pair is an error."""

    def add(compute: Compute) -> Compute:
        if name in REGISTRY[kind]:
            raise ValueError(f"{kind} statistic {name!r} is registered twice")
        REGISTRY[kind][name] = Statistic(
            name, frozenset({kind}), compute, warning, alert, effect, description, always_judged
        )
        return compute

    return add


DEFAULT_METRICS: dict[ColumnKind, tuple[str, ...]] = {
    "numeric": ("wasserstein", "ks", "psi", "jensen_shannon"),
    "categorical": ("chi_square", "psi", "jensen_shannon", "unseen_share"),
}


def get_statistic(kind: ColumnKind, name: str) -> Statistic:
    """Look a statistic up by column kind and name; ``KeyError`` lists the valid names."""
    try:
        return REGISTRY[kind][name]
    except KeyError:
        raise KeyError(f"no {kind} statistic {name!r}; known: {', '.join(sorted(REGISTRY[kind]))}") from None


def known_names() -> set[str]:
    return {name for table in REGISTRY.values() for name in table}


# The built-in statistics register themselves as their module is imported (a new statistic is one
# decorated function there, or in a module imported here). Imported last: distances imports register.
from driftline.stats import distances as _builtin_statistics  # noqa: E402, F401
