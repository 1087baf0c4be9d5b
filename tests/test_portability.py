"""Code paths that differ by platform fall back with a one-line note: no os.sched_getaffinity (macOS), a native
kernel compiled without its Winograd path (clang)."""

import os

import pytest

from espcn_jax import native, speed


def test_no_sched_getaffinity_counts_all_cpus_and_says_so_once(monkeypatch, capsys):
  monkeypatch.delattr(os, "sched_getaffinity", raising=False)  # as on macOS
  monkeypatch.delitem(native._state, "said_affinity", raising=False)  # pylint: disable=protected-access
  monkeypatch.delenv("ESPCN_JAX_THREADS", raising=False)
  n = os.cpu_count() or 1
  assert native.usable_cpus() == n and native.num_threads() == n
  err = capsys.readouterr().err.strip().splitlines()
  assert len(err) == 1 and "os.sched_getaffinity is not available" in err[0] and "os.cpu_count" in err[0]
  # The benchmark's CPU description and peak, and the thread counts it gives the peers, use the same fallback.
  dev, kind = speed.device_info()
  assert kind == "cpu" and f"x{n} threads" in dev
  peak = speed.cpu_peak_gflops()
  assert peak is None or peak > 0
  assert capsys.readouterr().err == ""  # said once per process


def test_sched_getaffinity_is_used_where_it_exists(monkeypatch, capsys):
  monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1, 2}, raising=False)
  assert native.usable_cpus() == 3
  assert capsys.readouterr().err == ""


@pytest.mark.skipif(not native.available(), reason=f"native kernel: {native.unavailable_reason()}")
def test_kernel_without_winograd_says_so_once(monkeypatch, capsys):
  assert native.has_winograd()  # GCC builds (the wheel's) have it
  monkeypatch.setattr(native, "_state", {})
  monkeypatch.setattr(native, "_winograd_compiled", lambda lib: False)  # what a clang build reports
  monkeypatch.delenv("ESPCN_JAX_NATIVE", raising=False)
  assert native.available() and native.available()  # loads the library again: one note, not two
  assert not native.has_winograd()
  err = capsys.readouterr().err.strip().splitlines()
  assert len(err) == 1 and "built without Winograd" in err[0] and "direct convolutions" in err[0]
  assert capsys.readouterr().err == ""


def test_the_winograd_flag_is_read_from_the_library():
  class Clang:  # pylint: disable=too-few-public-methods
    espcn_has_winograd = staticmethod(lambda: 0)

  class BeforeTheFlag:  # a library built before espcn_has_winograd existed (setup.py, GCC): it has Winograd
    pass

  assert native._winograd_compiled(Clang()) is False  # pylint: disable=protected-access
  assert native._winograd_compiled(BeforeTheFlag()) is True  # pylint: disable=protected-access
