"""From statistics to verdicts: thresholds, significance gates and multiplicity correction.

A level (warning or alert) is reached when the effect size is at or above it **and**, for
statistics with a p-value, the Benjamini-Hochberg adjusted p-value across the window's features is
below ``alpha``. The effect-size floor keeps huge windows from flagging trivial shifts; the
significance gate keeps small windows from flagging noise. Too few rows give ``unknown``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from scipy import stats as sps

from driftline.results import Status


def adjust_pvalues(pvalues: Sequence[float | None]) -> list[float | None]:
    """Benjamini-Hochberg adjusted p-values; ``None``/NaN entries stay ``None`` and are not counted."""
    present = [i for i, p in enumerate(pvalues) if p is not None and not math.isnan(p)]
    adjusted: list[float | None] = [None] * len(pvalues)
    if present:
        values = np.asarray([pvalues[i] for i in present], dtype=float)
        for index, value in zip(present, sps.false_discovery_control(values, method="bh"), strict=True):
            adjusted[index] = float(value)
    return adjusted


def judge(effect: float, warning: float, alert: float, pvalue: float | None, alpha: float) -> Status:
    """Verdict for one statistic. NaN effect -> ``unknown``."""
    if effect is None or math.isnan(effect):
        return Status.UNKNOWN
    significant = pvalue is None or pvalue < alpha
    if significant and effect >= alert:
        return Status.ALERT
    if significant and effect >= warning:
        return Status.WARNING
    return Status.OK
