"""Every shipped weight file loads and gives its known PSNR on one Set5 image (so a broken file cannot land)."""

import pathlib

import pytest

from espcn_jax import evaluate, image_files, weights

# PSNR (dB, Y, crop_border = scale) on Set5 bird.png, measured when the files were added; bicubic beside it.
KNOWN_BIRD_PSNR = {
    (2, "t91"): (40.620, 36.806),
    (3, "t91"): (35.311, 32.572),
    (3, "t91_relu"): (35.374, 32.572),
    (3, "t91_bsd200"): (35.386, 32.572),
    (3, "srcnn_t91"): (34.715, 32.572),  # SRCNN 9-5-5 (configs/srcnn_t91_x3.py), not an ESPCN
    (4, "t91"): (32.305, 30.177),
    (3, "best"): (35.479, 32.572),  # configs/best_x3.py (issue #17)
    (4, "best"): (32.774, 30.177),  # configs/best_x4.py, then best_x4_more.py, best_x4_third.py, best_x4_fourth.py
    (2, "best"): (41.336, 36.806),  # configs/best_x2.py, best_x2_more.py, then best_x2_third.py
}

# The "best" files' whole Set5 / Set14 PSNR (python -m espcn_jax.evaluate --data set5 --data set14 --scale S), pinned
# because they are the default weights of every command.
BEST_SET_PSNR = {
    3: (32.678, 29.181),
    4: (30.606, 27.503),
    2: (36.795, 32.413),
}


def test_every_shipped_file_is_pinned():
  assert sorted(weights.available_pretrained()) == sorted(KNOWN_BIRD_PSNR)
  for path in weights.PRETRAINED_DIR.glob("*.safetensors"):
    assert path.stat().st_size < (240_000 if "srcnn" in path.name else 120_000)  # SRCNN: 57,281 params


@pytest.mark.parametrize("scale,variant", sorted(KNOWN_BIRD_PSNR))
def test_shipped_weights_known_psnr(scale, variant):
  params, spec = weights.pretrained(scale, variant)
  if variant.startswith("srcnn"):
    assert (spec.kind, spec.features, spec.kernel_sizes, spec.activation) == ("srcnn", (64, 32), (9, 5, 5), "relu")
  else:
    assert spec.kind == "espcn" and spec.features == (64, 32) and spec.kernel_sizes == (5, 3, 3)
    assert spec.activation == ("relu" if "relu" in variant or "bsd200" in variant else "tanh")
  assert spec.scale == scale
  hr = image_files.load_image(image_files.builtin_dataset_dir("set5") / "bird.png")
  got = evaluate.evaluate_image(hr, scale, params=params, spec=spec)
  want_espcn, want_bicubic = KNOWN_BIRD_PSNR[(scale, variant)]
  assert got["bicubic"][0] == pytest.approx(want_bicubic, abs=0.005)
  assert got["espcn"][0] == pytest.approx(want_espcn, abs=0.01)


def test_default_variant_is_best_where_it_ships():
  for scale in (2, 3, 4):
    want = "best" if scale in BEST_SET_PSNR else "t91"
    assert weights.default_variant(scale) == want
    assert weights.pretrained_path(scale) == pathlib.Path(weights.PRETRAINED_DIR) / f"espcn_x{scale}_{want}.safetensors"
  assert weights.pretrained_path(3, "t91").name == "espcn_x3_t91.safetensors"


@pytest.mark.parametrize("scale", sorted(BEST_SET_PSNR))
def test_best_weights_whole_sets(scale):
  """The default weights score their recorded Set5 / Set14 PSNR, and beat the Table 1 (t91) file of their scale."""
  res = {}
  for variant in ("best", "t91"):
    params, spec = weights.pretrained(scale, variant)
    res[variant] = [next(r["psnr"] for r in evaluate.evaluate_folder(image_files.builtin_dataset_dir(name), scale,
                                                                     params=params, spec=spec)
                         if r["method"] == "espcn") for name in ("set5", "set14")]
  assert res["best"] == pytest.approx(list(BEST_SET_PSNR[scale]), abs=0.002)
  assert res["best"][0] > res["t91"][0] and res["best"][1] > res["t91"][1]
