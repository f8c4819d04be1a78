"""The statistics registry: names, kinds, default levels, and lookups."""

from __future__ import annotations

import math

import numpy as np
import pytest

from driftline.stats import distances as d
from driftline.stats.profile import fit_numeric, profile_categorical, profile_numeric
from driftline.stats.registry import (
    DEFAULT_METRICS,
    REGISTRY,
    Statistic,
    get_statistic,
    known_names,
)

ALL = [(kind, name) for kind, table in REGISTRY.items() for name in table]


def sample_profiles(kind: str) -> tuple[object, object]:
    rng = np.random.default_rng(61)
    if kind == "numeric":
        ref = fit_numeric(rng.normal(size=2_000))
        return ref, profile_numeric(rng.normal(0.4, 1.0, 500), ref)
    ref_c = profile_categorical(rng.choice(["a", "b", "c"], size=2_000, p=[0.5, 0.3, 0.2]).tolist())
    return ref_c, profile_categorical(rng.choice(["a", "b", "c", "new"], size=500).tolist())


def test_registry_has_both_kinds() -> None:
    assert set(REGISTRY) == {"numeric", "categorical"}
    assert set(REGISTRY["numeric"]) == {"ks", "wasserstein", "psi", "jensen_shannon", "hellinger", "tvd"}
    assert set(REGISTRY["categorical"]) == {"chi_square", "psi", "jensen_shannon", "hellinger", "tvd", "unseen_share"}
    assert known_names() == set(REGISTRY["numeric"]) | set(REGISTRY["categorical"])


@pytest.mark.parametrize(("kind", "name"), ALL)
def test_levels_are_ordered_and_positive(kind: str, name: str) -> None:
    statistic = REGISTRY[kind][name]
    assert isinstance(statistic, Statistic)
    assert statistic.name == name
    assert 0 < statistic.warning <= statistic.alert
    assert statistic.description


@pytest.mark.parametrize(("kind", "name"), ALL)
def test_statistic_accepts_exactly_its_own_kind(kind: str, name: str) -> None:
    statistic = get_statistic(kind, name)  # type: ignore[arg-type]
    assert statistic.kinds == frozenset({kind})
    own = statistic.compute(*sample_profiles(kind))
    assert isinstance(own, d.StatResult)
    assert math.isfinite(own.statistic) and own.statistic > 0
    assert own.pvalue is None or 0.0 <= own.pvalue <= 1.0
    # Profiles of the other kind are rejected loudly, never turned into a number.
    other = "categorical" if kind == "numeric" else "numeric"
    with pytest.raises((TypeError, AttributeError)):
        statistic.compute(*sample_profiles(other))


@pytest.mark.parametrize(("kind", "name"), ALL)
def test_effect_names_a_value_the_statistic_returns(kind: str, name: str) -> None:
    statistic = REGISTRY[kind][name]
    result = statistic.compute(*sample_profiles(kind))
    if statistic.effect == "cohens_w":
        assert name == "chi_square"
        assert result.details["cohens_w"] >= 0.0
    else:
        assert statistic.effect == "statistic"


def test_same_idea_has_same_levels_on_both_kinds() -> None:
    for name in set(REGISTRY["numeric"]) & set(REGISTRY["categorical"]):
        numeric, categorical = REGISTRY["numeric"][name], REGISTRY["categorical"][name]
        assert (numeric.warning, numeric.alert) == (categorical.warning, categorical.alert), name


def test_unknown_statistic_raises_keyerror_listing_known_names() -> None:
    with pytest.raises(KeyError) as caught:
        get_statistic("numeric", "kolmogorov")
    message = str(caught.value)
    assert "'kolmogorov'" in message
    for name in REGISTRY["numeric"]:
        assert name in message
    assert "unseen_share" not in message  # only the names valid for that kind
    with pytest.raises(KeyError, match="unseen_share"):
        get_statistic("categorical", "ks")


@pytest.mark.parametrize("kind", list(DEFAULT_METRICS))
def test_default_metrics_exist(kind: str) -> None:
    assert DEFAULT_METRICS[kind]
    assert len(set(DEFAULT_METRICS[kind])) == len(DEFAULT_METRICS[kind])
    for name in DEFAULT_METRICS[kind]:
        assert get_statistic(kind, name).name == name  # type: ignore[arg-type]


def test_a_new_statistic_is_one_decorated_function() -> None:
    """What docs/architecture.md shows: decorate a function with ``register``, and monitors.yaml can name
    it under ``drift.numeric_metrics``; the drift task computes and judges it like a built-in."""
    from datetime import UTC, datetime

    import pandas as pd

    from driftline.config.monitors import parse_config
    from driftline.core.window import Window
    from driftline.stats.model_profile import fit_model_profile, window_model_profile
    from driftline.stats.registry import StatResult, register
    from driftline.tasks.drift import evaluate_drift
    from tests.conftest import model_entry

    @register("mean_shift", "numeric", 0.2, 0.5, "absolute mean difference in reference standard deviations")
    def mean_shift(reference: object, window: object) -> StatResult:
        shift = abs(window.mean - reference.mean) / reference.std  # type: ignore[attr-defined]
        return StatResult(shift, None, {})

    try:
        assert get_statistic("numeric", "mean_shift").compute is mean_shift
        with pytest.raises(ValueError, match="registered twice"):
            register("mean_shift", "numeric", 0.2, 0.5, "again")(mean_shift)
        entry = model_entry("m", "t", features={"numeric": ["x"]}, drift={"numeric_metrics": ["mean_shift"]})
        config = parse_config({"models": [entry]}).models[0]
        rng = np.random.default_rng(3)
        reference = fit_model_profile(pd.DataFrame({"x": rng.normal(0, 1, 5_000)}), ["x"], [])
        current = window_model_profile(pd.DataFrame({"x": rng.normal(1, 1, 2_000)}), reference)
        window = Window(datetime(2026, 1, 8, tzinfo=UTC), datetime(2026, 1, 8, 1, tzinfo=UTC))
        rows = [r for r in evaluate_drift(config, window, reference, current) if r.metric == "mean_shift"]
        assert len(rows) == 1 and rows[0].feature == "x"
        assert rows[0].value == pytest.approx(1.0, abs=0.1) and rows[0].status.value == "alert"
    finally:
        del REGISTRY["numeric"]["mean_shift"]
