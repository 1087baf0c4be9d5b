"""Download the BSD300 / BSD500 test images used by the paper's Table 1 (they are not shipped with the repo).

    python scripts/download_test_sets.py --out data/external        # needs the network
    python -m espcn_jax.evaluate --scale 3 --data data/external/BSD300_test --data data/external/BSD500_test

The paper scores on the 100 test images of BSDS300 ("BSD300") and the 200 test images of BSDS500 ("BSD500").
Checks: BSD300's archive against a reference SHA-256; for BSD500 (no reference digest known), that the 200 training
images inside are byte-identical to the repo's own `data/BSD200` (SHA256SUMS; copied unchanged from BSDS500), which
shows the archive is the genuine one.
Extraction writes into a temporary folder, then renames, so an interrupted run leaves nothing half-written.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import pathlib
import shutil
import sys
import tarfile
import urllib.request

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from espcn_jax import atomic_io  # noqa: E402  (the one atomic write; the checkout's copy)
SOURCES = {
    "BSD300": dict(
        url="https://www2.eecs.berkeley.edu/Research/Projects/CS/vision/grouping/segbench/BSDS300-images.tgz",
        # Reference value published alongside a public download script; not re-checked here (no network).
        sha256="a5f7d0e49fe135c75518a3543ced24470156fd69305ae77845dff2a5138652b4",
        test="BSDS300/images/test/", train=None, count=100),
    "BSD500": dict(
        url="http://www.eecs.berkeley.edu/Research/Projects/CS/vision/grouping/BSR/BSR_bsds500.tgz",
        sha256=None,  # no reference value known: the training-image check below stands in for it
        test="BSR/BSDS500/data/images/test/", train="BSR/BSDS500/data/images/train/", count=200),
}


def sha256(path: pathlib.Path) -> str:
  h = hashlib.sha256()
  with open(path, "rb") as f:
    for chunk in iter(lambda: f.read(1 << 20), b""):
      h.update(chunk)
  return h.hexdigest()


def reference_sums(folder: pathlib.Path) -> dict[str, str]:
  sums = {}
  for line in (folder / "SHA256SUMS").read_text().splitlines():
    digest, name = line.split(maxsplit=1)
    sums[name.lstrip("*")] = digest
  return sums


def extract_and_verify(archive: pathlib.Path, name: str, out_dir: pathlib.Path, bsd200: pathlib.Path) -> pathlib.Path:
  """Extracts the test images of `name` into out_dir/<name>_test after checking the archive. Returns that folder."""
  src = SOURCES[name]
  if src["sha256"] and sha256(archive) != src["sha256"]:
    raise SystemExit(f"{archive}: SHA-256 mismatch (expected {src['sha256']}); delete it and download again")
  want_train = reference_sums(bsd200) if src["train"] else {}
  final = out_dir / f"{name}_test"
  with atomic_io.replacing_dir(final) as tmp:  # an old folder is replaced only once the new one is complete
    n_test, train_ok = 0, 0
    with tarfile.open(archive) as tar:
      for member in tar:
        if not member.isfile() or not member.name.endswith(".jpg"):
          continue
        base = os.path.basename(member.name)
        if src["train"] and member.name.startswith(src["train"]) and base in want_train:
          data = tar.extractfile(member).read()
          if hashlib.sha256(data).hexdigest() != want_train[base]:
            raise SystemExit(f"{archive}: training image {base} differs from data/BSD200: not the genuine archive")
          train_ok += 1
        elif member.name.startswith(src["test"]):
          (tmp / base).write_bytes(tar.extractfile(member).read())
          n_test += 1
    if train_ok != len(want_train) or n_test != src["count"]:
      raise SystemExit(f"{archive}: expected {len(want_train)} training and {src['count']} test images, "
                       f"found {train_ok} and {n_test}")
    lines = [f"{hashlib.sha256(p.read_bytes()).hexdigest()}  {p.name}" for p in sorted(tmp.glob("*.jpg"))]
    (tmp / "SHA256SUMS").write_text("\n".join(lines) + "\n")
  return final


def download(url: str, dest: pathlib.Path) -> None:
  if dest.exists():
    return
  print(f"downloading {url}", file=sys.stderr)
  with atomic_io.replacing(dest) as tmp, urllib.request.urlopen(url) as r, open(tmp, "r+b") as f:
    shutil.copyfileobj(r, f)


def main(argv=None) -> int:
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument("--out", type=pathlib.Path, default=ROOT / "data" / "external")
  p.add_argument("--sets", nargs="+", default=list(SOURCES), choices=list(SOURCES))
  p.add_argument("--archive-dir", type=pathlib.Path, default=None, help="where archives are (or go); default --out")
  args = p.parse_args(argv)
  archives = args.archive_dir or args.out
  archives.mkdir(parents=True, exist_ok=True)
  for name in args.sets:
    archive = archives / SOURCES[name]["url"].rsplit("/", 1)[1]
    download(SOURCES[name]["url"], archive)
    folder = extract_and_verify(archive, name, args.out, ROOT / "data" / "BSD200")
    print(f"{name}: {SOURCES[name]['count']} test images in {folder}")
  return 0


if __name__ == "__main__":
  sys.exit(main())
