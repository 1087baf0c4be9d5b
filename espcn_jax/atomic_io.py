"""Writing files so that nothing is half-written: a temp file next to the target, then one rename.

    with atomic_io.replacing("out/baby_x3.png") as tmp:    # tmp: a new, empty file in out/
      Image.fromarray(a).save(tmp, format="PNG")          # on success tmp replaces the target; on error it is removed
    atomic_io.write_bytes("model.onnx", data)
    atomic_io.write_text("results.json", text)
    atomic_io.refuse_inputs(output, [checkpoint])          # ValueError if output is one of the inputs (any link)

- The temp file is created exclusively (O_CREAT | O_EXCL: a planted file or symlink of that name makes it fail, it
  is never followed) in the target's folder, so the rename never crosses file systems.
- The result gets the mode a plain `open(path, "w")` gives: 0666 & ~umask for a new file, the old file's mode when
  one is replaced. (A symlink at the target is replaced by the new file; what it pointed to is left alone.)
- Temp names are `.NAME.espcn-tmp-PID-HOSTRANDOM.SUFFIX` (hidden, the target's suffix kept for writers that pick
  the format from it, e.g. ffmpeg; HOST: 4 hex digits of this machine's name): `is_temp` recognises them, and each
  write first removes the stale ones for its target that a killed run left (made on this machine by a PID that is
  no longer running; another machine's, on a shared file system, are left alone).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import pathlib
import secrets
import shutil
import socket
import stat

TEMP_MARK = ".espcn-tmp-"


def is_temp(path) -> bool:
  """True for a temp file / folder name made here (never an input, never a result)."""
  name = pathlib.Path(path).name
  return name.startswith(".") and TEMP_MARK in name


def _host_tag() -> str:
  return hashlib.sha256(socket.gethostname().encode()).hexdigest()[:4]


HOST_TAG = _host_tag()


def _owner(name: str) -> tuple[int, str] | None:
  """(pid, host tag) of a temp name made here, else None."""
  try:
    pid, rest = name.split(TEMP_MARK, 1)[1].split("-", 1)
    return int(pid), rest[:4]
  except (IndexError, ValueError):
    return None


def _alive(pid: int) -> bool:
  try:
    os.kill(pid, 0)
  except ProcessLookupError:
    return False
  except PermissionError:
    return True  # someone else's process
  return True


def clean_stale(path) -> list[pathlib.Path]:
  """Removes the temp files / folders of `path` left by runs that are no longer alive. Returns what was removed."""
  path = pathlib.Path(path)
  removed = []
  try:
    entries = list(path.parent.iterdir())
  except OSError:
    return removed
  prefix = f".{path.name}{TEMP_MARK}"
  for p in entries:
    owner = _owner(p.name) if p.name.startswith(prefix) else None
    if owner is None or owner[1] != HOST_TAG or owner[0] == os.getpid() or _alive(owner[0]):
      continue
    try:
      if stat.S_ISDIR(p.lstat().st_mode):
        shutil.rmtree(p)
      else:
        p.unlink()
      removed.append(p)
    except OSError:
      pass
  return removed


def temp_name(path) -> pathlib.Path:
  path = pathlib.Path(path)
  return path.with_name(f".{path.name}{TEMP_MARK}{os.getpid()}-{HOST_TAG}{secrets.token_hex(4)}{path.suffix}")


def _final_mode(path: pathlib.Path, new_file_mode: int) -> int:
  """The old file's permission bits when a regular file is replaced, else those of a new file."""
  try:
    st = path.lstat()
  except OSError:
    return new_file_mode
  return stat.S_IMODE(st.st_mode) if stat.S_ISREG(st.st_mode) else new_file_mode


def _create(tmp: pathlib.Path) -> int:
  """A new file, exclusively (an existing file or link of that name is an error, never followed)."""
  flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
  return os.open(tmp, flags, 0o666)  # the umask applies, as for open(path, "w")


@contextlib.contextmanager
def replacing(path, mkdir: bool = True):
  """Yields the path of a new empty temp file next to `path`; when the block ends without an error it replaces
  `path` (with `open(path, "w")`'s mode), else it is removed."""
  path = pathlib.Path(path)
  if mkdir:
    path.parent.mkdir(parents=True, exist_ok=True)
  clean_stale(path)
  tmp = temp_name(path)
  try:
    fd = _create(tmp)
  except OSError as e:  # name the target, not the temp file
    raise OSError(e.errno, f"{e.strerror} (creating a temp file next to it)", str(path)) from None
  try:
    new_mode = stat.S_IMODE(os.fstat(fd).st_mode)
  finally:
    os.close(fd)
  try:
    yield tmp
    os.chmod(tmp, _final_mode(path, new_mode))  # also when the writer recreated the file
    os.replace(tmp, path)
  finally:
    with contextlib.suppress(FileNotFoundError):
      os.unlink(tmp)


def check_writable(path) -> None:
  """Raises OSError when no file can be created next to `path` (creates its folder; leaves nothing behind)."""
  path = pathlib.Path(path)
  path.parent.mkdir(parents=True, exist_ok=True)
  tmp = temp_name(path)
  os.close(_create(tmp))
  os.unlink(tmp)


def write_bytes(path, data: bytes) -> pathlib.Path:
  path = pathlib.Path(path)
  with replacing(path) as tmp:
    with open(tmp, "r+b") as f:
      f.write(data)
  return path


def write_text(path, text: str) -> pathlib.Path:
  return write_bytes(path, text.encode("utf-8"))


@contextlib.contextmanager
def replacing_dir(path):
  """Yields a new empty temp folder next to `path`; on success it replaces `path` (an old folder there is removed
  after the rename), else it is removed."""
  path = pathlib.Path(path)
  path.parent.mkdir(parents=True, exist_ok=True)
  clean_stale(path)
  tmp = temp_name(path)
  os.mkdir(tmp, 0o777)  # fails if anything (a link included) has this name
  old = None
  try:
    yield tmp
    if path.exists() or path.is_symlink():
      old = temp_name(path)
      os.replace(path, old)
    os.replace(tmp, path)
  finally:
    for p in (tmp, old):
      if p is not None and p.is_dir() and not p.is_symlink():
        shutil.rmtree(p)
      elif p is not None and (p.is_symlink() or p.exists()):
        p.unlink()


def same_file(a, b) -> bool:
  """True when `a` and `b` are one file: the same path, a symlink to it or a hard link (both must exist)."""
  try:
    return os.path.samefile(a, b)
  except OSError:
    return pathlib.Path(a).resolve() == pathlib.Path(b).resolve()


def refuse_inputs(output, inputs, what: str = "an input") -> None:
  """Raises ValueError (one line naming `output`) when it is one of `inputs`, or a link to one."""
  for src in inputs:
    if src is not None and same_file(output, src):
      raise ValueError(f"{output}: is {what} ({src}); refusing to write over it")
