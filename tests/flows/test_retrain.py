"""The retrain flow on a real Prefect API (test harness) and a real PostgreSQL."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import sqlalchemy as sa
from prefect.artifacts import Artifact
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterState, FlowRunFilterStateType
from prefect.client.schemas.objects import StateType
from prefect.flow_runs import resume_flow_run
from prefect.input.actions import read_flow_run_input
from prefect.input.run_input import keyset_from_paused_state

from driftline.config.monitors import ModelConfig
from driftline.flows.retrain import retrain
from driftline.storage.retrains import retrain_runs
from driftline.tasks.references import effective_reference_range, set_reference_override, with_effective_reference
from tests.conftest import REFERENCE_END, REFERENCE_START, create_log_table, model_entry, write_config

pytestmark = pytest.mark.usefixtures("prefect_api")
MY_TABLES = (
    "driftline.outbox, driftline.incidents, driftline.model_versions, driftline.reference_overrides, "
    "driftline.retrain_runs, driftline.reference_versions"
)
DAY_10 = datetime(2026, 3, 10, tzinfo=UTC)
LOG_START = REFERENCE_START + timedelta(days=2)  # two days after the configured reference
HOURS = 48


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1 / (1 + np.exp(-x))


def seed_log(engine: sa.Engine, schema: str, relation: str) -> None:
    """48 hours x 60 rows. ``linear``: the label follows income, the logged score is noise (a stale
    model). ``nonlinear``: the label follows |income - 50k|, which the logged score knows exactly and
    a linear candidate cannot learn."""
    table = create_log_table(engine, schema, "loan_predictions")
    rng = np.random.default_rng(11)
    n = HOURS * 60
    ts = [LOG_START + timedelta(seconds=float(s)) for s in np.sort(rng.uniform(0, HOURS * 3600, n))]
    income = rng.normal(50_000, 10_000, n)
    if relation == "linear":
        truth = _sigmoid(3 * (income - 50_000) / 10_000)
        score = rng.uniform(size=n)
    else:
        truth = _sigmoid(4 * (np.abs(income - 50_000) / 10_000 - 0.7))
        score = truth
    label = (rng.uniform(size=n) < truth).astype(float)
    rows = [
        {
            "request_id": i + 1,
            "ts": ts[i],
            "income": float(income[i]),
            "age": float(rng.integers(18, 80)),
            "region": str(rng.choice(["north", "south", "east"])),
            "prediction": float(score[i] > 0.5),
            "score": float(score[i]),
            "label": float(label[i]),
            "latency_ms": 20.0,
        }
        for i in range(n)
    ]
    with engine.begin() as connection:
        connection.execute(table.insert(), rows)
        connection.execute(sa.text(f"TRUNCATE {MY_TABLES}"))


def config_for(tmp_path: Path, schema: str, database_url: str, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.delenv("DRIFTLINE_DATABASE_URL", raising=False)
    monkeypatch.delenv("DRIFTLINE_RESULTS_URL", raising=False)
    path = write_config(tmp_path / "monitors.yaml", [model_entry("loan", f"{schema}.loan_predictions")], database_url)
    return str(path)


def run_of(state: Any) -> Any:
    """The flow run a state belongs to, as the UI lists it (name, state name)."""
    with get_client(sync_client=True) as client:
        return client.read_flow_run(state.state_details.flow_run_id)


def artifact_rows(key: str) -> dict[str, str]:
    artifact = Artifact.get(key)
    assert artifact is not None, key
    table = artifact.data if isinstance(artifact.data, list) else __import__("json").loads(artifact.data)
    return {row["item"]: row["value"] for row in table}


def versions(engine: sa.Engine) -> list[dict[str, Any]]:
    with engine.connect() as connection:
        return [
            dict(r)
            for r in connection.execute(
                sa.text(
                    "SELECT model, version, estimator, metric, score, baseline_score, baseline_source, "
                    "train_start, train_end"
                    " FROM driftline.model_versions ORDER BY version"
                )
            ).mappings()
        ]


def test_better_candidate_is_promoted_and_moves_the_reference(
    engine: sa.Engine, log_schema: str, tmp_path: Path, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    seed_log(engine, log_schema, "linear")
    config_path = config_for(tmp_path, log_schema, database_url, monkeypatch)
    state = retrain(
        "loan", reason="drift", config_path=config_path, lookback_hours=HOURS, require_approval=False, return_state=True
    )
    outcome = state.result()
    assert outcome["status"] == "promoted" and outcome["version"] == 1
    # The outcome by name, in the run list and on its state, with a table artifact of the decision.
    assert state.name == "Promoted" and run_of(state).name == "retrain-loan: promoted"
    decision = artifact_rows("retrain-loan")
    assert decision["decision"] == "promoted" and decision["reference before"].startswith("version 0")
    assert decision["reference after"].startswith("version 1") and decision["model version"] == "1"
    assert float(decision["holdout roc_auc: candidate"]) > 0.8 and decision["incumbent"] == "logged predictions"
    assert "training data" in decision and "holdout" in decision
    assert outcome["metric"] == "roc_auc"
    assert outcome["scores"]["candidate"] > 0.8 > 0.6 > outcome["scores"]["logged predictions"]
    (version,) = versions(engine)
    assert version["estimator"] == "LogisticRegression" and version["baseline_source"] == "logged predictions"
    assert version["train_start"] == LOG_START and version["train_end"] == LOG_START + timedelta(hours=HOURS)
    model = ModelConfig.model_validate(model_entry("loan", f"{log_schema}.loan_predictions"))
    assert (model.reference.start, model.reference.end) == (REFERENCE_START, REFERENCE_END)
    assert effective_reference_range(engine, model) == (LOG_START, LOG_START + timedelta(hours=HOURS))
    moved = with_effective_reference(engine, model)
    assert moved.reference.start == LOG_START and moved.reference_definition() != model.reference_definition()
    # Editing monitors.yaml's reference afterwards wins over the retrain's override.
    edited = model.model_copy(
        update={"reference": model.reference.model_copy(update={"end": REFERENCE_END + timedelta(hours=1)})}
    )
    assert effective_reference_range(engine, edited) == (REFERENCE_START, REFERENCE_END + timedelta(hours=1))
    assert outcome["events"], "driftline.retrain.promoted was emitted (or queued)"
    # A second trigger within the cooldown (drift and performance in the same hour) is skipped.
    again = retrain("loan", reason="performance", config_path=config_path, lookback_hours=HOURS, return_state=True)
    assert again.result()["status"] == "skipped"
    assert again.name == "Skipped: cooldown" and run_of(again).name == "retrain-loan: skipped (cooldown)"
    assert [r["status"] for r in retrain_runs(engine, "loan")] == ["promoted", "skipped"]
    assert len(versions(engine)) == 1


def test_triggered_by_a_window_trains_as_of_it_and_moves_the_reference_to_it(
    engine: sa.Engine, log_schema: str, tmp_path: Path, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What the automation passes: the alerting window. Training stops at its end (later rows exist
    but were not known then), and the new reference is that window, so the next hour is judged
    against the data the problem started with, not against a week that is mostly the old regime."""
    seed_log(engine, log_schema, "linear")
    config_path = config_for(tmp_path, log_schema, database_url, monkeypatch)
    window_start, window_end = LOG_START + timedelta(hours=40), LOG_START + timedelta(hours=41)
    outcome = retrain(
        "loan",
        reason="drift",
        config_path=config_path,
        lookback_hours=HOURS,
        require_approval=False,
        window_start=window_start.isoformat(),  # as rendered from the event's payload
        window_end=window_end.isoformat(),
    )
    assert outcome["status"] == "promoted", outcome
    (version,) = versions(engine)
    assert version["train_start"] == LOG_START and version["train_end"] == window_end
    # The window holds 60 rows, fewer than reference.min_rows (1,000): not a reference to judge hours
    # against. The promotion is a warm-up instead: the new model's first 24 hours from the window's end.
    assert outcome["warmup"] is True
    warmup = (window_end, window_end + timedelta(hours=24))
    assert (outcome["reference_start"], outcome["reference_end"]) == tuple(t.isoformat() for t in warmup)
    model = ModelConfig.model_validate(model_entry("loan", f"{log_schema}.loan_predictions"))
    assert effective_reference_range(engine, model) == warmup
    # With a reference.min_rows the window meets, the window itself becomes the reference.
    with engine.begin() as connection:
        connection.execute(sa.text(f"TRUNCATE {MY_TABLES}, driftline.reference_versions"))
    small = model_entry("loan", f"{log_schema}.loan_predictions")
    small["reference"] = small["reference"] | {"min_rows": 50}
    write_config(Path(config_path), [small], database_url)
    outcome = retrain(
        "loan",
        reason="drift",
        config_path=config_path,
        lookback_hours=HOURS,
        require_approval=False,
        window_start=window_start.isoformat(),
        window_end=window_end.isoformat(),
    )
    assert outcome["status"] == "promoted" and outcome["warmup"] is False, outcome
    assert (outcome["reference_start"], outcome["reference_end"]) == (window_start.isoformat(), window_end.isoformat())
    model = ModelConfig.model_validate(small)
    assert effective_reference_range(engine, model) == (window_start, window_end)


def test_worse_candidate_is_rejected_and_nothing_moves(
    engine: sa.Engine, log_schema: str, tmp_path: Path, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    seed_log(engine, log_schema, "nonlinear")
    config_path = config_for(tmp_path, log_schema, database_url, monkeypatch)
    state = retrain(
        "loan", reason="drift", config_path=config_path, lookback_hours=HOURS, cooldown_hours=0, return_state=True
    )
    outcome = state.result()
    assert outcome["status"] == "rejected", outcome
    assert state.name == "Rejected" and run_of(state).name == "retrain-loan: rejected"
    assert artifact_rows("retrain-loan")["decision"] == "rejected"
    assert outcome["scores"]["logged predictions"] > outcome["scores"]["candidate"]
    assert versions(engine) == []
    model = ModelConfig.model_validate(model_entry("loan", f"{log_schema}.loan_predictions"))
    assert effective_reference_range(engine, model) == (REFERENCE_START, REFERENCE_END)
    assert with_effective_reference(engine, model) is model
    (run,) = retrain_runs(engine, "loan")
    assert run["status"] == "rejected" and run["details"]["why"].startswith("the candidate does not beat the incumbent")


def test_approval_gate_pauses_until_a_person_approves(
    engine: sa.Engine, log_schema: str, tmp_path: Path, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    seed_log(engine, log_schema, "linear")
    config_path = config_for(tmp_path, log_schema, database_url, monkeypatch)
    outcomes: list[dict[str, Any]] = []
    runner = threading.Thread(
        target=lambda: outcomes.append(
            retrain(
                "loan",
                reason="drift",
                config_path=config_path,
                require_approval=True,
                lookback_hours=HOURS,
                approval_timeout_s=60,
            )
        )
    )
    runner.start()
    paused = FlowRunFilter(state=FlowRunFilterState(type=FlowRunFilterStateType(any_=[StateType.PAUSED])))
    deadline = time.monotonic() + 45
    waiting = []
    while not waiting and time.monotonic() < deadline:
        time.sleep(0.5)
        with get_client(sync_client=True) as client:
            waiting = [r for r in client.read_flow_runs(flow_run_filter=paused) if r.name.startswith("retrain-loan")]
    assert waiting, "the retrain paused for approval"
    assert versions(engine) == [], "nothing is promoted before the approval"
    (paused_run,) = waiting
    # The UI lists it as awaiting approval; the Resume form shows both scores and the data judged on.
    assert paused_run.name == "retrain-loan: awaiting approval"
    description = read_flow_run_input(keyset_from_paused_state(paused_run.state)["description"], paused_run.id)
    assert "| candidate |" in description and "| logged predictions |" in description
    assert "incumbent: **logged predictions**" in description and "judged on the newest" in description
    assert artifact_rows("retrain-loan")["decision"] == "awaiting approval"
    (pending,) = retrain_runs(engine, "loan")
    assert pending["status"] == "running" and pending["details"]["phase"] == "awaiting approval"
    resume_flow_run(waiting[0].id, run_input={"approve": True, "note": "looks good"})
    runner.join(timeout=45)
    assert not runner.is_alive()
    (outcome,) = outcomes
    assert outcome["status"] == "promoted" and outcome["approval"] == {"approve": True, "note": "looks good"}
    with get_client(sync_client=True) as client:
        finished = client.read_flow_run(paused_run.id)
    assert finished.name == "retrain-loan: promoted" and finished.state.name == "Promoted"
    assert len(versions(engine)) == 1
    (run,) = retrain_runs(engine, "loan")
    assert run["status"] == "promoted" and run["details"]["approval"]["note"] == "looks good"


def test_rolling_reference_never_reaches_back_before_the_retrain(engine: sa.Engine) -> None:
    with engine.begin() as connection:
        connection.execute(sa.text(f"TRUNCATE {MY_TABLES}"))
    model = ModelConfig.model_validate(model_entry("loan", "public.loan_predictions", reference={"last": "7d"}))
    retrained_from, retrained_to = DAY_10 - timedelta(days=2), DAY_10 - timedelta(hours=3)
    with engine.begin() as connection:
        set_reference_override(
            connection, model, retrained_from, retrained_to, None, "test", effective_from=retrained_from
        )
    # Same day as the retrain: the rolling range (7 days before the window's day) would end before the
    # retrain's data, so the retrain's own range is the reference.
    same_day = effective_reference_range(engine, model, retrained_from + timedelta(hours=5))
    assert same_day == (retrained_from, retrained_to)
    # Later: the rolling range, cut so that it starts at the retrain's data.
    later = effective_reference_range(engine, model, DAY_10 + timedelta(days=1, hours=5))
    assert later == (retrained_from, DAY_10 + timedelta(days=1))
    assert with_effective_reference(engine, model, DAY_10 + timedelta(hours=5)).reference.start == retrained_from
    # A week and more later the rolling range has moved past the retrain: the configured behaviour.
    far = DAY_10 + timedelta(days=20)
    assert effective_reference_range(engine, model, far) == model.reference.span_for(far)
    assert with_effective_reference(engine, model, far).reference.start == far.replace(hour=0) - timedelta(days=7)


def test_the_example_trainer_takes_the_documented_parameters_of_a_retrain_request(
    engine: sa.Engine, log_schema: str, tmp_path: Path, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What retrain-request passes to ``actions.retrain.deployment``: the suggested training range and the
    retrain-log row it recorded (the request applied the cooldown: the trainer does not claim again)."""
    from driftline.storage.retrains import claim_retrain
    from driftline.tasks.promotion import RETRAIN_PARAMETERS, retrain_parameters

    seed_log(engine, log_schema, "linear")
    config_path = config_for(tmp_path, log_schema, database_url, monkeypatch)
    window_start, window_end = LOG_START + timedelta(hours=30), LOG_START + timedelta(hours=31)
    request_id, previous = claim_retrain(engine, "loan", "drift", None, 24)
    assert previous is None
    parameters = retrain_parameters(
        "loan", "drift", "data_drift", "alert", window_start, window_end, 24, "monitor-run-id", request_id
    )
    assert tuple(parameters) == RETRAIN_PARAMETERS
    assert parameters["training_start"] == (window_end - timedelta(hours=24)).isoformat()
    outcome = retrain(**parameters, config_path=config_path, require_approval=False)
    assert outcome["status"] == "promoted" and outcome["retrain_id"] == request_id
    (version,) = versions(engine)
    assert version["train_start"] == window_end - timedelta(hours=24) and version["train_end"] == window_end
    (logged,) = retrain_runs(engine, "loan")
    assert logged["id"] == request_id and logged["status"] == "promoted"
