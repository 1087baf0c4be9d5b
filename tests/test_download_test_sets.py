"""The BSD300/BSD500 download helper's offline part: archive checks and atomic extraction."""

import importlib.util
import io
import pathlib
import tarfile

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("dl", ROOT / "scripts" / "download_test_sets.py")
dl = importlib.util.module_from_spec(spec)
spec.loader.exec_module(dl)


def _fake_archive(path, train_dir, test_dir, n_test, corrupt=False):
  bsd200 = ROOT / "data" / "BSD200"
  with tarfile.open(path, "w:gz") as tar:
    for i, f in enumerate(sorted(bsd200.glob("*.jpg"))):
      data = f.read_bytes()
      if corrupt and i == 3:
        data = data[:-1] + b"\0"
      info = tarfile.TarInfo(train_dir + f.name)
      info.size = len(data)
      tar.addfile(info, io.BytesIO(data))
    for i in range(n_test):
      data = f"test image {i}".encode()
      info = tarfile.TarInfo(f"{test_dir}{i:06d}.jpg")
      info.size = len(data)
      tar.addfile(info, io.BytesIO(data))


def test_extracts_and_verifies(tmp_path, monkeypatch):
  monkeypatch.setitem(dl.SOURCES["BSD500"], "sha256", None)
  arc = tmp_path / "a.tgz"
  _fake_archive(arc, dl.SOURCES["BSD500"]["train"], dl.SOURCES["BSD500"]["test"], 200)
  folder = dl.extract_and_verify(arc, "BSD500", tmp_path / "out", ROOT / "data" / "BSD200")
  assert len(list(folder.glob("*.jpg"))) == 200 and (folder / "SHA256SUMS").is_file()
  assert [p.name for p in (tmp_path / "out").iterdir()] == ["BSD500_test"]  # no temp folder left


def test_rejects_wrong_archives(tmp_path):
  arc = tmp_path / "b.tgz"
  _fake_archive(arc, dl.SOURCES["BSD500"]["train"], dl.SOURCES["BSD500"]["test"], 200, corrupt=True)
  with pytest.raises(SystemExit, match="differs from data/BSD200"):
    dl.extract_and_verify(arc, "BSD500", tmp_path / "out", ROOT / "data" / "BSD200")
  _fake_archive(arc, dl.SOURCES["BSD500"]["train"], dl.SOURCES["BSD500"]["test"], 7)
  with pytest.raises(SystemExit, match="found 200 and 7"):
    dl.extract_and_verify(arc, "BSD500", tmp_path / "out", ROOT / "data" / "BSD200")
  with pytest.raises(SystemExit, match="SHA-256 mismatch"):
    dl.extract_and_verify(arc, "BSD300", tmp_path / "out", ROOT / "data" / "BSD200")
  assert not (tmp_path / "out" / "BSD500_test").exists()
