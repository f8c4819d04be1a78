"""Fixtures the bench's tests share with the task tests."""

from tests.tasks.test_streaming import awkward_log  # noqa: F401 (the awkward hour of rows, a fixture)
