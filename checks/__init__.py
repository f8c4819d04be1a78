"""Completeness and validity expectations (Great Expectations), turned into Driftline results.

``driftline.checks.completeness.evaluate_completeness(context) -> list[Result]`` is the monitor:
it builds one GX suite per model from its config and reference profile (columns exist, row count,
nulls, reference categories, widened reference ranges, unique ids, timestamps inside the window,
plus the user's ``quality.expectations``), runs it on the window's pandas frame and returns one
``data_quality`` result per expectation. GX's objects never leave this package. See
``docs/completeness.md``.
"""
