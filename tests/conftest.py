"""Test-wide settings."""

import sys

import pytest


def _orbax_leftover(u) -> bool:
  """A TensorStore read that orbax left behind when a restore failed on purpose (a mismatched checkpoint), collected
  later, during another test or at exit (~80 lines of traceback each), or its event loop closing."""
  return "_read_array_index_and_device_put" in repr(u.object) or "Event loop is closed" in str(u.exc_value)


@pytest.hookimpl(trylast=True)  # after pytest's own hook is installed: wrap it
def pytest_configure(config):
  inner = sys.unraisablehook

  def hook(u):
    if not _orbax_leftover(u):
      inner(u)

  sys.unraisablehook = hook
