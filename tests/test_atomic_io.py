"""atomic_io: the one atomic write. Modes as open(path, "w") gives them, exclusive temp files that follow no planted
link, nothing left behind on failure, stale temp files of killed runs recognised and removed, own-input refusal."""

import os
import stat
import subprocess
import sys

import pytest

from espcn_jax import atomic_io


def _mode(p):
  return stat.S_IMODE(os.lstat(p).st_mode)


@pytest.fixture
def umask():
  def set_to(m):
    old = os.umask(m)
    saved.append(old)
  saved = []
  yield set_to
  if saved:
    os.umask(saved[0])


def _dead_pid():
  p = subprocess.Popen([sys.executable, "-c", "pass"])
  p.wait()
  return p.pid


@pytest.mark.parametrize("mask", [0o022, 0o077, 0o002])
def test_new_files_get_the_mode_open_gives(tmp_path, umask, mask):
  umask(mask)
  with open(tmp_path / "plain.txt", "w") as f:
    f.write("x")
  atomic_io.write_text(tmp_path / "atomic.txt", "x")
  with atomic_io.replacing(tmp_path / "by_path.bin") as tmp:
    tmp.write_bytes(b"x")
  assert _mode(tmp_path / "atomic.txt") == _mode(tmp_path / "plain.txt") == 0o666 & ~mask
  assert _mode(tmp_path / "by_path.bin") == 0o666 & ~mask


def test_replacing_a_file_keeps_its_mode(tmp_path, umask):
  umask(0o077)
  target = tmp_path / "shared.json"
  target.write_text("old")
  os.chmod(target, 0o644)
  atomic_io.write_text(target, "new")
  assert target.read_text() == "new" and _mode(target) == 0o644


def test_writer_that_recreates_the_temp_file_still_gets_the_mode(tmp_path, umask):
  umask(0o022)
  with atomic_io.replacing(tmp_path / "out.bin") as tmp:
    os.unlink(tmp)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT, 0o600)  # e.g. a library that writes with mkstemp's mode
    os.close(fd)
  assert _mode(tmp_path / "out.bin") == 0o644


def test_temp_file_is_created_exclusively_and_never_follows_a_planted_link(tmp_path, monkeypatch):
  victim = tmp_path / "victim.txt"
  victim.write_text("precious")
  monkeypatch.setattr(atomic_io.secrets, "token_hex", lambda n: "abcd")
  planted = atomic_io.temp_name(tmp_path / "out.txt")
  os.symlink(victim, planted)
  with pytest.raises(FileExistsError):
    atomic_io.write_text(tmp_path / "out.txt", "attacker's data")
  assert victim.read_text() == "precious" and not (tmp_path / "out.txt").exists()


def test_failure_leaves_the_old_file_and_no_temp(tmp_path):
  target = tmp_path / "out.txt"
  target.write_text("old")
  with pytest.raises(RuntimeError):
    with atomic_io.replacing(target) as tmp:
      tmp.write_text("half")
      raise RuntimeError("killed mid-write")
  assert target.read_text() == "old"
  assert sorted(p.name for p in tmp_path.iterdir()) == ["out.txt"]


def test_temp_names_are_recognisable_and_stale_ones_are_cleaned(tmp_path):
  target = tmp_path / "photo_x3.png"
  name = atomic_io.temp_name(target).name
  assert atomic_io.is_temp(name) and name.startswith(".") and name.endswith(".png")
  assert not atomic_io.is_temp("photo_x3.png") and not atomic_io.is_temp(".hidden.png")
  dead, here = _dead_pid(), atomic_io.HOST_TAG
  elsewhere = "ffff" if here != "ffff" else "0000"
  name = lambda target, pid, host, rnd: tmp_path / f".{target}{atomic_io.TEMP_MARK}{pid}-{host}{rnd}.png"
  stale = name("photo_x3.png", dead, here, "00000000")
  stale_dir = name("photo_x3.png", dead, here, "11111111")
  live = name("photo_x3.png", os.getppid(), here, "22222222")  # a running writer's: kept
  other = name("other.png", dead, here, "33333333")  # another target's: left to its own writer
  remote = name("photo_x3.png", dead, elsewhere, "44444444")  # another machine's (shared file system): kept
  stale.write_bytes(b"half")
  stale_dir.mkdir()
  (stale_dir / "x").write_bytes(b"")
  for p in (live, other, remote):
    p.write_bytes(b"")
  atomic_io.write_bytes(target, b"png")
  assert not stale.exists() and not stale_dir.exists()
  assert live.exists() and other.exists() and remote.exists() and target.read_bytes() == b"png"


def test_replacing_dir(tmp_path):
  target = tmp_path / "saved_model"
  for content in ("one", "two"):
    with atomic_io.replacing_dir(target) as tmp:
      (tmp / "f.txt").write_text(content)
  assert (target / "f.txt").read_text() == "two"
  assert sorted(p.name for p in tmp_path.iterdir()) == ["saved_model"]


def test_refuse_inputs_sees_symlinks_and_hard_links(tmp_path):
  src = tmp_path / "w.safetensors"
  src.write_bytes(b"weights")
  os.symlink(src, tmp_path / "sym")
  os.link(src, tmp_path / "hard")
  for out in (src, tmp_path / "sym", tmp_path / "hard", tmp_path / "." / "w.safetensors"):
    with pytest.raises(ValueError, match="refusing to write over it"):
      atomic_io.refuse_inputs(out, [src])
  atomic_io.refuse_inputs(tmp_path / "new.onnx", [src])  # a new file is fine
