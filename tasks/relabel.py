"""A past hour re-read for its late labels: only its labelled rows, on top of its stored profile.

When labels arrive for an hour already monitored, what changes is what the labels feed: the
realised performance and concept states, and the profiles of the label (and, for regression, the
residual). Every other part of the hour's profile (the features, the prediction and score, the
estimation, operational and completeness states) is what the hourly run stored. So the late-label
refresh reads ``WHERE label IS NOT NULL`` and folds those rows into the label-dependent parts, and
the unlabelled rows, which add nothing but their count, are taken from the stored hour:

- a column profile of the label is the labelled rows' profile plus the unlabelled rows as nulls;
- a performance state's unlabelled rows add only to its ``rows`` (overall and per segment), which
  the stored state holds (segment rows depend on the features, not on the labels);
- the concept state counts labelled rows only.

The result equals streaming the whole hour again (exactly within one block, about 20,000 rows;
across blocks up to the float rounding of the moment sums, as any streamed profile). When it
cannot be built exactly (no stored hour for the reference, another row count in the log than the
stored hour counted, a performance or segment configuration that changed since), the caller
streams the whole hour as before.
"""

from __future__ import annotations

from dataclasses import replace

import pandas as pd

from driftline.config.monitors import RESIDUAL, ModelConfig
from driftline.core.window import Window
from driftline.stats.model_profile import ModelProfile, window_model_profile
from driftline.stats.performance import SEGMENT_AUC_GRID, PerformanceState, ScoreCounts, WindowPerformance
from driftline.stats.profile import CategoricalProfile, FeatureProfile, NumericProfile, profile_numeric
from driftline.storage.connections import Databases
from driftline.storage.profiles import load_window_profiles
from driftline.tasks.extract import iter_rows, window_row_count
from driftline.tasks.performance import PERFORMANCE_STATE, performance_streams, window_performance
from driftline.tasks.profiles import CONCEPT_STATE, concept_streams, profiled_columns, relation_state

#: The window states the labels feed (every other state of a stored hour is kept as stored).
LABEL_STATES = (PERFORMANCE_STATE, CONCEPT_STATE)


def label_profile_columns(model_config: ModelConfig, reference: ModelProfile) -> list[str]:
    """Profiled columns whose values come from the label: the label, and a regression's residual."""
    columns = [model_config.label_field, RESIDUAL if model_config.task == "regression" else None]
    features = {name for name, _ in model_config.features.items()}
    return [c for c in columns if c and c in reference.features and c not in features]


def labelled_part(frame: pd.DataFrame, model_config: ModelConfig, reference: ModelProfile) -> ModelProfile:
    """What some labelled rows (a block) give the label-dependent parts of a window's profile: the
    label columns' profiles and the performance and concept states, as ``profile_window`` folds them."""
    columns = label_profile_columns(model_config, reference)
    part = window_model_profile(frame, ModelProfile(reference.row_count, {c: reference.features[c] for c in columns}))
    part.row_count = len(frame)
    if performance_streams(model_config):
        part.states[PERFORMANCE_STATE] = window_performance(frame, model_config, reference)
    if concept_streams(model_config):
        part.states[CONCEPT_STATE] = relation_state(frame, model_config, reference)
    return part


def _as_nulls(profile: FeatureProfile, nulls: int) -> FeatureProfile:
    """A profile on the same bins counting ``nulls`` null values and nothing else."""
    if isinstance(profile, NumericProfile):
        return replace(profile_numeric([], profile), nulls=nulls)
    return CategoricalProfile(nulls=nulls)


def _unlabelled_rows(stored: WindowPerformance, labelled: WindowPerformance) -> WindowPerformance | None:
    """The performance state of the window's unlabelled rows: their count overall and per segment
    (stored minus labelled), in the stored segment order. None when the two do not fit together
    (segments configured differently, a segment or count the stored hour does not have)."""
    if set(stored.segments) != set(labelled.segments):
        return None
    task, scored = labelled.overall.task, labelled.overall.scored

    def rows_only(rows: int, segment: bool) -> PerformanceState | None:
        if rows < 0:
            return None
        # As ``PerformanceState.of_rows`` leaves rows without a label: counted, nothing else.
        state = PerformanceState(task, rows=rows, scored=scored)
        if segment and scored and task == "classification":
            state.score_counts = ScoreCounts(grid=SEGMENT_AUC_GRID)
        return state

    overall = rows_only(stored.overall.rows - labelled.overall.rows, False)
    if overall is None:
        return None
    segments: dict[str, dict[str, PerformanceState]] = {}
    for feature, states in stored.segments.items():
        mine = labelled.segments[feature]
        if not set(mine) <= set(states):
            return None
        segments[feature] = {}
        for name, state in states.items():
            rest = rows_only(state.rows - (mine[name].rows if name in mine else 0), True)
            if rest is None:
                return None
            segments[feature][name] = rest
    return WindowPerformance(overall, segments, True)


def with_labels(stored: ModelProfile, labelled: ModelProfile) -> ModelProfile | None:
    """The stored hour with its label-dependent parts rebuilt from its labelled rows (``labelled``,
    folded by :func:`labelled_part`); None when they do not fit (see the module docstring)."""
    unlabelled = stored.row_count - labelled.row_count
    if unlabelled < 0:
        return None
    if {k for k in LABEL_STATES if k in stored.states} != {k for k in LABEL_STATES if k in labelled.states}:
        return None
    features = dict(stored.features)
    for column, profile in labelled.features.items():
        if column not in stored.features:
            return None
        # The unlabelled rows first, as nulls: merging with nothing leaves the labelled sums as they are.
        features[column] = _as_nulls(profile, unlabelled).merge(profile)  # type: ignore[arg-type]
    states = dict(stored.states)
    performance = labelled.states.get(PERFORMANCE_STATE)
    if isinstance(performance, WindowPerformance):
        kept = stored.states[PERFORMANCE_STATE]
        rest = _unlabelled_rows(kept, performance) if isinstance(kept, WindowPerformance) else None
        if rest is None:
            return None
        states[PERFORMANCE_STATE] = rest.merge(performance)
    if CONCEPT_STATE in labelled.states:
        states[CONCEPT_STATE] = labelled.states[CONCEPT_STATE]
    return ModelProfile(stored.row_count, features, stored.fitted, states)


def relabelled_profile(
    databases: Databases, model_config: ModelConfig, window: Window, reference: ModelProfile | None
) -> ModelProfile | None:
    """The hour's profile with its current labels, from its stored profile and only its labelled
    rows (read with ``WHERE label IS NOT NULL``); None when that cannot be done exactly (no
    reference or stored hour, another row count in the log now, another configuration)."""
    if reference is None or model_config.label_field is None:
        return None
    stored = load_window_profiles(
        databases.results, model_config.name, reference.stored_definition(), reference, window.start, window.end
    )
    if (
        len(stored) != 1
        or window_row_count(databases.data, model_config, window.start, window.end) != stored[0].row_count
    ):
        return None  # rows logged into the hour since it was profiled: only a full read counts them
    numeric, categorical = profiled_columns(model_config)
    labelled: ModelProfile | None = None
    for block in iter_rows(
        databases.data, model_config, window.start, window.end, only=numeric + categorical, labelled_only=True
    ):
        part = labelled_part(block, model_config, reference)
        labelled = part if labelled is None else labelled.merge(part)
    assert labelled is not None  # iter_rows yields at least one block
    return with_labels(stored[0], labelled)
