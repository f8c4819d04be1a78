"""The Grafana dashboard: every query runs against the real migrated schema and returns rows."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from driftline.tasks.report.synthetic import store_results, synthetic_results

DASHBOARD = Path(__file__).resolve().parents[2] / "deployments" / "grafana" / "driftline.json"
START = datetime(2026, 3, 10, tzinfo=UTC)
HOURS = 24
FEATURES = [("income", "numeric"), ("age", "numeric"), ("it's", "categorical")]
DATASOURCE = {"type": "grafana-postgresql-datasource", "uid": "${datasource}"}
ALERT_RULES = DASHBOARD.parent / "alert-rules.yaml"
#: Where the model's latest results are, whatever the time range (the "latest results" link uses them).
LATEST_VARIABLES = ("variable 'latest_to'", "variable 'latest_from'")


def panels(items: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for item in items:
        yield item
        yield from panels(item.get("panels", []))


def queries(dashboard: dict[str, Any]) -> list[tuple[str, str]]:
    """(where, SQL) of every panel target and every query variable."""
    found = [
        (f"panel {p['title']!r}", target["rawSql"])
        for p in panels(dashboard["panels"])
        for target in p.get("targets", [])
    ]
    found += [
        (f"variable {v['name']!r}", v["query"] if isinstance(v["query"], str) else v["query"]["rawSql"])
        for v in dashboard["templating"]["list"]
        if v["type"] == "query"
    ]
    return found


def sql_string(values: list[str]) -> str:
    """Grafana's ``${var:sqlstring}``: each value quoted, quotes doubled, comma-separated."""
    return ",".join("'" + v.replace("'", "''") + "'" for v in values)


def substitute(sql: str, variables: dict[str, list[str]], start: datetime, end: datetime) -> str:
    """Expand Grafana's macros and variables the way its PostgreSQL data source does."""
    frm, to = (f"'{t.isoformat().replace('+00:00', 'Z')}'" for t in (start, end))
    sql = re.sub(r"\$__timeFilter\(([^)]+)\)", lambda m: f"{m.group(1).strip()} BETWEEN {frm} AND {to}", sql)
    sql = sql.replace("$__timeFrom()", frm).replace("$__timeTo()", to)
    for name, values in variables.items():
        sql = sql.replace(f"${{{name}:sqlstring}}", sql_string(values))
        sql = re.sub(rf"\$\{{{name}\}}|\${name}\b", ",".join(values), sql)
    return sql


@pytest.fixture
def seeded(store: sa.Engine) -> sa.Engine:
    results, runs = synthetic_results("loan", FEATURES, START, HOURS, drift_from=12, drifting=["income"], seed=9)
    other, other_runs = synthetic_results("eta", FEATURES[:1], START, 2, seed=1)
    runs[-1] |= {"status": "failed"}
    store_results(store, results + other, runs + other_runs)
    with store.begin() as connection:
        connection.execute(
            sa.text("UPDATE driftline.runs SET error = 'boom' WHERE status = 'failed'"),
        )
    return store


def test_dashboard_shape() -> None:
    dashboard = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == DATASOURCE["type"]
    assert {"model", "feature", "metric"} <= set(variables)
    data_panels = [p for p in panels(dashboard["panels"]) if p["type"] != "row"]
    assert len(data_panels) >= 10
    titles = " ".join(p["title"].lower() for p in data_panels)
    for topic in ("drift per feature", "drift metrics", "performance", "label coverage", "data-quality", "volume"):
        assert topic in titles
    for p in data_panels:
        assert p["datasource"] == DATASOURCE, p["title"]
        for target in p["targets"]:
            assert target["datasource"] == DATASOURCE and target["rawQuery"] is True
            assert target["format"] in ("time_series", "table")
            if target["format"] == "time_series":
                assert re.search(r'AS "time"', target["rawSql"]), p["title"]
    # Panels do not overlap on the 24-column grid.
    cells: set[tuple[int, int]] = set()
    for p in panels(dashboard["panels"]):
        g = p["gridPos"]
        assert g["x"] + g["w"] <= 24
        area = {(x, y) for x in range(g["x"], g["x"] + g["w"]) for y in range(g["y"], g["y"] + g["h"])}
        assert not (cells & area), p["title"]
        cells |= area


def test_every_query_returns_rows_from_the_migrated_schema(seeded: sa.Engine) -> None:
    dashboard = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    variables = {
        "model": ["loan"],
        "feature": [name for name, _ in FEATURES],
        "metric": ["ks", "psi", "jensen_shannon", "wasserstein", "chi_square", "unseen_share"],
    }
    found = queries(dashboard)
    assert len(found) >= 15
    raw = seeded.raw_connection()  # psycopg itself: no bind-parameter parsing of the SQL text
    try:
        for where, sql in found:
            expanded = substitute(sql, variables, START, START + timedelta(hours=HOURS))
            assert "$" not in expanded, f"{where}: unexpanded macro or variable in {expanded}"
            with raw.cursor() as cursor:
                cursor.execute(expanded)
                rows = cursor.fetchall()
            assert rows, f"{where} returned no rows"
            if "model = 'loan'" in expanded and "driftline.results" in expanded and "DISTINCT" not in expanded:
                assert "eta" not in str(rows), f"{where} leaks another model's rows"
    finally:
        raw.close()


def test_status_and_feature_queries_give_the_right_answers(seeded: sa.Engine) -> None:
    dashboard = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    by_title = {p["title"]: p["targets"][0]["rawSql"] for p in panels(dashboard["panels"]) if p.get("targets")}
    variables = {"model": ["loan"], "feature": ["income", "it's"], "metric": ["ks"]}
    end = START + timedelta(hours=HOURS)
    with seeded.connect() as connection:
        heat = connection.exec_driver_sql(
            substitute(by_title["Data drift per feature (worst metric)"], variables, START, end)
        ).all()
        latest = (
            connection.exec_driver_sql(substitute(by_title["Latest window: drift verdicts"], variables, START, end))
            .mappings()
            .all()
        )
        failures = (
            connection.exec_driver_sql(substitute(by_title["Failed data-quality expectations"], variables, START, end))
            .mappings()
            .all()
        )
        run_log = (
            connection.exec_driver_sql(substitute(by_title["Run log (latest first)"], variables, START, end))
            .mappings()
            .all()
        )
    # The feature variable filters (age is not selected) and the quote in "it's" survives sqlstring.
    assert {row.metric for row in heat} == {"income", "it's"}
    assert len(heat) == 2 * HOURS
    income = {row.time.astimezone(UTC): row.value for row in heat if row.metric == "income"}
    assert income[START] == 0 and income[START + timedelta(hours=HOURS - 1)] == 3
    assert {row["feature"] for row in latest} == {"income", "it's"}
    assert latest[0]["status"] == "alert" and latest[0]["feature"] == "income"
    assert all(row["window_start"].astimezone(UTC) == end - timedelta(hours=1) for row in latest)
    assert failures[0]["expectation"] == "expect_column_values_to_not_be_null"
    assert failures[0]["column"] == "it's"
    assert run_log[0]["status"] == "failed" and run_log[0]["error"] == "boom"


def test_panels_show_hourly_windows_only_and_variables_follow_the_time_range() -> None:
    """Day and week rows (``driftline run --resolution day``) would show as extra windows; the model
    list must not scan the whole history (a loose index scan), the feature lists only the range."""
    dashboard = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    for where, sql in queries(dashboard):
        if where == "variable 'model'":
            assert sql.startswith("WITH RECURSIVE") and "DISTINCT" not in sql
            continue
        if "driftline.results" not in sql:
            continue  # the run log has no resolution
        assert "resolution = 'hour'" in sql, where
        if where.startswith("variable") and where not in LATEST_VARIABLES:
            assert "$__timeFilter(window_start)" in sql, where


def test_the_latest_results_are_one_click_away_whatever_the_range(seeded: sa.Engine) -> None:
    """The default range (the last 7 days of the clock) may hold nothing (a replayed log, the demo): the
    top panel names the model's latest window and the dashboard link jumps to the 7 days up to it."""
    dashboard = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    link = dashboard["links"][0]
    assert "from=${latest_from}&to=${latest_to}" in link["url"] and "var-model=${model}" in link["url"]
    assert variables["latest_to"]["hide"] == 2 and variables["latest_from"]["hide"] == 2
    top = dashboard["panels"][0]
    assert top["gridPos"]["y"] == 0 and top["type"] == "stat"
    far_away = (datetime(2030, 1, 1, tzinfo=UTC), datetime(2030, 1, 8, tzinfo=UTC))  # a range with no results
    with seeded.connect() as connection:
        to = connection.exec_driver_sql(substitute(variables["latest_to"]["query"], {"model": ["loan"]}, *far_away))
        frm = connection.exec_driver_sql(
            substitute(variables["latest_from"]["query"], {"model": ["loan"]}, *far_away)
        ).scalar_one()
        latest = connection.exec_driver_sql(
            substitute(top["targets"][0]["rawSql"], {"model": ["loan"]}, *far_away)
        ).one()
        to_ms = to.scalar_one()
    end = START + timedelta(hours=HOURS)
    assert to_ms == int(end.timestamp() * 1000) and frm == to_ms - 7 * 24 * 3600 * 1000
    assert latest[0].astimezone(UTC) == end and latest[1] > 0


def test_alert_rules_fire_on_alerts_failures_and_silence(seeded: sa.Engine) -> None:
    """Each provisioned rule's query runs on the migrated schema and gives the value its threshold
    judges, per model: loan has alerts, eta has a failed run, and both fall silent after 3 hours."""
    import yaml

    document = yaml.safe_load(ALERT_RULES.read_text(encoding="utf-8"))
    rules = {rule["uid"]: rule for group in document["groups"] for rule in group["rules"]}
    assert set(rules) == {"driftline-model-alerts", "driftline-failed-runs", "driftline-silent"}
    end = START + timedelta(hours=HOURS)
    values: dict[str, dict[str, float]] = {}
    with seeded.connect() as connection:
        connection.exec_driver_sql("UPDATE driftline.runs SET finished_at = window_end")
        for uid, rule in rules.items():
            steps = {step["refId"]: step for step in rule["data"]}
            assert rule["condition"] in steps and steps["A"]["datasourceUid"] == "${DRIFTLINE_GRAFANA_DATASOURCE_UID}"
            threshold = steps[rule["condition"]]["model"]
            assert threshold["type"] == "threshold" and threshold["expression"] == "B"
            window = timedelta(seconds=steps["A"]["relativeTimeRange"]["from"])
            sql = substitute(steps["A"]["model"]["rawSql"], {}, end - window, end + timedelta(hours=4))
            assert "$" not in sql, sql
            level = threshold["conditions"][0]["evaluator"]["params"][0]
            values[uid] = {model: float(value) for model, value in connection.exec_driver_sql(sql).all()}
            values[uid + ":fires"] = {m: v > level for m, v in values[uid].items()}  # type: ignore[misc]
    # loan's last three hours alert on income; eta has no window in them.
    assert set(values["driftline-model-alerts"]) == {"loan"} and values["driftline-model-alerts"]["loan"] > 0
    assert values["driftline-model-alerts:fires"] == {"loan": True}
    assert values["driftline-failed-runs"] == {"loan": 1.0}  # loan's last window failed
    # Evaluated 4 hours after loan's last window ended: loan silent 4 h, eta (2 windows at the start) 26 h.
    assert values["driftline-silent"] == {"loan": 4.0, "eta": 26.0}
    assert values["driftline-silent:fires"] == {"loan": True, "eta": True}
