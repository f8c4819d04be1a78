"""Completeness and validity expectations (Great Expectations), turned into Driftline results.

Planned: see the completeness issue. Nothing here is wired into the flows yet.
"""
