"""How the command line prints result records: a table for people, JSON/JSON Lines/CSV for programs.

Records are the public result record (``Result.as_record()`` or ``compare``'s rows). Tables show a
``reason`` column from ``details.reason`` when any record has one. Piped output (not a terminal) is
never cut at 80 columns: the table takes its natural width.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Sequence
from typing import IO, Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

FORMATS = ("table", "json", "jsonl", "csv")
STATUS_STYLE = {"ok": "green", "warning": "yellow", "alert": "bold red", "unknown": "dim", "failed": "bold magenta"}
#: Statuses by severity, for ``--status`` filters and ``--fail-on`` levels.
SEVERITY = {"unknown": 0, "ok": 1, "warning": 2, "alert": 3}
#: ``--fail-on`` met: the exit code of ``run`` and ``compare`` (1 is a failed window, 2 a bad config).
FAIL_ON_EXIT_CODE = 3
#: Width of a piped table: wide enough that no key field is truncated or folded.
PIPED_WIDTH = 400


def reason_of(record: dict[str, Any]) -> str:
    """``details.reason`` of a record, or ``""``."""
    details = record.get("details")
    reason = details.get("reason") if isinstance(details, dict) else None
    return "" if reason is None else str(reason)


def wide_console(console: Console) -> Console:
    """``console`` on a terminal; a console of the same file at :data:`PIPED_WIDTH` columns when piped."""
    if console.is_terminal:
        return console
    return Console(file=console.file, width=PIPED_WIDTH, no_color=True, highlight=False, soft_wrap=False)


def _number(value: Any) -> str:
    return "" if value is None else f"{value:.4g}"


def _when(value: Any) -> str:
    return "" if value is None else str(value)[:16].replace("T", " ")


def results_table(records: Sequence[dict[str, Any]], title: str, *, window: bool = True) -> Table:
    """One row per record; ``window`` False for batch records (``compare``), which have none.

    The title and every name or reason are escaped: they are text, never rich markup (a feature named
    ``[/]`` or ``[link=...]``)."""
    with_reason = any(reason_of(r) for r in records)
    columns = (["window start"] if window else []) + ["kind", "feature", "metric", "value", "threshold", "status"]
    table = Table(title=escape(title))
    for column in columns:
        table.add_column(column, no_wrap=column in ("window start", "kind", "feature", "metric", "status"))
    if with_reason:
        table.add_column("reason", overflow="fold")
    for r in records:
        cells = [_when(r.get("window_start"))] if window else []
        cells += [
            escape(str(r["kind"])),
            escape(r["feature"] or ""),
            escape(str(r["metric"])),
            _number(r["value"]),
            _number(r["threshold"]),
            f"[{STATUS_STYLE.get(str(r['status']), '')}]{r['status']}[/]",
        ]
        if with_reason:
            cells.append(escape(reason_of(r)))
        table.add_row(*cells)
    return table


def write_records(records: Sequence[dict[str, Any]], output_format: str, stream: IO[str]) -> None:
    """``json``: one array; ``jsonl``: one record per line; ``csv``: a header and one row per record,
    ``details`` as a JSON string. NaN never appears (records hold None for non-finite values)."""
    if output_format == "json":
        stream.write(json.dumps(list(records), indent=2, allow_nan=False, default=str) + "\n")
    elif output_format == "jsonl":
        for record in records:
            stream.write(json.dumps(record, allow_nan=False, default=str) + "\n")
    elif output_format == "csv":
        stream.write(records_csv(records))
    else:  # pragma: no cover - the CLI checks the format first
        raise ValueError(output_format)


def records_csv(records: Iterable[dict[str, Any]]) -> str:
    rows = list(records)
    keys = list(dict.fromkeys(k for r in rows for k in r)) if rows else []
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=keys, lineterminator="\n")
    writer.writeheader()
    for r in rows:
        writer.writerow(
            {k: json.dumps(v, allow_nan=False, default=str) if isinstance(v, dict | list) else v for k, v in r.items()}
        )
    return buffer.getvalue()


def at_or_above(records: Iterable[dict[str, Any]], level: str) -> list[dict[str, Any]]:
    """Records whose status is ``level`` or more severe (``warning`` includes ``alert``)."""
    floor = SEVERITY[level]
    return [r for r in records if SEVERITY.get(str(r["status"]), -1) >= floor]
