"""From statistics to verdicts: one threshold object, window-level multiplicity, one reason sentence.

A level (warning or alert) is reached when the effect size is at or beyond it **and**, for
statistics with a p-value, the p-value adjusted across the window's family of tests is below that
level's alpha: ``alpha`` for a warning, ``alert_alpha`` (default ``alpha / 10``) for an alert. The
effect-size floor keeps huge windows from flagging trivial shifts; the significance gate keeps small
windows from flagging noise; the stricter alert alpha keeps pages rarer than warnings. Too few rows
give ``unknown``.

Every check (drift, concept drift, performance, operational, data quality) judges through
:class:`Threshold` and describes a flagged result with :func:`reason_sentence`, so a verdict means
the same thing and reads the same way wherever it is shown.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import stats as sps

from driftline.core.results import Status

#: An alert needs a p-value this many times smaller than a warning does, unless set explicitly.
ALERT_ALPHA_RATIO = 0.1


def adjust_pvalues(pvalues: Sequence[float | None]) -> list[float | None]:
    """Benjamini-Hochberg adjusted p-values; ``None``/NaN entries stay ``None`` and are not counted."""
    present = [i for i, p in enumerate(pvalues) if p is not None and not math.isnan(p)]
    adjusted: list[float | None] = [None] * len(pvalues)
    if present:
        values = np.asarray([pvalues[i] for i in present], dtype=float)
        for index, value in zip(present, sps.false_discovery_control(values, method="bh"), strict=True):
            adjusted[index] = float(value)
    return adjusted


def holm_adjust(pvalues: Sequence[float | None]) -> list[float | None]:
    """Holm's step-down adjusted p-values (family-wise error control); ``None``/NaN stay ``None``.

    Sorted ascending, the i-th smallest of m becomes ``max_{j <= i} min(1, (m - j + 1) p_(j))``.
    Rejecting where the adjusted value is below alpha keeps the chance of *any* false flag in the
    family at most alpha, whatever the dependence between the tests and however many others truly
    changed — unlike Benjamini-Hochberg, which lets a few calm features ride along with drifted ones.
    """
    present = [i for i, p in enumerate(pvalues) if p is not None and not math.isnan(p)]
    adjusted: list[float | None] = [None] * len(pvalues)
    order = sorted(present, key=lambda i: pvalues[i])  # type: ignore[arg-type,return-value]
    m, running = len(order), 0.0
    for rank, index in enumerate(order):
        running = max(running, min(1.0, (m - rank) * float(pvalues[index])))  # type: ignore[arg-type]
        adjusted[index] = running
    return adjusted


@dataclass(frozen=True)
class Threshold:
    """Warning and alert levels of one check, and the significance each level needs.

    ``higher_is_worse=False`` is for checks whose bad direction is down (an accuracy bound, a row
    count below its band): a level is reached at or *below* it. ``alpha=None`` means the check has
    no significance test (a deterministic rule such as "no rows at all"). ``strict=True``: a level is
    reached only *beyond* it, not at it (a tolerance that allows the bound itself). A check with one
    level gives the same value to both (``warning == alert``), so it is ``ok`` or ``alert``.
    """

    warning: float
    alert: float
    alpha: float | None = 0.01
    alert_alpha: float | None = None
    higher_is_worse: bool = True
    strict: bool = False

    @property
    def alpha_for_alert(self) -> float | None:
        if self.alpha is None:
            return None
        return self.alert_alpha if self.alert_alpha is not None else self.alpha * ALERT_ALPHA_RATIO

    def reached(self, effect: float, level: float) -> bool:
        if self.higher_is_worse:
            return effect > level if self.strict else effect >= level
        return effect < level if self.strict else effect <= level

    def judge(self, effect: float | None, pvalue: float | None = None) -> Status:
        """``ok``/``warning``/``alert``; NaN or ``None`` effect -> ``unknown``.

        ``pvalue`` is the (window-adjusted) p-value; ``None`` means "no test", so the effect decides.
        """
        if effect is None or math.isnan(effect):
            return Status.UNKNOWN
        alert_alpha = self.alpha_for_alert
        if self.reached(effect, self.alert) and (pvalue is None or alert_alpha is None or pvalue < alert_alpha):
            return Status.ALERT
        if self.reached(effect, self.warning) and (pvalue is None or self.alpha is None or pvalue < self.alpha):
            return Status.WARNING
        return Status.OK

    def as_details(self) -> dict[str, Any]:
        """Both levels and both alphas, for a result's ``details``."""
        out: dict[str, Any] = {"warning": self.warning, "alert": self.alert}
        if self.alpha is not None:
            out |= {"alpha": self.alpha, "alert_alpha": self.alpha_for_alert}
        return out


def judge(effect: float, warning: float, alert: float, pvalue: float | None, alpha: float) -> Status:
    """Verdict for one statistic with the same alpha for both levels. NaN effect -> ``unknown``."""
    return Threshold(warning, alert, alpha, alert_alpha=alpha).judge(effect, pvalue)


def judge_family(
    effects: Sequence[float | None], pvalues: Sequence[float | None], thresholds: Sequence[Threshold]
) -> tuple[list[Status], list[float | None]]:
    """Judge a window's family of tests together: p-values Holm-adjusted across the family first.

    The family is every verdict-bearing test of one kind in one window (each feature's primary
    drift statistic; each performance metric and segment; each operational or data-quality check
    with a test), so the chance that *any* of them reaches a level by chance is at most that level's
    alpha, however many features or metrics the model has, and whatever else drifted in the same
    window. Returns the statuses and the adjusted p-values.
    """
    adjusted = holm_adjust(pvalues)
    statuses = []
    for effect, raw, p_adj, threshold in zip(effects, pvalues, adjusted, thresholds, strict=True):
        statuses.append(threshold.judge(effect, p_adj if raw is not None else None))
    return statuses, adjusted


# ------------------------------------------------------------------------------------------------
# One sentence per flagged result
# ------------------------------------------------------------------------------------------------


def format_number(value: float | None) -> str:
    """3 significant digits, thousands separators for counts; ``n/a`` for None/NaN."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "n/a"
    if float(value).is_integer() and abs(value) >= 1000:
        return f"{int(value):,}"
    if value != 0 and (abs(value) < 0.001 or abs(value) >= 1e6):
        return f"{value:.3g}"
    return f"{value:.3g}" if abs(value) < 1000 else f"{value:,.0f}"


def format_pvalue(pvalue: float | None) -> str | None:
    if pvalue is None or not math.isfinite(pvalue):
        return None
    if pvalue < 1e-6:
        return "p < 1e-6"
    return f"p = {pvalue:.2g}"


def reason_sentence(
    *,
    subject: str,
    label: str,
    value: float | None,
    status: Status,
    threshold: Threshold,
    pvalue: float | None = None,
    rows: int | None = None,
    reference_rows: int | None = None,
    extra: str | None = None,
) -> str:
    """One human sentence for a flagged result, e.g.
    ``income: PSI 0.36 ≥ 0.25 (alert), p < 1e-6, 2,000 rows vs 14,000 reference``.

    The level shown is the one reached (the alert level for an alert, the warning level for a
    warning); ``extra`` is appended after a semicolon (levels of a chi-square, likely causes, ...).
    """
    level = threshold.alert if status == Status.ALERT else threshold.warning
    sign = "≥" if threshold.higher_is_worse else "≤"
    measured = f"{label} {format_number(value)}" if label else format_number(value)  # label "": the subject says it
    parts = [f"{subject}: {measured} {sign} {format_number(level)} ({status})"]
    if (p := format_pvalue(pvalue)) is not None:
        parts.append(p)
    if rows is not None and reference_rows is not None:
        parts.append(f"{rows:,} rows vs {reference_rows:,} reference")
    elif rows is not None:
        parts.append(f"{rows:,} rows")
    sentence = ", ".join(parts)
    return f"{sentence}; {extra}" if extra else sentence
