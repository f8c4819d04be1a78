"""``driftline promote`` / the ``promote`` flow / ``promote_model``: the explicit promotion step."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from prefect.artifacts import Artifact
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterName
from typer.testing import CliRunner

from driftline.cli.commands import app
from driftline.config.monitors import load_config
from driftline.core.errors import ConfigError
from driftline.storage.retrains import claim_retrain, retrain_runs
from driftline.tasks.promotion import promote_model
from driftline.tasks.references import resolve_reference
from tests.conftest import DAY

pytestmark = pytest.mark.usefixtures("prefect_api")
H = timedelta(hours=1)


@pytest.fixture
def clean(store: sa.Engine) -> sa.Engine:
    with store.begin() as connection:
        connection.execute(sa.text("TRUNCATE driftline.reference_versions"))
    return store


def _runs(prefix: str) -> list[object]:
    with get_client(sync_client=True) as client:
        return client.read_flow_runs(flow_run_filter=FlowRunFilter(name=FlowRunFilterName(like_=prefix)))


def test_promote_command_records_a_version_from_effective_from_and_closes_the_request(
    clean: sa.Engine, loan_config: Path
) -> None:
    config = load_config(loan_config)
    model = config.model("loan")
    request_id, _ = claim_retrain(clean, "loan", "drift", None, 24)
    result = CliRunner().invoke(
        app,
        [
            "promote",
            "--config",
            str(loan_config),
            "--model",
            "loan",
            "--version",
            "v2",
            "--reference-start",
            (DAY + 12 * H).isoformat(),
            "--reference-end",
            (DAY + 18 * H).isoformat(),
            "--effective-from",
            (DAY + 18 * H).isoformat(),
            "--note",
            "reviewed",
            "--by",
            "ana",
            "--retrain-run-id",
            str(request_id),
        ],
    )
    assert result.exit_code == 0, result.output
    assert "reference version 0 -> 1" in result.output
    # Windows before effective_from keep the configured reference; from it on, version 1.
    assert resolve_reference(clean, model, DAY + 17 * H).version == 0
    promoted = resolve_reference(clean, model, DAY + 18 * H)
    assert (promoted.version, promoted.model_version, promoted.start, promoted.end) == (
        1,
        "v2",
        DAY + 12 * H,
        DAY + 18 * H,
    )
    assert promoted.note == "reviewed" and promoted.promoted_by == "ana"
    (request,) = retrain_runs(clean, "loan")
    assert request["status"] == "promoted" and request["details"]["promotion"]["version"] == "v2"
    # A run in the UI, named by its outcome, with a table artifact of the decision.
    (run,) = [r for r in _runs("promote-loan-v2%") if r.state is not None and r.state.is_final()]
    assert run.name == "promote-loan-v2: promoted" and run.state.name == "Promoted"
    artifact = Artifact.get("promotion-loan")
    assert artifact is not None
    rows = {
        r["item"]: r["value"] for r in (artifact.data if isinstance(artifact.data, list) else json.loads(artifact.data))
    }
    assert rows["decision"] == "promoted" and rows["reference before"].startswith("version 0")
    assert rows["reference after"].startswith("version 1") and rows["effective from"].startswith("2026-03-03T18:00")


def test_too_small_or_half_given_references_are_refused_and_nothing_is_recorded(
    clean: sa.Engine, loan_config: Path
) -> None:
    one_hour = CliRunner().invoke(
        app,
        [
            "promote",
            "--config",
            str(loan_config),
            "--model",
            "loan",
            "--version",
            "v3",
            "--reference-start",
            (DAY + 12 * H).isoformat(),
            "--reference-end",
            (DAY + 13 * H).isoformat(),
        ],
    )
    assert one_hour.exit_code == 2 and "promotion refused" in one_hour.output and "min_rows" in one_hour.output
    half = CliRunner().invoke(
        app,
        [
            "promote",
            "--config",
            str(loan_config),
            "--model",
            "loan",
            "--version",
            "v3",
            "--reference-start",
            (DAY + 12 * H).isoformat(),
        ],
    )
    assert half.exit_code == 2 and "both reference_start and reference_end" in half.output
    with clean.connect() as connection:
        assert connection.execute(sa.text("SELECT count(*) FROM driftline.reference_versions")).scalar_one() == 0
    refused = [r for r in _runs("promote-loan-v3%") if r.state is not None and r.state.is_final()]
    assert refused and {r.name for r in refused} == {"promote-loan-v3: refused"}
    assert {r.state.name for r in refused} == {"Refused"}
    # The Python door: a retrain request of another model is not this promotion's to close.
    other, _ = claim_retrain(clean, "eta", "drift", None, 0)
    with pytest.raises(ConfigError, match="not one of its retrain requests"):
        promote_model(clean, load_config(loan_config).model("loan"), version="v4", retrain_run_id=other)


def test_a_promotion_without_a_range_is_a_warm_up(clean: sa.Engine, loan_config: Path) -> None:
    model = load_config(loan_config).model("loan")
    outcome = promote_model(clean, model, version="v5", effective_from=DAY + 20 * H, promoted_by="test")
    assert outcome["reference"]["warmup"] and outcome["reference_version"] == 1
    assert outcome["events"], "driftline.retrain.promoted was emitted (or kept in the outbox)"
    warm = resolve_reference(clean, model, DAY + 21 * H)
    assert warm.warmup and warm.not_ready_reason(DAY + 21 * H) is not None
