"""Tests of espcn_jax.input_pipeline: the in-memory patch sampler and the tf.data stream."""

import importlib.util

import jax
import numpy as np
import pytest
from numpy.lib.stride_tricks import sliding_window_view
from PIL import Image

from espcn_jax import image_files, image_ops
from espcn_jax import input_pipeline as ip


def _imgs(seed=0):
  rng = np.random.default_rng(seed)
  return [rng.integers(0, 256, (20, 25, 1), dtype=np.uint8), rng.integers(0, 256, (12, 30, 1), dtype=np.uint8)]


def _is_crop(patch, imgs):
  p = patch.shape[0]
  return any((sliding_window_view(im[..., 0], (p, p)) == patch[..., 0]).all(axis=(-1, -2)).any() for im in imgs)


def test_sampler_draws_crops_deterministically():
  imgs = _imgs()
  s = ip.PatchSampler(imgs, patch_size=9, batch_size=16)
  a = np.asarray(jax.jit(s.sample)(s.data, jax.random.key(0)))
  b = np.asarray(s.sample(s.data, jax.random.key(0)))
  c = np.asarray(s.sample(s.data, jax.random.key(1)))
  assert a.shape == (16, 9, 9, 1) and a.dtype == np.uint8
  np.testing.assert_array_equal(a, b)
  assert not np.array_equal(a, c)
  assert all(_is_crop(p, imgs) for p in a)
  assert s.num_positions == 12 * 17 + 4 * 22


def test_sampler_covers_all_positions_uniformly():
  img = np.arange(12 * 12, dtype=np.uint8).reshape(12, 12, 1)
  s = ip.PatchSampler([img], patch_size=10, batch_size=4000)
  corners = np.asarray(s.sample(s.data, jax.random.key(0)))[:, 0, 0, 0]
  counts = np.bincount(corners, minlength=144)[[0, 1, 2, 12, 13, 14, 24, 25, 26]]
  assert counts.min() > 300 and counts.sum() == 4000  # 9 positions, ~444 each


def test_sampler_augment_gives_dihedral_images_of_crops():
  imgs = _imgs(1)
  s = ip.PatchSampler(imgs, patch_size=7, batch_size=64, augment=True)
  out = np.asarray(s.sample(s.data, jax.random.key(3)))
  variants = lambda p: [np.rot90(q, k) for q in (p, p[::-1]) for k in range(4)]
  assert all(any(_is_crop(v.copy(), imgs) for v in variants(p)) for p in out)
  assert not all(_is_crop(p, imgs) for p in out)


def test_sampler_rejects_small_images():
  with pytest.raises(ValueError, match="smaller than the patch"):
    ip.PatchSampler(_imgs(), patch_size=13, batch_size=2)


def test_load_images_skips_and_counts(tmp_path):
  rgb = np.random.default_rng(0).integers(0, 256, (40, 40, 3), dtype=np.uint8)
  Image.fromarray(rgb).save(tmp_path / "a.png")
  Image.fromarray(rgb[:10, :10]).save(tmp_path / "small.png")
  (tmp_path / "broken.png").write_bytes(b"not a png")
  imgs, stats = ip.load_images([tmp_path], min_size=20)
  assert len(imgs) == 1 and stats.found == 3 and stats.loaded == 1
  assert len(stats.too_small) == 1 and len(stats.corrupt) == 1 and "broken.png" in stats.corrupt[0]
  np.testing.assert_array_equal(imgs[0][..., 0], image_ops.luma_uint8(rgb))
  assert "1 of 3" in stats.summary()


def test_load_images_errors(tmp_path):
  with pytest.raises(image_files.ImageError, match="no images"):
    ip.load_images([tmp_path])
  Image.fromarray(np.zeros((5, 5), np.uint8)).save(tmp_path / "tiny.png")
  with pytest.raises(image_files.ImageError, match="no usable training image"):
    ip.load_images([tmp_path], min_size=10)


def test_resolve_folder():
  assert ip.resolve_folder("t91").name == "T91"
  assert str(ip.resolve_folder("/x/y")) == "/x/y"


@pytest.mark.skipif(importlib.util.find_spec("tensorflow") is None, reason="needs TensorFlow")
def test_tf_stream_shapes_determinism_and_resume(tmp_path):
  rng = np.random.default_rng(0)
  for i in range(5):
    Image.fromarray(rng.integers(0, 256, (30 + i, 28, 3), dtype=np.uint8)).save(tmp_path / f"{i}.png")
  Image.fromarray(rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)).save(tmp_path / "small.png")
  kw = dict(patch_size=12, batch_size=4, seed=7, augment=True, shuffle_buffer=8, process_index=0, process_count=1)
  s1 = ip.TfPatchStream(str(tmp_path), **kw)
  a = s1.take(4)
  assert a.shape == (4, 4, 12, 12, 1) and a.dtype == np.uint8
  assert s1.position == 16
  np.testing.assert_array_equal(ip.TfPatchStream(str(tmp_path), **kw).take(4), a)
  resumed = ip.TfPatchStream(str(tmp_path), start_element=8, **kw)
  np.testing.assert_array_equal(resumed.take(2), a[2:])
  other = ip.TfPatchStream(str(tmp_path), process_index=1, process_count=2,
                           **{k: v for k, v in kw.items() if not k.startswith("process")})
  assert not np.array_equal(other.take(1)[0], a[0])


def test_scale_augment_adds_matlab_downscaled_copies():
  rng = np.random.default_rng(0)
  imgs = [rng.integers(0, 256, (40, 30, 1), dtype=np.uint8), rng.integers(0, 256, (20, 50, 1), dtype=np.uint8)]
  out = ip.scale_augment(imgs, (0.9, 0.6), min_size=15)
  assert [im.shape for im in out] == [(40, 30, 1), (20, 50, 1), (36, 27, 1), (18, 45, 1), (24, 18, 1)]  # 12x30 dropped
  assert all(im.dtype == np.uint8 for im in out)
  want = image_ops.imresize(imgs[0].astype(np.float32) / 255, output_shape=(36, 27))
  np.testing.assert_array_equal(out[2], np.clip(np.round(np.asarray(want) * 255), 0, 255).astype(np.uint8))
  with pytest.raises(ValueError, match=r"in \(0, 1\)"):
    ip.scale_augment(imgs, (1.5,))
