"""Hostile text from users, configs and data: SQL sources, names printed to terminals and Slack, URLs.

Each case ran through the real CLI (typer's runner), a real PostgreSQL and, for Slack, the real
slack-sdk client against a local HTTP server; each failed before its fix (issue #19).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from driftline.cli.commands import app

pytestmark = pytest.mark.timeout(180)


def _one_line_error(outcome: object) -> str:
    assert outcome.exit_code == 2, outcome.output  # type: ignore[attr-defined]
    lines = [line for line in outcome.stderr.splitlines() if line.strip()]  # type: ignore[attr-defined]
    assert len(lines) == 1, outcome.stderr  # type: ignore[attr-defined]
    return lines[0]


@pytest.fixture
def batch_table(engine: sa.Engine, log_schema: str) -> str:
    rng = np.random.default_rng(13)
    pd.DataFrame({"income": rng.normal(50, 10, 400), "region": rng.choice(["n", "s"], 400)}).to_sql(
        "batch_rows", engine, schema=log_schema, index=False
    )
    return f'"{log_schema}".batch_rows'


def _row_count(engine: sa.Engine, table: str) -> int:
    with engine.connect() as connection:
        return int(connection.execute(sa.text(f"SELECT count(*) FROM {table}")).scalar_one())


@pytest.mark.parametrize(
    "hostile",
    [
        "SELECT income, region FROM {t}; COMMIT; DROP TABLE {t}",
        "SELECT income, region FROM {t}; DELETE FROM {t}",
        "WITH gone AS (DELETE FROM {t} RETURNING *) SELECT income, region FROM gone",
        "SELECT income, region FROM {t}; COMMIT; SET SESSION CHARACTERISTICS AS TRANSACTION READ WRITE; DROP TABLE {t}",
    ],
    ids=["commit-then-drop", "second-statement", "data-modifying-cte", "read-write-again"],
)
def test_compare_sql_source_is_one_read_only_statement(
    hostile: str, engine: sa.Engine, batch_table: str, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """#19.13: `driftline compare` with a SQL source dropped a table (`…; COMMIT; DROP TABLE x`)."""
    monkeypatch.setenv("DRIFTLINE_DATABASE_URL", database_url)
    before = _row_count(engine, batch_table)
    clean = f"SELECT income, region FROM {batch_table}"
    outcome = CliRunner().invoke(
        app, ["compare", "--reference", clean, "--current", hostile.format(t=batch_table), "--format", "json"]
    )
    line = _one_line_error(outcome)
    assert "SQL source" in line, line
    assert _row_count(engine, batch_table) == before, "the hostile source changed the table"
    # The same command with a plain SELECT (a trailing semicolon is one statement) still works.
    fine = CliRunner().invoke(app, ["compare", "--reference", clean, "--current", clean + ";", "--format", "json"])
    assert fine.exit_code == 0, fine.output
    assert {r["feature"] for r in json.loads(fine.stdout)} >= {"income", "region"}


def test_compare_sql_source_error_is_one_line(
    batch_table: str, database_url: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("DRIFTLINE_DATABASE_URL", database_url)
    outcome = CliRunner().invoke(
        app, ["compare", "--reference", "SELECT * FROM no_such_table", "--current", "SELECT 1 AS x"]
    )
    assert "no_such_table" in _one_line_error(outcome)


SECRET_TAIL = "S3CRET-tail"
PASSWORDS_WITH_AT = [f"pa@ss-{SECRET_TAIL}", f"p@ss:{SECRET_TAIL}/x", f"a/b@{SECRET_TAIL}?q", f"@@{SECRET_TAIL}@"]


def _url(database_url: str, password: str, port: int | None = None) -> str:
    parsed = sa.make_url(database_url)
    where = f"{parsed.host}:{port or parsed.port or 5432}"
    return f"{parsed.drivername}://{parsed.username}:{password}@{where}/{parsed.database}"


def _unused_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.mark.parametrize("password", PASSWORDS_WITH_AT, ids=["at", "at-colon-slash", "slash-at-question", "many-ats"])
def test_unencoded_at_in_a_password_is_parsed_and_never_echoed(
    password: str, engine: sa.Engine, database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """#19.9: an unencoded ``@`` in a URL password echoed the password's tail (read as the host name)."""
    from driftline.storage.engine import normalise_url
    from tests.conftest import model_entry, write_config

    config = write_config(tmp_path / "m.yaml", [model_entry("loan", "t")])
    # Unreachable port: the error names the host and port, never a part of the password.
    monkeypatch.setenv("DRIFTLINE_DATABASE_URL", _url(database_url, password, _unused_port()))
    failed = CliRunner().invoke(app, ["db", "upgrade", "--config", str(config)])
    line = _one_line_error(failed)
    assert "127.0.0.1" in line, line
    for fragment in (SECRET_TAIL, "S3CRET", password):
        assert fragment not in line, f"{fragment!r} echoed: {line}"
    # The same URL on the real server (trust auth accepts any password) connects: the parse is right.
    good = _url(database_url, password)
    parsed = sa.make_url(normalise_url(good))
    assert (parsed.host, parsed.password, parsed.username) == (
        "127.0.0.1",
        password,
        sa.make_url(database_url).username,
    )
    monkeypatch.setenv("DRIFTLINE_DATABASE_URL", good)
    ok = CliRunner().invoke(app, ["db", "upgrade", "--config", str(config)])
    assert ok.exit_code == 0, ok.output
    assert "results schema at revision" in ok.stdout and "S3CRET" not in ok.output


MARKUP_COLUMN = "[/]"
LINK_COLUMN = "[link=https://evil.example]region[/link]"


@pytest.mark.usefixtures("prefect_api")
def test_names_that_look_like_terminal_markup_print_as_they_are(
    engine: sa.Engine,
    store: sa.Engine,
    loan_log: dict[str, object],
    tmp_path: Path,
    database_url: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """#19.8: a column named ``[/]`` crashed `run`'s summary and `results` after the results were stored;
    ``[link=...]`` became a hyperlink."""
    import driftline.cli.commands as cli
    from tests.conftest import model_entry, write_config

    monkeypatch.delenv("DRIFTLINE_DATABASE_URL", raising=False)
    monkeypatch.setattr(cli.console, "width", 400)  # one line per row, so names are searched whole
    table = str(loan_log["table"])
    schema, name = table.split(".")
    preparer = sa.dialects.postgresql.dialect().identifier_preparer
    with engine.begin() as connection:
        for old, new in (("income", MARKUP_COLUMN), ("region", LINK_COLUMN)):
            connection.execute(
                sa.text(
                    f"ALTER TABLE {preparer.quote(schema)}.{preparer.quote(name)} "
                    f"RENAME COLUMN {old} TO {preparer.quote(new)}"
                )
            )
    entry = model_entry("loan", table, features={"numeric": [MARKUP_COLUMN, "age"], "categorical": [LINK_COLUMN]})
    config = write_config(tmp_path / "m.yaml", [entry], database_url)
    runner = CliRunner()
    ran = runner.invoke(
        app, ["run", "--config", str(config), "--start", "2026-03-03T12:00Z", "--end", "2026-03-03T13:00Z"]
    )
    assert ran.exit_code == 0, ran.output
    assert MARKUP_COLUMN in ran.stdout, ran.stdout  # income is shifted from 12:00: the alerts column names it
    shown = runner.invoke(app, ["results", "--config", str(config), "--model", "loan", "--format", "table"])
    assert shown.exit_code == 0, shown.output
    assert MARKUP_COLUMN in shown.stdout and LINK_COLUMN in shown.stdout, shown.stdout
    # A config naming a missing column with markup in it: the one-line error quotes it as it is.
    missing = "[bold]gone[/bold][/]"
    bad = write_config(
        tmp_path / "bad.yaml", [model_entry("loan", table, features={"numeric": [missing]})], database_url
    )
    line = _one_line_error(runner.invoke(app, ["run", "--config", str(bad)]))
    assert missing in line, line


def test_slack_messages_escape_names(engine: sa.Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    """#19.8: Slack messages put model, feature and metric names into mrkdwn unescaped (``<!channel>``
    pinged the channel, ``<https://x|label>`` made a disguised link)."""
    from types import SimpleNamespace

    from prefect.settings import PREFECT_API_URL, temporary_settings

    from driftline.core.results import Kind, Result, Status
    from tests.notify.test_slack import MY_TABLES, TOKEN, FakeSlack, loan_model, slack_config, window_at

    hostile = "<!channel> & <https://evil.example|click here>"
    with engine.begin() as connection:
        connection.execute(sa.text(f"TRUNCATE {MY_TABLES}"))
    monkeypatch.setenv("DRIFTLINE_TEST_SLACK_TOKEN", TOKEN)
    fake = FakeSlack().start()
    try:
        from driftline.tasks.notify import react

        window = window_at(12)
        results = [
            Result(
                model="loan",
                window_start=window.start,
                window_end=window.end,
                kind=Kind.DATA_DRIFT,
                metric="ks",
                feature=hostile,
                value=0.6,
                threshold=0.2,
                status=Status.ALERT,
                details={},
            ),
            Result(
                model="loan",
                window_start=window.start,
                window_end=window.end,
                kind=Kind.DATA_DRIFT,
                metric="<@U123>",
                feature="age",
                value=0.6,
                threshold=0.2,
                status=Status.ALERT,
                details={},
            ),
        ]
        with temporary_settings(updates={PREFECT_API_URL: f"http://127.0.0.1:{_unused_port()}/api"}):
            react(
                SimpleNamespace(data=engine, results=engine),
                loan_model(),
                window,
                results,
                "run-hostile",
                notifications=slack_config(fake),
                now=window.end,
            )
        posts = fake.posts()
    finally:
        fake.stop()
    assert len(posts) == 1, posts
    message = posts[0]["json"]
    mrkdwn = [message["text"]] + [
        text
        for block in message["blocks"]
        for text in [block.get("text", {}).get("text") if block.get("text", {}).get("type") == "mrkdwn" else None]
        + [f["text"] for f in block.get("fields", []) if f.get("type") == "mrkdwn"]
        + [e["text"] for e in block.get("elements", []) if e.get("type") == "mrkdwn"]
        if text
    ]
    assert len(mrkdwn) >= 5, message
    for text in mrkdwn:
        assert "<" not in text and ">" not in text, f"unescaped Slack control character in {text!r}"
    rendered = "\n".join(mrkdwn)
    assert "&lt;!channel&gt; &amp; &lt;https://evil.example|click here&gt;: ks = 0.6" in rendered, rendered
    assert "age: &lt;@U123&gt; = 0.6" in rendered, rendered
