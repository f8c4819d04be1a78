"""monitors.yaml validation: errors name the file, the model and the key."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from driftline.config.monitors import load_config, parse_config
from driftline.core.errors import ConfigError
from tests.conftest import model_entry


def _write(tmp_path: Path, document: object) -> Path:
    path = tmp_path / "monitors.yaml"
    path.write_text(yaml.safe_dump(document), encoding="utf-8")
    return path


def test_issue_example_parses_exactly_as_written(tmp_path: Path) -> None:
    text = """
models:
  - name: loan                    # [a-z0-9_-]+
    table: loan_predictions       # may be schema-qualified: analytics.loan_predictions
    timestamp_column: ts          # timestamptz
    id_column: request_id         # optional
    task: classification          # or regression
    features:
      numeric: [income, age]
      categorical: [region]
    prediction_column: prediction
    score_column: score           # optional: probability of the positive class
    label_column: label           # optional: ground truth in the same table, NULL until known
    latency_column: latency_ms    # optional
    reference:                    # the rows that define "normal"
      start: "2026-03-01T00:00:00Z"
      end: "2026-03-08T00:00:00Z"
"""
    path = tmp_path / "monitors.yaml"
    path.write_text(text, encoding="utf-8")
    config = load_config(path)
    model = config.model("loan")
    assert model.schema_and_table == (None, "loan_predictions")
    assert model.features.items() == [("income", "numeric"), ("age", "numeric"), ("region", "categorical")]
    assert model.reference.start.isoformat() == "2026-03-01T00:00:00+00:00"
    assert model.columns() == [
        "ts",
        "request_id",
        "income",
        "age",
        "region",
        "prediction",
        "score",
        "label",
        "latency_ms",
    ]


def test_schema_qualified_table() -> None:
    config = parse_config({"models": [model_entry("loan", "analytics.loan_predictions")]})
    assert config.models[0].schema_and_table == ("analytics", "loan_predictions")


def test_explicit_schema_keeps_dotted_table_name() -> None:
    config = parse_config({"models": [model_entry("loan", "odd.name", table_schema="s")]})
    assert config.models[0].schema_and_table == ("s", "odd.name")


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"name": "Loan!"}, "model 'Loan!': name: String should match pattern"),
        ({"task": "ranking"}, "model 'loan': task: Input should be 'classification' or 'regression'"),
        ({"tabel": "x"}, "model 'loan': tabel: unknown key"),
        ({"features": {"numeric": ["a", "a"]}}, "model 'loan': features: column 'a' is listed twice"),
        (
            {"reference": {"start": "2026-03-08T00:00:00Z", "end": "2026-03-01T00:00:00Z"}},
            "model 'loan': reference: start must be before end",
        ),
        ({"drift": {"numeric_metrics": ["nope"]}}, "model 'loan': drift: unknown numeric metric 'nope'"),
        (
            {"drift": {"thresholds": {"psi": {"warning": 0.5, "alert": 0.1}}}},
            "model 'loan': drift.thresholds.psi: warning must not exceed alert",
        ),
    ],
)
def test_errors_name_file_model_and_key(tmp_path: Path, change: dict[str, object], expected: str) -> None:
    entry = model_entry("loan", "t")
    entry.update(change)
    path = _write(tmp_path, {"models": [entry]})
    with pytest.raises(ConfigError) as error:
        load_config(path)
    message = str(error.value)
    assert message.startswith(f"{path}: ")
    assert expected in message
    assert "\n" not in message


def test_missing_required_key_is_named(tmp_path: Path) -> None:
    entry = model_entry("loan", "t")
    del entry["timestamp_column"]
    with pytest.raises(ConfigError, match=r"model 'loan': timestamp_column: Field required"):
        load_config(_write(tmp_path, {"models": [entry]}))


def test_duplicate_model_names(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="model names must be unique; repeated: loan"):
        load_config(_write(tmp_path, {"models": [model_entry("loan", "a"), model_entry("loan", "b")]}))


def test_not_yaml_and_missing_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("models: [unclosed", encoding="utf-8")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(bad)
    with pytest.raises(ConfigError, match="cannot read config"):
        load_config(tmp_path / "absent.yaml")
    with pytest.raises(ConfigError, match="expected a mapping"):
        load_config(_write(tmp_path, ["not", "a", "mapping"]))


def test_unknown_model_lookup_lists_configured() -> None:
    config = parse_config({"models": [model_entry("loan", "t")]})
    with pytest.raises(ConfigError, match="no model named 'eta'; configured: loan"):
        config.model("eta")


def test_reference_definition_changes_with_features() -> None:
    one = parse_config({"models": [model_entry("loan", "t")]}).models[0]
    two = parse_config({"models": [model_entry("loan", "t", features={"numeric": ["income"]})]}).models[0]
    assert one.reference_definition() != two.reference_definition()
    assert (
        one.reference_definition()
        == parse_config({"models": [model_entry("loan", "t")]}).models[0].reference_definition()
    )


def test_rolling_reference_spans_the_days_before_the_window() -> None:
    from datetime import UTC, datetime

    entry = model_entry("loan", "t", reference={"last": "7d"})
    model = parse_config({"models": [entry]}).models[0]
    assert model.reference.rolling
    start, end = model.reference.span_for(datetime(2026, 3, 8, 13, tzinfo=UTC))
    assert (start, end) == (datetime(2026, 3, 1, tzinfo=UTC), datetime(2026, 3, 8, tzinfo=UTC))
    # Every hour of one day shares the reference (one fit a day); the next day moves it.
    same_day = model.reference_definition(datetime(2026, 3, 8, 23, tzinfo=UTC))
    assert model.reference_definition(datetime(2026, 3, 8, 1, tzinfo=UTC)) == same_day
    assert model.reference_definition(datetime(2026, 3, 9, 0, tzinfo=UTC)) != same_day


@pytest.mark.parametrize(
    ("reference", "message"),
    [
        ({"last": "7x"}, "expected a duration like 12h, 7d or 2w"),
        ({"last": "0d"}, "the duration must be positive"),
        ({"last": "7d", "start": "2026-03-01T00:00:00Z"}, "give either start and end, or last, not both"),
        ({"start": "2026-03-01T00:00:00Z"}, "give start and end (a fixed range) or last"),
    ],
)
def test_reference_errors(reference: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError) as error:
        parse_config({"models": [model_entry("loan", "t", reference=reference)]})
    assert message in str(error.value) and "model 'loan': reference" in str(error.value)


def test_an_empty_environment_setting_means_unset(monkeypatch: pytest.MonkeyPatch) -> None:
    from driftline.core.settings import load_settings

    monkeypatch.setenv("DRIFTLINE_REPORTS_DIR", "")
    monkeypatch.setenv("DRIFTLINE_DATABASE_URL", "")
    settings = load_settings()
    assert settings.reports_dir is None  # not Path("."): no reports written into the working directory
    assert settings.database_url is None
