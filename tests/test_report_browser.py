"""The report page in a real headless browser: Debian's chromium and chromium-driver, driven by selenium.

Skipped (with the reason) when chromium, its driver or selenium is not installed; nothing downloads at test time:
    apt-get install -y chromium chromium-driver && pip install selenium
The page (Set5 x3 with the shipped weights, a folder with a broken image, a committed run log and a missing workdir)
must load with no console error and every image decoded; a column header click sorts the rows; a screenshot of the
comparison view is saved to the test's tmp dir and must not be blank.
"""

import os
import pathlib
import shutil
import tempfile

import numpy as np
import pytest
from PIL import Image

from espcn_jax import evaluate, report

ROOT = pathlib.Path(__file__).resolve().parents[1]
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
DRIVER = shutil.which("chromedriver")
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage",
         "--window-size=1400,1000")


@pytest.fixture(scope="module")
def browser():
  if not CHROMIUM or not DRIVER:
    pytest.skip("chromium / chromium-driver not installed (apt-get install -y chromium chromium-driver)")
  pytest.importorskip("selenium", reason="selenium not installed (pip install selenium)")
  from selenium import webdriver
  from selenium.webdriver.chrome.service import Service
  os.environ.setdefault("SE_OFFLINE", "true")  # Selenium Manager: never look for a driver online
  profile = tempfile.mkdtemp(prefix="espcn-chromium-")
  opts = webdriver.ChromeOptions()
  opts.binary_location = CHROMIUM
  for flag in (*FLAGS, f"--user-data-dir={profile}"):
    opts.add_argument(flag)
  opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
  drv = webdriver.Chrome(options=opts, service=Service(DRIVER))
  drv.set_page_load_timeout(30)
  yield drv
  drv.quit()
  shutil.rmtree(profile, ignore_errors=True)


def _load(drv, page: pathlib.Path):
  from selenium.webdriver.support.ui import WebDriverWait
  drv.get(page.resolve().as_uri())
  # the crops load lazily (when scrolled to); load them all now
  drv.execute_script("document.querySelectorAll('img[loading=lazy]').forEach(i => { i.loading = 'eager'; })")
  WebDriverWait(drv, 20).until(lambda d: d.execute_script(
      "return document.readyState === 'complete' && Array.from(document.images).every(i => i.complete)"))
  return [e for e in drv.get_log("browser") if e["level"] in ("SEVERE", "ERROR")]


def test_report_page_in_chromium(browser, tmp_path):
  from selenium.webdriver.common.by import By
  bad = tmp_path / "mixed"
  bad.mkdir()
  Image.fromarray(np.random.default_rng(0).integers(0, 256, (45, 48, 3), dtype=np.uint8)).save(bad / "a.png")
  (bad / "broken.png").write_bytes(b"not a png")
  out = tmp_path / "report"
  rc = evaluate.main(["--data", "set5", "--data", str(bad), "--scale", "3", "--report", str(out), "--runs",
                      str(ROOT / "docs" / "runs" / "x3_t91_tanh.metrics.jsonl"), str(tmp_path / "no_workdir")])
  assert rc == 1  # the broken image and the missing workdir
  assert _load(browser, out / "index.html") == []
  natural = browser.execute_script("return Array.from(document.images).map(i => [i.src, i.naturalWidth])")
  assert len(natural) == 6 * 7 and all(w > 0 for _, w in natural), natural  # overview, LR, 2 methods, HR, 2 errors
  problems = browser.find_element(By.ID, "errors")
  assert problems.is_displayed() and "broken.png" in problems.text and "no_workdir" in problems.text
  assert len(browser.find_elements(By.CSS_SELECTOR, "svg polyline")) == 4

  table = browser.find_element(By.ID, "d0-table")
  heads = [th.text.replace("\n", " ") for th in table.find_elements(By.CSS_SELECTOR, "thead th")]
  col = heads.index("bicubic PSNR")

  def column(i):
    return [td.get_attribute("data-v") for td in table.find_elements(By.CSS_SELECTOR, f"tbody td:nth-child({i + 1})")]

  table.find_elements(By.CSS_SELECTOR, "thead th")[col].click()
  psnr = [float(v) for v in column(col)]
  assert psnr == sorted(psnr)
  assert column(0) == ["2", "4", "1", "3", "0"]  # butterfly 24.04, woman 28.56, bird 32.57, head 32.88, baby 33.91
  table.find_elements(By.CSS_SELECTOR, "thead th")[col].click()
  assert column(0) == ["0", "3", "1", "4", "2"]
  name = heads.index("image")
  table.find_elements(By.CSS_SELECTOR, "thead th")[name].click()
  assert column(0) == ["0", "1", "2", "3", "4"]  # baby, bird, butterfly, head, woman

  section = browser.find_element(By.CSS_SELECTOR, "section.cmp")
  browser.execute_script("arguments[0].scrollIntoView()", section)
  shot = tmp_path / "comparison.png"
  assert section.screenshot(str(shot))
  pixels = np.asarray(Image.open(shot).convert("L"), np.float64)
  assert pixels.shape[0] > 400 and pixels.shape[1] > 1000 and pixels.std() > 30, (pixels.shape, pixels.std())
  base = section.rect
  for img in section.find_elements(By.CSS_SELECTOR, "img.px"):  # each crop and error map is drawn, not blank
    r = {k: int(round(img.rect[k] - base.get(k, 0))) for k in ("x", "y")}
    tile = pixels[r["y"] + 2:r["y"] + img.rect["height"] - 2, r["x"] + 2:r["x"] + img.rect["width"] - 2]
    assert tile.size > 150 * 150 and tile.std() > 8, (img.get_attribute("alt"), tile.shape, tile.std())


def test_training_report_without_metrics_shows_the_problem(browser, tmp_path):
  from selenium.webdriver.common.by import By
  (tmp_path / "wd").mkdir()
  page = report.write_report(tmp_path / "wd" / "report", runs=[report.load_run(tmp_path / "wd")])
  assert _load(browser, page) == []
  assert "no metrics.jsonl" in browser.find_element(By.ID, "errors").text
  assert "no training metrics to plot" in browser.find_element(By.TAG_NAME, "body").text
