"""The registry of drift statistics: name -> pure function, default thresholds, column kinds.

Thresholds and verdicts live outside the functions (:mod:`driftline.stats.verdict`); the registry
only carries each statistic's *default* warning/alert levels and how its significance is judged.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from driftline.stats import distances as d

ColumnKind = Literal["numeric", "categorical"]
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
    compute: Callable[[Any, Any], d.StatResult]
    warning: float
    alert: float
    effect: Effect = "statistic"
    description: str = ""
    #: Judged for every column that lists it, primary or not: it answers a different question than
    #: the primary (are there values the reference never had?), with its own test in the family.
    always_judged: bool = False


def _entry(
    name: str,
    kind: ColumnKind,
    compute: Callable[[Any, Any], d.StatResult],
    warning: float,
    alert: float,
    description: str,
    effect: Effect = "statistic",
) -> Statistic:
    return Statistic(name, frozenset({kind}), compute, warning, alert, effect, description)


# Registered per column kind: the same name may mean the same idea on either kind.
REGISTRY: dict[ColumnKind, dict[str, Statistic]] = {
    "numeric": {
        s.name: s
        for s in [
            _entry("ks", "numeric", d.ks_numeric, 0.1, 0.2, "Kolmogorov-Smirnov statistic (max ECDF gap)"),
            _entry(
                "wasserstein",
                "numeric",
                d.wasserstein_numeric,
                0.1,
                0.2,
                "Wasserstein-1 distance in reference standard deviations",
            ),
            _entry(
                "psi", "numeric", d.psi_numeric, 0.1, 0.25, "population stability index on 10 reference-quantile bins"
            ),
            _entry("jensen_shannon", "numeric", d.js_numeric, 0.1, 0.2, "Jensen-Shannon distance (base 2) on 10 bins"),
            _entry("hellinger", "numeric", d.hellinger_numeric, 0.1, 0.2, "Hellinger distance on 10 bins"),
            _entry("tvd", "numeric", d.tvd_numeric, 0.1, 0.2, "total variation distance on 10 bins"),
        ]
    },
    "categorical": {
        s.name: s
        for s in [
            _entry(
                "chi_square",
                "categorical",
                d.chi_square_categorical,
                0.15,
                0.3,
                "chi-square test of homogeneity; levels apply to Cohen's w (0.1 small, 0.3 medium, 0.5 large)",
                effect="cohens_w",
            ),
            _entry("psi", "categorical", d.psi_categorical, 0.1, 0.25, "population stability index over categories"),
            _entry("jensen_shannon", "categorical", d.js_categorical, 0.1, 0.2, "Jensen-Shannon distance (base 2)"),
            _entry("hellinger", "categorical", d.hellinger_categorical, 0.1, 0.2, "Hellinger distance"),
            _entry("tvd", "categorical", d.tvd_categorical, 0.1, 0.2, "total variation distance"),
            Statistic(
                "unseen_share",
                frozenset({"categorical"}),
                d.unseen_share_categorical,
                0.01,
                0.05,
                description="share of window rows in categories absent from the reference; tested against "
                "the reference's Good-Turing missing mass",
                always_judged=True,
            ),
        ]
    },
}

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
