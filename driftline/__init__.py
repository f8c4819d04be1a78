"""Driftline: model monitoring on Prefect.

Each folder is one layer, and a layer imports only from the layers below it
(``tests/test_layers.py`` enforces this; ``docs/architecture.md`` says where things go):

0. ``driftline/core``: the shared vocabulary: the result record and statuses, errors, the
   window interval, settings.
1. ``driftline/stats``: pure statistics (numpy/scipy/pandas): drift tests, verdicts, estimation.
2. ``driftline/config`` (monitors.yaml, expectations, notification channels) and
   ``driftline/storage`` (the PostgreSQL schema, migrations, repository functions, connections).
3. ``tasks/`` and ``checks/`` (Prefect tasks; I/O), installed as ``driftline.tasks`` and
   ``driftline.checks``. Reports and the batch compare are tasks (``driftline.tasks.report``).
4. ``flows/``, installed as ``driftline.flows``.
5. ``deployments/`` (``driftline.deployments``) and ``driftline/cli`` (the ``driftline`` command).

The top-level ``tasks/``, ``checks/``, ``flows/`` and ``deployments/`` folders are mapped onto
``driftline.*`` by ``package-dir`` in pyproject.toml, so imports read ``driftline.tasks.drift``
while the file is ``tasks/drift.py``. Nothing is created at import time.
"""

__version__ = "0.1.0"
