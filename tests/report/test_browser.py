"""A real browser opens the reports offline: every chart renders, nothing errs, the page looks drawn.

Needs Debian's ``chromium`` (``apt-get install -y chromium``). Skipped without it, except on CI
(``CI`` set), where a missing browser fails the test.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa

from driftline.tasks.compare import compare_report
from driftline.tasks.report import write_report
from driftline.tasks.report.synthetic import seed_sample

START = datetime(2026, 3, 10, tzinfo=UTC)
XSS = "<script>alert(1)</script>"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def chromium() -> str:
    if CHROMIUM is None:  # .ci/run installs it; a missing browser is a failure, never a skip
        pytest.fail("chromium is not installed (apt-get install -y chromium)")
    return CHROMIUM


def run_browser(browser: str, page: Path, profile: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    """Headless Chromium on a file:// URL with no network helpers; console messages go to stderr."""
    command = [
        browser,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--no-first-run",
        f"--user-data-dir={profile}",
        "--enable-logging=stderr",
        "--v=0",
        "--virtual-time-budget=20000",  # let the asynchronous chart rendering finish first
        *extra,
        page.resolve().as_uri(),
    ]
    return subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)


def console_messages(stderr: str) -> list[str]:
    """What the page wrote to its console (errors, warnings and logs alike) or a CSP violation."""
    return [line for line in stderr.splitlines() if ":CONSOLE" in line or "Content Security Policy" in line]


def check_rendered(browser: str, page: Path, tmp_path: Path, name: str) -> str:
    done = run_browser(browser, page, tmp_path / f"profile-{name}-dom", "--dump-dom")
    assert done.returncode == 0, done.stderr[-2000:]
    assert console_messages(done.stderr) == []
    dom = done.stdout
    body = re.search(r"<body([^>]*)>", dom)
    assert body is not None
    charts = re.search(r'data-charts="(\d+)"', body.group(1))
    errors = re.search(r'data-chart-errors="(\d+)"', body.group(1))
    assert charts and errors, "the start-up script did not finish rendering"
    assert int(errors.group(1)) == 0
    assert int(charts.group(1)) > 0
    # Each chart container holds a rendered SVG with marks.
    assert dom.count('class="marks"') == int(charts.group(1))
    assert not re.search(r'data-spec="spec-\d+"[^>]*>chart failed', dom)
    # ... and each draws data, not empty axes: every chart has at least one data mark (a bar, a line,
    # a point or a cell) with a shape. Axis, legend and title groups do not count.
    empty_layers = [
        m.group(1)
        for m in re.finditer(r'<g class="mark-(rect|line|symbol|area)[^"]*role-mark[^"]*"[^>]*>(.*?)</g>', dom, re.S)
        if not re.search(r'<path[^>]* d="M', m.group(2))
    ]
    assert empty_layers == [], "a panel (facet) draws its axes but no data"
    for number, svg in enumerate(re.findall(r'<svg class="marks".*?</svg>', dom, re.S)):
        shapes = re.findall(r'<g class="mark-(?:rect|line|symbol|area)[^"]*role-mark[^"]*"[^>]*>(.*?)</g>', svg, re.S)
        drawn = [s for s in shapes if re.search(r'<path[^>]* d="M', s)]
        assert drawn, f"chart {number} draws no data mark: {svg[:300]}"
    return dom


def screenshot(browser: str, page: Path, tmp_path: Path, name: str) -> Path:
    shot = tmp_path / f"{name}.png"
    done = run_browser(
        browser,
        page,
        tmp_path / f"profile-{name}-shot",
        f"--screenshot={shot}",
        "--window-size=1400,2000",
        "--hide-scrollbars",
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert shot.stat().st_size > 50_000, "a blank page compresses to a few kB; a drawn report does not"
    return shot


def test_report_renders_offline_without_errors(
    chromium: str, store: sa.Engine, log_schema: str, tmp_path: Path
) -> None:
    config = seed_sample(
        store, log_schema, ["income", "age", "tenure"], ["region", XSS], START, 48, drifting=["income", "region"]
    )
    page = write_report(
        store, config, "loan", START, START + timedelta(hours=48), tmp_path / "report.html", data_engine=store
    )
    dom = check_rendered(chromium, page, tmp_path, "report")
    # The hostile feature name is text on the page, never an element; the only scripts are ours.
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in dom
    assert XSS not in dom
    assert dom.count("<script") == page.read_text(encoding="utf-8").count("<script")
    headings = re.findall(r"<h3>(.*?)</h3>", dom)
    assert any("&lt;script&gt;alert(1)&lt;/script&gt;" in h for h in headings)
    assert 'id="feature-0"' in dom and "Needs attention" in dom
    shot = screenshot(chromium, page, tmp_path, "report")
    print(f"\nscreenshot: {shot} ({shot.stat().st_size:,} bytes)")


def test_comparison_report_renders_offline(chromium: str, tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    reference = pd.DataFrame(
        {
            "income": rng.normal(50, 10, 2000),
            "region": rng.choice(["a", "b"], 2000),
            "amount": rng.lognormal(3, 1.5, 2000),  # a long tail: drawn on a symlog axis
        }
    )
    current = pd.DataFrame(
        {
            "income": rng.normal(65, 10, 800),
            "region": rng.choice(["a", "b"], 800),
            "amount": rng.lognormal(3.5, 1.5, 800) * 3,  # beyond the reference's range too
        }
    )
    page = compare_report(reference, current, tmp_path / "compare.html")
    dom = check_rendered(chromium, page, tmp_path, "compare")
    assert "Driftline comparison" in dom
    assert "amount (symlog axis: a long tail)" in dom and "income (symlog" not in dom
    screenshot(chromium, page, tmp_path, "compare")
