"""Driftline: model monitoring on Prefect.

Layers import one way: ``driftline.stats`` (pure numpy/scipy) <- ``driftline.tasks`` and
``driftline.checks`` (I/O, Prefect tasks) <- ``driftline.flows`` <- ``driftline.deployments`` and
``driftline.cli``. Configuration, settings, results and storage are shared leaf modules.
Nothing is created at import time.
"""

__version__ = "0.1.0"
