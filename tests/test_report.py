"""The HTML report: crop choice, crops and error maps, runs and curves, the page's files, the command lines."""

import base64
import html.parser
import io
import pathlib
import re

import jax
import numpy as np
import pytest
from PIL import Image

from espcn_jax import evaluate, image_files, image_ops, model, paper, report, report_html, train, train_io, weights

ROOT = pathlib.Path(__file__).resolve().parents[1]
RUNS = ROOT / "docs" / "runs"


def _rng_image(shape, seed=0):
  return np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)


def test_choose_box_finds_where_the_model_differs_from_bicubic():
  ref = np.zeros((90, 120))
  bic = np.full((90, 120), 100.0)
  model = bic.copy()
  model[50:62, 70:82] += 40  # the only place where the methods differ
  t, l, n = report.choose_box(ref, {"bicubic": bic, "m": model}, 3, 24)
  assert n == 24 and t % 3 == 0 and l % 3 == 0
  assert t <= 50 and t + n >= 62 and l <= 70 and l + n >= 82
  # inside the shaved border even when the difference sits on it
  model2 = bic.copy()
  model2[:10, :10] += 40
  t, l, n = report.choose_box(ref, {"bicubic": bic, "m": model2}, 3, 24)
  assert (t, l) == (3, 3)
  # bicubic only: where its error is largest; a tiny image gets one box of its whole (multiple of 3) side
  err = bic.copy()
  err[9:15, 99:111] = 0
  t, l, n = report.choose_box(np.full((90, 120), 100.0), {"bicubic": err}, 3, 24)
  assert t <= 9 and t + n >= 15 and l <= 99 and l + n >= 111
  assert report.choose_box(np.zeros((7, 8)), {"bicubic": np.zeros((7, 8))}, 3, 24) == (0, 0, 6)


def test_compare_scores_set5_like_evaluate(tmp_path):
  """The report's per-image scores average to evaluate's published-protocol numbers (Set5 x3, shipped weights)."""
  path = weights.pretrained_path(3, "t91")
  params, spec, meta = weights.load(path)
  label = report.model_label(path)
  res = report.evaluate_dataset(image_files.builtin_dataset_dir("set5"), 3, {label: (params, spec)}, tmp_path,
                                dataset="Set5", model_meta={label: meta})
  assert [r["name"] for r in res.rows] == ["baby.png", "bird.png", "butterfly.png", "head.png", "woman.png"]
  assert np.mean([r["scores"]["bicubic"][0] for r in res.rows]) == pytest.approx(30.3922, abs=2e-3)
  assert np.mean([r["scores"]["bicubic"][1] for r in res.rows]) == pytest.approx(0.8682, abs=2e-4)
  assert np.mean([r["scores"][label][0] for r in res.rows]) == pytest.approx(32.6016, abs=2e-3)
  assert res.references == {label: ("ESPCN (91)", 32.55)}
  for r in res.rows:
    for rel in [*r["tiles"].values(), r["overview"]]:
      assert (tmp_path / rel).is_file()


def test_crop_tiles_are_the_crops_zoomed_by_nearest_neighbour():
  hr = _rng_image((64, 70))  # gray: tiles are the Y values themselves
  comp = report.compare(hr, 2, box=(6, 10, 20))
  for bad in ((5, 10, 20), (6, 10, 0), (50, 10, 20)):
    with pytest.raises(ValueError, match="crop box"):
      report.compare(hr, 2, box=bad)
  tiles = report.crop_tiles(comp, tile=100)
  assert list(tiles) == ["LR (nearest)", "bicubic", "HR", "error: bicubic"]
  k = 100 // 20
  np.testing.assert_array_equal(tiles["HR"], np.repeat(np.repeat(hr[6:26, 10:30], k, 0), k, 1))
  np.testing.assert_array_equal(tiles["bicubic"][::k, ::k], comp.outputs["bicubic"][6:26, 10:30].astype(np.uint8))
  lr_u8 = np.floor(np.clip(comp.lr_y, 0, 1) * 255 + 0.5).astype(np.uint8)[3:13, 5:15]
  np.testing.assert_array_equal(tiles["LR (nearest)"], np.repeat(np.repeat(lr_u8, 2 * k, 0), 2 * k, 1))
  assert all(t.shape[:2] == (100, 100) for t in tiles.values())
  # error map: black where the output equals the reference, the brightest colour at >= the scale's value
  err = np.abs(comp.outputs["bicubic"] - comp.ref_y)[6:26, 10:30]
  emap = tiles["error: bicubic"][::k, ::k]
  assert (emap[err == 0] == [0, 0, 4]).all() and (emap[err >= report.error_scale(comp)] == [252, 255, 164]).all()
  pic = report.montage(tiles)  # LR, bicubic, HR; the error map under bicubic
  assert pic.shape == (2 * 100 + 4, 3 * 100 + 8, 3)
  assert (pic[104:, :100] == 255).all() and (pic[104:, 208:] == 255).all()
  np.testing.assert_array_equal(pic[104:, 104:204], tiles["error: bicubic"])
  np.testing.assert_array_equal(pic[:100, 208:], np.repeat(tiles["HR"][..., None], 3, -1))


def test_colour_crops_keep_each_methods_y():
  hr = np.asarray(Image.open(image_files.builtin_dataset_dir("set5") / "bird.png"))
  spec = weights.load(weights.pretrained_path(3, "t91"))[1]
  comp = report.compare(hr, 3, {"ESPCN": weights.pretrained(3, "t91")}, box=(30, 60, 45))
  assert comp.scores["ESPCN"][0] > comp.scores["bicubic"][0] and spec.scale == 3
  tiles = report.crop_tiles(comp, tile=45)  # zoom 1: the tiles are the crops
  for m in ("bicubic", "ESPCN"):
    y = image_ops.luma_uint8(tiles[m]).astype(float)
    assert np.abs(y - comp.outputs[m][30:75, 60:105]).max() <= 2  # YCbCr -> RGB -> Y, uint8 rounding
  np.testing.assert_array_equal(tiles["HR"], image_ops.modcrop(hr, 3)[30:75, 60:105])


def test_an_rgb_model_is_scored_as_evaluate_scores_it():
  hr = _rng_image((40, 38, 3), 5)
  spec = model.Spec(scale=3, channels=3)
  params = jax.tree_util.tree_map(np.zeros_like, model.init(jax.random.PRNGKey(0), spec))
  params["conv3"]["bias"] = np.linspace(0.2, 0.8, params["conv3"]["bias"].size).astype(np.float32)
  comp = report.compare(hr, 3, {"rgb": (params, spec)})
  expected = evaluate.evaluate_image(hr, 3, params=params, spec=spec)
  assert comp.scores == {"bicubic": expected["bicubic"], "rgb": expected["espcn"]}


def test_paper_references():
  assert paper.reference("Set5", 3, train="t91", activation="tanh") == ("ESPCN (91)", 32.55)
  assert paper.reference("set14", 3, train="t91", activation="relu") == ("ESPCN (91 relu)", 28.97)
  assert paper.reference("Set14", 3, train="imagenet_subset", activation="relu") == ("ESPCN (ImageNet relu)", 29.42)
  assert paper.reference("Set5", 2, train="t91", activation="tanh") is None
  assert paper.reference("Set5", 3, train="t91+bsd200", activation="relu") is None
  assert paper.reference("mine", 3, train="t91", activation="tanh") is None


def test_load_run_from_docs_runs_and_bad_workdirs(tmp_path):
  run = report.load_run(RUNS / "x3_t91_tanh.metrics.jsonl")
  assert run.name == "x3_t91_tanh" and run.error is None and len(run.rows) == 300
  assert run.reference == ("ESPCN (91)", 32.55) and run.val == "set5"
  assert report.load_run(RUNS / "x3_t91_relu.metrics.jsonl").reference == ("ESPCN (91 relu)", 32.39)
  assert report.load_run(RUNS / "x3_t91_cpu_bf16_seed0.metrics.jsonl").reference == ("ESPCN (91)", 32.55)
  assert report.load_run(RUNS / "x3_t91_bsd200.metrics.jsonl").reference is None
  assert report.load_run(RUNS / "x2_t91_tanh.metrics.jsonl").reference is None
  missing = report.load_run(tmp_path / "nope")
  assert missing.rows == [] and "nope: no such workdir" in missing.error
  (tmp_path / "wd").mkdir()
  assert "no metrics.jsonl" in report.load_run(tmp_path / "wd").error
  (tmp_path / "wd" / "metrics.jsonl").write_text('{"step": 4, "train_loss": 0.1}\n{"step": 8, "trai\n')
  run = report.load_run(tmp_path / "wd", config={"scale": 3, "data": {"train": "t91", "val": "set14"},
                                                 "model": {"activation": "tanh"}})
  assert [r["step"] for r in run.rows] == [4] and "1 unreadable line" in run.error
  assert run.name == "wd" and run.reference == ("ESPCN (91)", 29.08)
  # a workdir's config comes from its best.safetensors, also when its metrics.jsonl is named
  spec = model.Spec(scale=3, activation="relu")
  weights.save(tmp_path / "wd" / "best.safetensors", model.init(jax.random.PRNGKey(0), spec), spec,
               {"config": {"scale": 3, "data": {"train": "t91", "val": "set14"}, "model": {"activation": "relu"}}})
  for p in (tmp_path / "wd", tmp_path / "wd" / "metrics.jsonl"):
    run = report.load_run(p)
    assert run.name == "wd" and run.reference == ("ESPCN (91 relu)", 28.97) and run.val == "set14"


def test_two_folders_of_the_same_name_keep_their_own_crops(tmp_path):
  rows = []
  for k in (1, 2):
    folder = tmp_path / str(k) / "imgs"
    folder.mkdir(parents=True)
    Image.fromarray(_rng_image((36, 36, 3), k)).save(folder / "a.png")
    rows += report.evaluate_dataset(folder, 3, {}, tmp_path / "out").rows
  hr = [np.asarray(Image.open(tmp_path / "out" / r["tiles"]["HR"])) for r in rows]
  assert rows[0]["tiles"]["HR"] != rows[1]["tiles"]["HR"] and not np.array_equal(hr[0], hr[1])


def test_wall_minutes_add_up_over_resumed_invocations():
  rows = [{"elapsed_s": 60}, {"elapsed_s": 120}, {"elapsed_s": 30}, {}, {"elapsed_s": 90}]
  assert report.wall_minutes(rows) == [1.0, 2.0, 2.5, None, 3.5]


def test_line_chart_svg():
  svg = report_html.line_chart([("a", [0, 100, 200], [27.0, 31.0, 32.5], "#123456")], [("bicubic", 30.39, "#777")],
                               title="PSNR", xlabel="step", y_floor=29.39)
  assert svg.startswith("<svg") and svg.count("<polyline") == 1 and "bicubic" in svg
  assert "values below 29.4 drawn at the bottom" in svg
  pts = [tuple(map(float, p.split(","))) for p in svg.split('points="')[1].split('"')[0].split()]
  assert pts[0][1] == max(p[1] for p in pts) and pts[0][1] > pts[1][1] > pts[2][1]  # higher PSNR is higher up
  assert "no data" in report_html.line_chart([("a", [], [], "#000")], title="t", xlabel="x")


def test_tiles_html_inlines_the_crops_for_notebooks():
  comp = report.compare(_rng_image((30, 33, 3)), 3)
  tiles = report.crop_tiles(comp)
  out = report_html.tiles_html(tiles, error_scale=report.error_scale(comp))
  parser = _Imgs()
  parser.feed(out)
  assert len(parser.srcs) == len(tiles) == 4 and all(s.startswith("data:image/png;base64,") for s in parser.srcs)
  lr = np.asarray(Image.open(io.BytesIO(base64.b64decode(parser.srcs[0].split(",", 1)[1]))))
  np.testing.assert_array_equal(lr, tiles["LR (nearest)"])
  assert "error maps" in out and "<style>" in out and "body" not in out  # restyles no notebook
  full = report.comparison_html(comp)
  assert full.count("<img") == 4 and "PSNR" in full and full.index("error: bicubic") > full.index("HR")


def test_page_escapes_names_and_says_when_there_is_nothing(tmp_path):
  run = report.Run(name="<script>alert(1)</script>", source="a&b", rows=[{"step": 1, "train_loss": 0.1}])
  page = report.write_report(tmp_path / "r", runs=[run]).read_text()
  assert "<script>alert" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page and "a&amp;b" in page
  assert page.count("<script>") == 1  # the sorting code only
  empty = report.write_report(tmp_path / "e").read_text()
  assert "nothing to show" in empty


class _Imgs(html.parser.HTMLParser):
  def __init__(self):
    super().__init__()
    self.srcs = []

  def handle_starttag(self, tag, attrs):
    if tag == "img":
      self.srcs.append(dict(attrs)["src"])


def test_evaluate_cli_report_with_bad_inputs(tmp_path, capsys):
  folder = tmp_path / "mixed"
  folder.mkdir()
  Image.fromarray(_rng_image((40, 40, 3))).save(folder / "a.png")
  Image.fromarray(_rng_image((33, 35), 1)).save(folder / "b.png")
  (folder / "c_not_image.png").write_text("hello")
  (tmp_path / "wd").mkdir()
  spec = model.Spec(scale=3)
  const = weights.save(tmp_path / "const.safetensors", jax.tree_util.tree_map(np.zeros_like, model.init(
      jax.random.PRNGKey(0), spec)), spec)  # outputs 0 everywhere
  out = tmp_path / "rep"
  rc = evaluate.main(["--bicubic", "--scale", "3", "--data", str(folder), "--data", str(tmp_path / "missing"),
                      "--report", str(out), "--runs", str(RUNS / "x3_t91_tanh.metrics.jsonl"), str(tmp_path / "wd"),
                      "--compare", str(const), "t91_relu"])
  assert rc == 1
  err = capsys.readouterr().err
  assert f"error: {tmp_path / 'wd'}: no metrics.jsonl" in err
  page = (out / "index.html").read_text()
  for msg in ("c_not_image.png", "missing: no such folder", "wd: no metrics.jsonl"):
    assert msg in page
  assert "Training curves" in page and page.count("<svg") == 4
  parser = _Imgs()
  parser.feed(page)
  assert len(parser.srcs) == 2 * 9  # a.png and b.png: overview, LR, 3 methods, HR, 3 error maps
  assert "ESPCN (const)" in page and "ESPCN (espcn_x3_t91_relu)" in page
  assert not re.findall(r"""(?:src|href)=["']?(?:https?:)?//""", page)  # offline: nothing fetched from elsewhere
  assert "<td>mixed</td><td class=n>x3</td><td class=n>2</td>" in page
  assert all((out / s).is_file() for s in parser.srcs)
  assert not list(out.glob("*.tmp"))


def test_evaluate_cli_report_usage_errors(tmp_path, capsys):
  assert evaluate.main(["--bicubic", "--data", "set5", "--runs", str(tmp_path)]) == 2
  assert "--runs needs --report" in capsys.readouterr().err
  (tmp_path / "f").write_text("x")
  assert evaluate.main(["--bicubic", "--data", "set5", "--report", str(tmp_path / "f")]) == 2
  assert "not a folder" in capsys.readouterr().err
  assert evaluate.main(["--bicubic", "--data", "set5", "--compare", "t91_relu"]) == 2
  assert "--compare needs --report" in capsys.readouterr().err
  x2 = str(weights.pretrained_path(2, "t91"))
  for bad, msg, code in ((x2, "x2, not x3", 2), ("nope", "nope: no such weight file", 1)):  # usage; a failed input
    assert evaluate.main(["--data", "set5", "--scale", "3", "--report", str(tmp_path / "r"), "--compare", bad]) == code
    err = capsys.readouterr().err
    assert msg in err and len(err.strip().splitlines()) == 1
  assert not (tmp_path / "r").exists()


class _StopAtOnce(train_io.StopFlag):
  def __enter__(self):
    super().__enter__()
    self.requested = True  # as if Ctrl-C had been pressed before the first step
    return self


def test_train_writes_its_report_and_a_report_problem_never_fails_it(tmp_path, capsys, monkeypatch):
  wd = tmp_path / "wd"
  assert train.main(["--config", "configs/smoke.py", "--workdir", str(wd), "--config.num_epochs=1"]) == 0
  page = (wd / "report" / "index.html").read_text()
  assert "paper ESPCN (91): 32.55" in page and page.count("<svg") == 4
  # Ctrl-C before the first epoch ends: stopped (130), and the page says that there are no metrics yet
  monkeypatch.setattr(train_io, "StopFlag", _StopAtOnce)
  assert train.main(["--config", "configs/smoke.py", "--workdir", str(tmp_path / "wd2")]) == 130
  assert "no metrics.jsonl" in (tmp_path / "wd2" / "report" / "index.html").read_text()
  (tmp_path / "file").write_text("x")
  train.write_report(tmp_path / "file", {"scale": 3})  # report/ cannot be made in a file: one line, no raise
  lines = [line for line in capsys.readouterr().err.splitlines() if "no report written" in line]
  assert len(lines) == 1 and lines[0].startswith("note: no report written (")
