"""Driftline's deployments, declared once.

``deployments/prefect.yaml`` (a work pool and ``prefect deploy``), ``driftline serve``
(``deployments/serve.py``) and ``driftline up``/``deploy`` (``deployments/up.py``) are all rendered
from ``DEPLOYMENTS``; the automations (``deployments/automations.py``) name the deployments they
run through it too. To add or change a deployment, edit ``DEPLOYMENTS`` and regenerate the YAML:

    python -m driftline.deployments.declared      # rewrites deployments/prefect.yaml

``tests/deployments/test_declared.py`` fails while prefect.yaml differs from what this renders.
"""

from __future__ import annotations

import importlib
import importlib.util
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

#: monitor-all's schedule, UTC: minute 5, once the last hour's late rows have landed.
HOURLY_AT_MINUTE_5 = "5 * * * *"
WORK_POOL = "driftline"
PREFECT_YAML = Path(__file__).with_name("prefect.yaml")
#: The folder holding the flows' folder: the project root in a checkout, the ``driftline`` package
#: when installed; prefect.yaml's file entrypoints are relative to it.
_SOURCE_ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class DeclaredDeployment:
    """One deployment of one of Driftline's flows.

    ``flow`` is ``module:function``; the deployment's full name is ``<flow name>/<name>``.
    ``cron`` (UTC) schedules it; ``None`` means it runs on demand or when an automation runs it.
    ``closed_loop`` marks the deployments the retrain/promote automations need.
    """

    name: str
    flow: str
    description: str
    cron: str | None = None
    closed_loop: bool = False

    def load_flow(self) -> Any:
        module, function = self.flow.split(":")
        return getattr(importlib.import_module(module), function)

    @property
    def full_name(self) -> str:
        return f"{self.load_flow().name}/{self.name}"

    def file_entrypoint(self) -> str:
        """``flows/monitor.py:monitor_all``: the flow's source file relative to the source root."""
        module, function = self.flow.split(":")
        spec = importlib.util.find_spec(module)
        if spec is None or spec.origin is None:
            raise ImportError(f"cannot locate the module of {self.flow}")
        return f"{Path(spec.origin).resolve().relative_to(_SOURCE_ROOT).as_posix()}:{function}"


DEPLOYMENTS: tuple[DeclaredDeployment, ...] = (
    DeclaredDeployment(
        name="monitor-all",
        flow="driftline.flows.monitor:monitor_all",
        description="Every configured model, hourly, for the hour that just ended.",
        cron=HOURLY_AT_MINUTE_5,
    ),
    DeclaredDeployment(
        name="backfill",
        flow="driftline.flows.monitor:backfill",
        description="One model over [start, end) hour by hour (run on demand with start/end parameters).",
    ),
    DeclaredDeployment(
        name="retrain-request",
        flow="driftline.flows.retrain:retrain_request",
        description="Cooldown, then run the model's training deployment (actions.retrain.deployment); "
        "run by the retrain automations.",
        closed_loop=True,
    ),
    DeclaredDeployment(
        name="retrain",
        flow="driftline.flows.retrain:retrain",
        description="Driftline's example trainer: train, compare on a holdout, ask for approval, promote.",
        closed_loop=True,
    ),
    DeclaredDeployment(
        name="promote",
        flow="driftline.flows.promote:promote",
        description="Promote a model version: a new reference version and driftline.retrain.promoted "
        "(driftline promote; the promote-on-request automation).",
        closed_loop=True,
    ),
)


def declared(name: str) -> DeclaredDeployment:
    """The declared deployment called ``name``; KeyError for an undeclared one."""
    for deployment in DEPLOYMENTS:
        if deployment.name == name:
            return deployment
    raise KeyError(f"no declared deployment {name!r}")


def runner_deployments(
    config_path: str,
    cron: str | None = None,
    entrypoint_type: Any = None,
    only_closed_loop: bool = False,
) -> list[Any]:
    """The declared deployments as Prefect ``RunnerDeployment`` objects for ``config_path``, for
    ``prefect.serve`` (file entrypoints, the default) or ``prefect.deploy`` to a work pool
    (``EntrypointType.MODULE_PATH``: the worker imports the installed package). ``cron`` replaces the
    declared schedule of a scheduled deployment (``--cron``); on-demand ones stay unscheduled."""
    from prefect.schedules import Cron

    extra = {} if entrypoint_type is None else {"entrypoint_type": entrypoint_type}
    built = []
    for deployment in DEPLOYMENTS:
        if only_closed_loop and not deployment.closed_loop:
            continue
        schedules = [] if deployment.cron is None else [Cron(cron or deployment.cron, timezone="UTC")]
        built.append(
            deployment.load_flow().to_deployment(
                name=deployment.name,
                schedules=schedules or None,
                parameters={"config_path": config_path},
                description=deployment.description,
                **extra,
            )
        )
    return built


PREFECT_YAML_HEADER = """\
# GENERATED from deployments/declared.py (DEPLOYMENTS): edit that, then run
#   python -m driftline.deployments.declared
# tests/deployments/test_declared.py fails while this file differs from what it renders.
#
# Driftline's deployments for a work pool. From the project root, against a running Prefect server:
#   prefect work-pool create {pool} --type process
#   DRIFTLINE_PROJECT_DIR=$PWD prefect --no-prompt deploy --prefect-file deployments/prefect.yaml --all
#   prefect worker start --pool {pool}
# The flows read monitors.yaml from DRIFTLINE_CONFIG (or the config_path parameter) and the
# database from DRIFTLINE_DATABASE_URL, both set in the worker's environment.
"""


class _IndentedDumper(yaml.SafeDumper):
    """Indents list items under their key, as prefect.yaml is usually written."""

    def increase_indent(self, flow: bool = False, indentless: bool = False) -> None:
        super().increase_indent(flow, False)


def render_prefect_yaml() -> str:
    """prefect.yaml's text for ``DEPLOYMENTS`` (file entrypoints, the ``driftline`` work pool)."""
    entries = []
    for deployment in DEPLOYMENTS:
        entry: dict[str, Any] = {
            "name": deployment.name,
            "description": deployment.description,
            "entrypoint": deployment.file_entrypoint(),
            "work_pool": {"name": WORK_POOL},
        }
        if deployment.cron is not None:
            entry["schedules"] = [{"cron": deployment.cron, "timezone": "UTC"}]
        entries.append(entry)
    document = {
        "name": "driftline",
        "prefect-version": "3.4.0",
        "pull": [{"prefect.deployments.steps.set_working_directory": {"directory": "{{ $DRIFTLINE_PROJECT_DIR }}"}}],
        "deployments": entries,
    }
    body = yaml.dump(document, Dumper=_IndentedDumper, sort_keys=False, width=200, default_flow_style=False)
    return PREFECT_YAML_HEADER.format(pool=WORK_POOL) + "\n" + body


def write_prefect_yaml(path: Path = PREFECT_YAML) -> bool:
    """Rewrite ``path`` from the declaration; True when its text changed."""
    text = render_prefect_yaml()
    if path.exists() and path.read_text(encoding="utf-8") == text:
        return False
    path.write_text(text, encoding="utf-8")
    return True


if __name__ == "__main__":
    changed = write_prefect_yaml()
    print(f"{PREFECT_YAML}: {'rewritten' if changed else 'already up to date'}")
