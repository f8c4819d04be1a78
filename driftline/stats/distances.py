"""Drift statistics between a reference profile and a window profile.

Every function takes ``(reference, window_profile)`` profiles and returns a :class:`StatResult`
(``statistic``, ``pvalue`` or ``None``, ``details``). None of them decides a verdict; see
:mod:`driftline.stats.verdict`. They never raise on degenerate input: an empty side gives a NaN
statistic with ``details["reason"]``, which becomes an ``unknown`` result.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from scipy import stats as sps
from scipy.special import chdtrc, rel_entr

from driftline.stats.profile import CategoricalProfile, FloatArray, IntArray, NumericProfile
from driftline.stats.registry import StatResult, register

#: Proportions are floored at this value inside logarithms (PSI, KL), the usual PSI convention,
#: so an empty bin on one side gives a large but finite value.
LOG_FLOOR = 1e-4
#: Categories compared one by one; rarer reference categories are pooled into one bucket.
TOP_CATEGORIES = 50


def _undefined(reason: str) -> StatResult:
    return StatResult(float("nan"), None, {"reason": reason})


def _proportions(counts: FloatArray | IntArray) -> FloatArray:
    counts = np.asarray(counts, dtype=np.float64)
    total = counts.sum()
    return counts / total if total > 0 else counts


# ---------------------------------------------------------------- distances on proportion vectors


def psi(p: FloatArray, q: FloatArray) -> float:
    """Population stability index ``sum((q - p) * ln(q / p))`` with proportions floored at 1e-4.

    Equal to the symmetric Kullback-Leibler divergence on the same floored proportions.
    """
    p_f = np.maximum(p, LOG_FLOOR)
    q_f = np.maximum(q, LOG_FLOOR)
    return float(np.sum((q_f - p_f) * np.log(q_f / p_f)))


def js_distance(p: FloatArray, q: FloatArray) -> float:
    """Jensen-Shannon *distance* (square root of the divergence), base 2, so it lies in [0, 1].

    ``p`` and ``q`` are normalised to sum 1 (as scipy's ``jensenshannon`` does). Rounding can leave the
    divergence of two nearly equal histograms a hair below zero, where scipy returns NaN: it is 0 here.
    """
    p = np.asarray(p, dtype=float) / np.sum(p)
    q = np.asarray(q, dtype=float) / np.sum(q)
    middle = (p + q) / 2.0
    divergence = (np.sum(rel_entr(p, middle)) + np.sum(rel_entr(q, middle))) / (2.0 * math.log(2.0))
    return math.sqrt(max(float(divergence), 0.0)) if math.isfinite(divergence) else math.nan


def hellinger(p: FloatArray, q: FloatArray) -> float:
    """Hellinger distance ``sqrt(1 - sum(sqrt(p q)))`` in [0, 1]."""
    bc = float(np.sum(np.sqrt(p * q)))
    return math.sqrt(max(1.0 - bc, 0.0))


def tvd(p: FloatArray, q: FloatArray) -> float:
    """Total variation distance ``0.5 * sum|p - q|`` in [0, 1]."""
    return float(0.5 * np.abs(p - q).sum())


def binned_chi_square(ref_counts: FloatArray | IntArray, win_counts: FloatArray | IntArray) -> tuple[float, float, int]:
    """Two-sample chi-square test of homogeneity on a 2 x k table (no continuity correction).

    Columns empty on both sides are dropped. Returns ``(statistic, pvalue, dof)``; with fewer than
    two non-empty columns the samples cannot differ and the result is ``(0, 1, 0)``.

    The same arithmetic as ``scipy.stats.chi2_contingency(table, correction=False)`` (expected counts
    from the margins, Pearson's sum, ``chdtrc`` for the p-value), so the same floats, written out
    because scipy's argument handling costs ~1 ms a call and a window makes dozens (#15).
    """
    table = np.vstack([np.asarray(ref_counts, float), np.asarray(win_counts, float)])
    table = table[:, table.sum(axis=0) > 0]
    if table.shape[1] < 2 or (table.sum(axis=1) == 0).any():
        return 0.0, 1.0, 0
    expected = table.sum(axis=1, keepdims=True) * table.sum(axis=0, keepdims=True) / table.sum()
    dof = table.shape[1] - 1
    statistic = float(((table - expected) ** 2 / expected).sum())
    return statistic, float(chdtrc(dof, statistic)), dof


# ---------------------------------------------------------------- numeric features


def _numeric_sizes(reference: NumericProfile, window_profile: NumericProfile) -> StatResult | None:
    if reference.n == 0:
        return _undefined("reference has no finite values")
    if window_profile.n == 0:
        return _undefined("window has no finite values")
    return None


def _coarse(reference: NumericProfile, window_profile: NumericProfile) -> tuple[FloatArray, FloatArray, dict[str, Any]]:
    ref_c = reference.coarse_counts()
    win_c = np.bincount(reference.groups, weights=window_profile.counts, minlength=len(ref_c)).astype(np.int64)
    chi2, pvalue, dof = binned_chi_square(ref_c, win_c)
    return _proportions(ref_c), _proportions(win_c), {"bins": len(ref_c), "binned_pvalue": pvalue, "binned_dof": dof}


@register("ks", "numeric", 0.1, 0.2, "Kolmogorov-Smirnov statistic (max ECDF gap)")
def ks_numeric(reference: NumericProfile, window_profile: NumericProfile) -> StatResult:
    """Two-sample Kolmogorov-Smirnov statistic from the binned ECDFs, asymptotic two-sided p-value.

    Notes
    -----
    The ECDFs are compared at the reference's fine bin edges, so the statistic can fall short of
    ``scipy.stats.ks_2samp`` on the raw rows by at most the largest reference bin mass (1/200 for
    continuous data). The p-value is scipy's asymptotic one (``kstwo.sf(D, round(n m / (n + m)))``).
    NaN and infinite values are excluded on both sides.
    """
    if (undefined := _numeric_sizes(reference, window_profile)) is not None:
        return undefined
    n, m = reference.n, window_profile.n
    cdf_ref = np.cumsum(reference.counts) / n
    cdf_win = np.cumsum(window_profile.counts) / m
    statistic = float(np.max(np.abs(cdf_ref - cdf_win)))
    big, small = max(n, m), min(n, m)
    effective = big * small / (big + small)
    # At least 1: with one value on each side scipy's formula gets n = 0 and returns NaN.
    pvalue = float(np.clip(sps.distributions.kstwo.sf(statistic, max(1.0, np.round(effective))), 0.0, 1.0))
    return StatResult(statistic, pvalue, {"reference_rows": n, "window_rows": m})


def _segments(reference: NumericProfile, window_profile: NumericProfile) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Boundaries of every bin (overflow bins bounded by the window's extremes) and both CDFs there."""
    low = float(np.fmin(reference.minimum, window_profile.minimum))
    high = float(np.fmax(reference.maximum, window_profile.maximum))
    points = np.concatenate([[low], reference.edges, [high]])
    cdf_ref = np.concatenate([[0.0], np.cumsum(reference.counts) / reference.n])
    cdf_win = np.concatenate([[0.0], np.cumsum(window_profile.counts) / window_profile.n])
    return points, cdf_ref, cdf_win


@register("wasserstein", "numeric", 0.1, 0.2, "Wasserstein-1 distance in reference standard deviations")
def wasserstein_numeric(reference: NumericProfile, window_profile: NumericProfile) -> StatResult:
    """First Wasserstein distance divided by the reference standard deviation.

    Notes
    -----
    The distance is the integral of ``|F_ref - F_win|``, with both CDFs linear inside each bin
    (values spread evenly within a bin). A constant reference (std 0) leaves it undefined.
    The p-value is the binned chi-square test's (10 reference-quantile bins).
    """
    if (undefined := _numeric_sizes(reference, window_profile)) is not None:
        return undefined
    scale = reference.std
    if not scale > 0:
        return _undefined("reference standard deviation is 0" if scale == 0 else "reference variance overflows float64")
    points, cdf_ref, cdf_win = _segments(reference, window_profile)
    diff = cdf_ref - cdf_win
    lengths = np.diff(points)
    d0, d1 = np.abs(diff[:-1]), np.abs(diff[1:])
    same_sign = np.sign(diff[:-1]) * np.sign(diff[1:]) >= 0
    with np.errstate(invalid="ignore", divide="ignore"):
        crossing = (diff[:-1] ** 2 + diff[1:] ** 2) / (2 * (d0 + d1))
    area = np.where(same_sign, (d0 + d1) / 2, np.nan_to_num(crossing))
    distance = float(np.sum(lengths * area))
    # Significance comes from the binned chi-square test: W1 itself has no cheap null distribution.
    _, _, binned = _coarse(reference, window_profile)
    return StatResult(
        distance / scale, binned["binned_pvalue"], {"distance": distance, "reference_std": scale, **binned}
    )


def _binned(metric: Any) -> Any:
    def compute(reference: NumericProfile, window_profile: NumericProfile) -> StatResult:
        if (undefined := _numeric_sizes(reference, window_profile)) is not None:
            return undefined
        p, q, details = _coarse(reference, window_profile)
        return StatResult(metric(p, q), details["binned_pvalue"], details)

    return compute


psi_numeric = register("psi", "numeric", 0.1, 0.25, "population stability index on 10 reference-quantile bins")(
    _binned(psi)
)
js_numeric = register("jensen_shannon", "numeric", 0.1, 0.2, "Jensen-Shannon distance (base 2) on 10 bins")(
    _binned(js_distance)
)
hellinger_numeric = register("hellinger", "numeric", 0.1, 0.2, "Hellinger distance on 10 bins")(_binned(hellinger))
tvd_numeric = register("tvd", "numeric", 0.1, 0.2, "total variation distance on 10 bins")(_binned(tvd))


# ---------------------------------------------------------------- categorical features

UNSEEN = "__unseen__"


def aligned_categories(
    reference: CategoricalProfile, window_profile: CategoricalProfile
) -> tuple[list[str], FloatArray, FloatArray]:
    """Counts of both sides over the same buckets.

    Buckets: the ``TOP_CATEGORIES`` most frequent reference categories one by one, the remaining
    reference categories pooled as ``__other__``, and window categories never seen in the reference
    as ``__unseen__``.
    """
    ranked = sorted(reference.counts.items(), key=lambda item: (-item[1], item[0]))
    top = [c for c, _ in ranked[:TOP_CATEGORIES]]
    rest = {c for c, _ in ranked[TOP_CATEGORIES:]}
    ref = [reference.counts[c] for c in top] + [sum(reference.counts[c] for c in rest) + reference.overflow, 0]
    win_top = [window_profile.counts.get(c, 0) for c in top]
    win_other = sum(v for c, v in window_profile.counts.items() if c in rest)
    win_unseen = sum(v for c, v in window_profile.counts.items() if c not in reference.counts) + window_profile.overflow
    labels = [*top, "__other__", UNSEEN]
    return labels, np.asarray(ref, float), np.asarray([*win_top, win_other, win_unseen], float)


def _categorical_sizes(reference: CategoricalProfile, window_profile: CategoricalProfile) -> StatResult | None:
    if reference.n == 0:
        return _undefined("reference has no non-null values")
    if window_profile.n == 0:
        return _undefined("window has no non-null values")
    return None


#: Cochran's rule: a chi-square cell needs an expected window count of at least 5 to be tested alone.
MIN_EXPECTED = 5.0


def chi_square_buckets(
    reference: CategoricalProfile, window_profile: CategoricalProfile
) -> tuple[list[str], FloatArray, FloatArray]:
    """The buckets the chi-square test compares: :func:`aligned_categories`, with every bucket whose
    expected window count (window rows x reference share) is below :data:`MIN_EXPECTED` pooled into
    one ``__rare__`` bucket together with the window's unseen categories.

    Why: with rare levels (a Zipf-like column) a category the reference saw a few times, or never,
    turns up in an hour by chance; on its own cell its tiny expected count makes the statistic huge
    and the p-value wrong (the chi-square approximation needs expected counts of about 5). Pooled,
    the rare and unseen rows are compared as one share, which is still tested. Unseen categories as
    such are the validity check's (``expect_column_values_to_be_in_set``) and ``unseen_share``'s.
    """
    labels, ref, win = aligned_categories(reference, window_profile)
    n = win.sum()
    shares = ref / ref.sum() if ref.sum() else ref
    keep = shares * n >= MIN_EXPECTED
    keep[-1] = False  # the unseen bucket (no reference share) always joins the pooled one
    if keep.all():
        return labels, ref, win
    kept = [label for label, k in zip(labels, keep, strict=True) if k]
    return (
        [*kept, "__rare__"],
        np.append(ref[keep], ref[~keep].sum()),
        np.append(win[keep], win[~keep].sum()),
    )


@register(
    "chi_square",
    "categorical",
    0.15,
    0.3,
    "chi-square test of homogeneity; levels apply to Cohen's w (0.1 small, 0.3 medium, 0.5 large)",
    effect="cohens_w",
)
def chi_square_categorical(reference: CategoricalProfile, window_profile: CategoricalProfile) -> StatResult:
    """Chi-square test of homogeneity between reference and window category counts.

    Notes
    -----
    Equals ``scipy.stats.chi2_contingency([ref_counts, window_counts], correction=False)`` on the
    buckets of :func:`chi_square_buckets` (rare and unseen categories pooled). Buckets empty on both
    sides are dropped. ``details["cohens_w"]`` is the effect size used by the verdict:
    ``sqrt(chi2 * (1/n + 1/m))``, Cohen's w of the difference between the two distributions. Unlike
    the two-sample Cramér's V (``sqrt(chi2 / (n + m))``) it does not shrink as the reference grows
    (for n << m it tends to ``sqrt(sum((q - p)**2 / p))``). ``details["cramers_v"]`` is the same
    effect on Cramér's 0..1 scale, ``w / sqrt(levels - 1)`` (the goodness-of-fit form), shown
    beside it; ``details["levels"]`` is the number of buckets compared.
    """
    if (undefined := _categorical_sizes(reference, window_profile)) is not None:
        return undefined
    _, ref, win = chi_square_buckets(reference, window_profile)
    statistic, pvalue, dof = binned_chi_square(ref, win)
    scale = 1 / ref.sum() + 1 / win.sum()
    w = math.sqrt(statistic * scale)
    return StatResult(
        statistic,
        pvalue,
        {"dof": dof, "cohens_w": w, "cramers_v": w / math.sqrt(dof) if dof else 0.0, "levels": dof + 1},
    )


def _categorical(metric: Any) -> Any:
    def compute(reference: CategoricalProfile, window_profile: CategoricalProfile) -> StatResult:
        if (undefined := _categorical_sizes(reference, window_profile)) is not None:
            return undefined
        _, ref, win = aligned_categories(reference, window_profile)
        _, pooled_ref, pooled_win = chi_square_buckets(reference, window_profile)
        _, pvalue, dof = binned_chi_square(pooled_ref, pooled_win)
        return StatResult(
            metric(_proportions(ref), _proportions(win)), pvalue, {"binned_pvalue": pvalue, "binned_dof": dof}
        )

    return compute


psi_categorical = register("psi", "categorical", 0.1, 0.25, "population stability index over categories")(
    _categorical(psi)
)
js_categorical = register("jensen_shannon", "categorical", 0.1, 0.2, "Jensen-Shannon distance (base 2)")(
    _categorical(js_distance)
)
hellinger_categorical = register("hellinger", "categorical", 0.1, 0.2, "Hellinger distance")(_categorical(hellinger))
tvd_categorical = register("tvd", "categorical", 0.1, 0.2, "total variation distance")(_categorical(tvd))


@register(
    "unseen_share",
    "categorical",
    0.01,
    0.05,
    "share of window rows in categories absent from the reference; tested against the reference's "
    "Good-Turing missing mass",
    always_judged=True,
)
def unseen_share_categorical(reference: CategoricalProfile, window_profile: CategoricalProfile) -> StatResult:
    """Share of the window's non-null rows whose category never occurs in the reference."""
    if (undefined := _categorical_sizes(reference, window_profile)) is not None:
        return undefined
    unseen = {c: v for c, v in window_profile.counts.items() if c not in reference.counts}
    count = sum(unseen.values()) + window_profile.overflow
    share = count / window_profile.n
    examples = sorted(unseen, key=lambda c: -unseen[c])[:5]
    chance = unseen_chance(reference)
    pvalue = float(sps.binom.sf(count - 1, window_profile.n, chance)) if chance > 0 else (0.0 if count else 1.0)
    return StatResult(share, pvalue, {"unseen_categories": len(unseen), "examples": examples, "chance_share": chance})


def unseen_chance(reference: CategoricalProfile) -> float:
    """The share of rows an unchanged window has in categories the reference never saw: the
    Good-Turing missing mass, categories seen once / rows, plus the reference's overflow (categories
    beyond the stored ones look unseen too). Large for a Zipf-like column with rare levels."""
    if reference.n == 0:
        return 0.0
    singletons = sum(1 for count in reference.counts.values() if count == 1)
    return min(1.0, (singletons + reference.overflow) / reference.n)
