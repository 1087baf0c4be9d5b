"""Training data: HR patches (B, P, P, C) as uint8, P = 17 * scale, luma (C = 1) by default. LR is made on the device.

Two backends:
  * `PatchSampler` (the default for folders that fit in memory: T91, BSD200): decodes every image once to uint8 Y
    (MATLAB's rgb2ycbcr on uint8, as the evaluation scores it) and draws random patches on the device inside the
    jitted step: `sample(data, key)`. Each patch position of each image is equally likely (big images give more
    patches, like extracting all overlapping patches), optional random flips / transposes (the 8 dihedral maps).
    Needs no TensorFlow.
  * `TfPatchStream`: `tf.data` for large or remote sources (a folder, a tfds dataset such as `div2k/bicubic_x2`, or
    `imagenet2012` restricted to a fixed random subset). Decode -> luma -> cache -> shuffle -> random crop (stateless,
    seeded by the element's position in the stream) -> batch -> prefetch. Each process reads its own shard. The
    stream position is a count of elements, so `TfPatchStream(..., start_element=n)` resumes exactly.

Images smaller than one patch are skipped and counted; unreadable images are skipped, counted and reported.
"""

from __future__ import annotations

import dataclasses
import math
import pathlib
from typing import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from espcn_jax import atomic_io, image_files, image_ops


@dataclasses.dataclass
class LoadStats:
  """What `load_images` kept and skipped."""

  found: int = 0
  loaded: int = 0
  too_small: list[str] = dataclasses.field(default_factory=list)
  corrupt: list[str] = dataclasses.field(default_factory=list)  # one-line messages naming the files

  def summary(self) -> str:
    s = f"{self.loaded} of {self.found} images loaded"
    if self.too_small:
      s += f", {len(self.too_small)} smaller than a patch skipped"
    if self.corrupt:
      s += f", {len(self.corrupt)} unreadable skipped (first: {self.corrupt[0]})"
    return s


def resolve_folder(name: str) -> pathlib.Path:
  """A built-in dataset name ("t91", "bsd200", "set5", "set14") or a folder path."""
  if str(name).lower() in image_files.BUILTIN_DATASETS:
    return image_files.builtin_dataset_dir(name)
  return pathlib.Path(name).expanduser()


def to_channels_u8(img_u8, channels: int) -> np.ndarray:
  """uint8 HxW / HxWx3 -> uint8 HxWxC: MATLAB's uint8 Y for C = 1, RGB (gray repeated) for C = 3."""
  img = np.asarray(img_u8)
  if channels == 1:
    y = image_ops.luma_uint8(img)
    return y if y.ndim == 3 else y[..., None]
  return np.repeat(img[..., None], 3, axis=-1) if img.ndim == 2 else img


def load_images(folders: Sequence, *, channels: int = 1, min_size: int = 1, progress: bool = False,
                paths: Sequence | None = None) -> tuple[list[np.ndarray], LoadStats]:
  """Decodes every image of `folders` (names or paths) to uint8 HxWxC. Raises ImageError if none is usable."""
  from tqdm import tqdm
  if paths is None:
    paths = [p for f in folders for p in image_files.list_images(resolve_folder(f))]
  stats = LoadStats(found=len(paths))
  out = []
  for path in tqdm(paths, desc="decoding", unit="img", disable=not progress, leave=False):
    try:
      img = to_channels_u8(image_files.load_image(path), channels)
    except image_files.ImageError as e:
      stats.corrupt.append(str(e))
      continue
    if min(img.shape[:2]) < min_size:
      stats.too_small.append(str(path))
      continue
    out.append(img)
  stats.loaded = len(out)
  if not out:
    where = ", ".join(str(f) for f in folders) if folders else "the given files"
    raise image_files.ImageError(f"{where}: no usable training image ({stats.summary()})")
  return out, stats


def scale_augment(imgs: Sequence[np.ndarray], factors: Sequence[float], *, min_size: int = 1) -> list[np.ndarray]:
  """`imgs` followed by each image down-scaled by each factor in (0, 1) (FSRCNN's data augmentation: MATLAB bicubic
  `imresize`, rounded back to uint8); copies smaller than `min_size` are left out."""
  bad = [f for f in factors if not 0 < float(f) < 1]
  if bad:
    raise ValueError(f"scale_augment factors must lie in (0, 1), got {bad[0]}")
  out = list(imgs)
  for f in factors:
    for im in imgs:
      h, w = (int(math.ceil(n * float(f))) for n in im.shape[:2])
      if min(h, w) < min_size:
        continue
      small = image_ops.imresize(np.asarray(im, np.float32) / 255.0, output_shape=(h, w))
      out.append(np.clip(np.round(np.asarray(small) * 255.0), 0, 255).astype(np.uint8).reshape(h, w, im.shape[-1]))
  return out


class PatchSampler:
  """Random HR patches drawn on the device from images held in one flat uint8 buffer.

      sampler = PatchSampler(imgs, patch_size=51, batch_size=64, augment=True)
      hr_BxPxPxC = sampler.sample(sampler.data, key)   # pure, jit-able; `data` is a pytree of arrays
  """

  def __init__(self, imgs: Sequence[np.ndarray], *, patch_size: int, batch_size: int, augment: bool = False):
    imgs = [np.asarray(im, np.uint8) for im in imgs]
    if not imgs:
      raise ValueError("PatchSampler needs at least one image")
    c = imgs[0].shape[-1]
    if any(im.ndim != 3 or im.shape[-1] != c for im in imgs):
      raise ValueError("PatchSampler needs HxWxC images with the same number of channels")
    small = [im.shape for im in imgs if min(im.shape[:2]) < patch_size]
    if small:
      raise ValueError(f"{len(small)} images are smaller than the patch size {patch_size}, e.g. {small[0]}")
    self.patch_size, self.batch_size, self.channels, self.augment = patch_size, batch_size, c, augment
    sizes = np.array([im.size for im in imgs], np.int64)
    if sizes.sum() >= 2 ** 31:
      raise ValueError(f"{sizes.sum()} pixel values do not fit the in-memory sampler; use the tf.data backend")
    nx = np.array([im.shape[1] - patch_size + 1 for im in imgs], np.int64)
    ny = np.array([im.shape[0] - patch_size + 1 for im in imgs], np.int64)
    positions = nx * ny
    self.num_images, self.num_positions = len(imgs), int(positions.sum())
    self.data = {
        "pixels": np.concatenate([im.reshape(-1) for im in imgs]),
        "offsets": np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int32),
        "widths": np.array([im.shape[1] for im in imgs], np.int32),
        "nx": nx.astype(np.int32),
        "ends": np.cumsum(positions).astype(np.int32),  # positions of images 0..i
    }
    if self.num_positions >= 2 ** 31:
      raise ValueError("too many patch positions for the in-memory sampler; use the tf.data backend")

  def sample(self, data, key):
    """(B, P, P, C) uint8 patches; uniform over all patch positions of all images, optionally augmented."""
    p, c, b = self.patch_size, self.channels, self.batch_size
    k_pos, k_aug = jax.random.split(key)
    u = jax.random.randint(k_pos, (b,), 0, self.num_positions, dtype=jnp.int32)
    img = jnp.searchsorted(data["ends"], u, side="right")
    start = jnp.where(img > 0, data["ends"][jnp.maximum(img - 1, 0)], 0)
    rem = u - start
    y, x = rem // data["nx"][img], rem % data["nx"][img]
    w = data["widths"][img]
    rows = (y[:, None] + jnp.arange(p)[None, :]) * w[:, None] * c  # (B, P)
    cols = (x[:, None] * c + jnp.arange(p * c)[None, :])  # (B, P*C)
    idx = data["offsets"][img][:, None, None] + rows[:, :, None] + cols[:, None, :]
    patches = jnp.take(data["pixels"], idx, mode="clip").reshape(b, p, p, c)
    if self.augment:
      patches = dihedral(patches, k_aug)
    return patches


def dihedral(x_BxPxPxC, key):
  """Applies one of the 8 flips / transposes of a square patch, chosen per patch."""
  flags = jax.random.bernoulli(key, 0.5, (3, x_BxPxPxC.shape[0]))
  sel = lambda f, a, b: jnp.where(f[:, None, None, None], a, b)
  x = sel(flags[0], x_BxPxPxC[:, ::-1], x_BxPxPxC)
  x = sel(flags[1], x[:, :, ::-1], x)
  return sel(flags[2], jnp.swapaxes(x, 1, 2), x)


# ----------------------------------------------------------------------------------------------------------------
# tf.data backend (TensorFlow imported lazily; it never takes a GPU).


def _tf():
  try:
    import tensorflow as tf
  except ImportError:
    raise ImportError("the tf.data pipeline (data.backend=tfdata, tfds:NAME, imagenet_subset) needs TensorFlow, "
                      "which is not installed: pip install 'espcn-jax[tf]'") from None
  tf.config.set_visible_devices([], "GPU")
  return tf


def _tf_luma_u8(tf, img):
  """MATLAB's uint8 Y of a uint8 HxWx3 (or HxWx1) tensor, as `image_ops.luma_uint8` (float64, round half up)."""
  if img.shape[-1] == 1:
    return img
  w = tf.constant(image_ops._T255[0], tf.float64)
  y = 16.0 + tf.reduce_sum(tf.cast(img, tf.float64) * w, axis=-1, keepdims=True) / 255.0
  return tf.cast(tf.floor(y + 0.5), tf.uint8)


def imagenet_subset_ids(builder, split: str, num: int, seed: int, record_path: pathlib.Path) -> list[str]:
  """`num` file names drawn with `seed` from a tfds split, recorded in (or read back from) `record_path`."""
  import tensorflow_datasets as tfds
  record_path = pathlib.Path(record_path)
  if record_path.is_file():
    ids = record_path.read_text().split()
    if len(ids) != num:
      raise ValueError(f"{record_path}: holds {len(ids)} ids, the config asks for {num}; use another workdir")
    return ids
  ds = builder.as_dataset(split=split, decoders={"image": tfds.decode.SkipDecoding()}, shuffle_files=False)
  names = sorted(n.decode() for n in ds.map(lambda e: e["file_name"]).as_numpy_iterator())
  if len(names) < num:
    raise ValueError(f"{builder.name}/{split}: only {len(names)} images, asked for {num}")
  ids = sorted(np.random.default_rng(seed).choice(names, size=num, replace=False).tolist())
  atomic_io.write_text(record_path, "\n".join(ids) + "\n")
  return ids


def train_sources(value) -> list[str]:
  """data.train as a list of sources: a list or tuple as it is; a string that names an existing folder is one source
  (its name may contain "+"); another string is split on "+" ("t91+bsd200", the older way to give several)."""
  if isinstance(value, (list, tuple)):
    return [str(v) for v in value]
  value = str(value)
  if pathlib.Path(value).is_dir() or value.startswith("tfds:"):
    return [value]
  return value.split("+")


def is_remote(value) -> bool:
  """A data.train value streamed from tfds (tf.data backend only)."""
  return isinstance(value, str) and (value.startswith("tfds:") or value == "imagenet_subset")


class TfPatchStream:
  """An endless, deterministic stream of (B_local, P, P, C) uint8 HR patches from tf.data for this process.

  `source`: "tfds:NAME[:SPLIT]" (e.g. "tfds:div2k/bicubic_x2:train"; the HR key "hr" or "image" is used),
  "imagenet_subset" (tfds imagenet2012 from `manual_dir`, `subset_size` images drawn with `seed`, ids recorded
  at `subset_record`), or a folder / built-in name. Iterate with `next(stream)`; `stream.position` is the number
  of images (patches) consumed so far by this process, the value to pass back as `start_element` to resume.
  """

  def __init__(self, source: str, *, patch_size: int, batch_size: int, channels: int = 1, seed: int = 0,
               augment: bool = False, shuffle_buffer: int = 1024, cache: str | bool = True, start_element: int = 0,
               data_dir: str | None = None, manual_dir: str | None = None, subset_size: int = 50000,
               subset_record: str | None = None, process_index: int | None = None,
               process_count: int | None = None):
    tf = _tf()
    pi = jax.process_index() if process_index is None else process_index
    pc = jax.process_count() if process_count is None else process_count
    self.batch_size, self.position = batch_size, int(start_element)
    self.skipped: list[str] = []  # corrupt files from folder sources (filled while the first pass runs)
    ds = self._images(tf, source, channels, seed, pi, pc, data_dir, manual_dir, subset_size, subset_record)
    ds = ds.filter(lambda im: tf.minimum(tf.shape(im)[0], tf.shape(im)[1]) >= patch_size)
    if cache:
      ds = ds.cache("" if cache is True else str(cache))
    ds = ds.shuffle(shuffle_buffer, seed=seed, reshuffle_each_iteration=True).repeat()
    ds = ds.enumerate().skip(self.position)

    def crop(i, im):
      s = tf.stack([tf.constant(seed, tf.int64), i])
      x = tf.image.stateless_random_crop(im, (patch_size, patch_size, channels), seed=s)
      if augment:
        x = tf.image.stateless_random_flip_left_right(x, seed=s + 1)
        x = tf.image.stateless_random_flip_up_down(x, seed=s + 2)
        x = tf.cond(tf.random.stateless_uniform((), s + 3) < 0.5, lambda: tf.transpose(x, (1, 0, 2)), lambda: x)
      return x

    ds = ds.map(crop, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    ds = ds.batch(batch_size, drop_remainder=True).prefetch(tf.data.AUTOTUNE)
    opts = tf.data.Options()
    opts.deterministic = True
    self._it = iter(ds.with_options(opts).as_numpy_iterator())

  def _images(self, tf, source, channels, seed, pi, pc, data_dir, manual_dir, subset_size, subset_record):
    if source.startswith("tfds:") or source == "imagenet_subset":
      import tensorflow_datasets as tfds
      if source == "imagenet_subset":
        name, split = "imagenet2012", "train"
      else:
        name, _, split = source[len("tfds:"):].partition(":")
        split = split or "train"
      cfg = tfds.download.DownloadConfig(manual_dir=manual_dir) if manual_dir else None
      builder = tfds.builder(name, data_dir=data_dir)
      builder.download_and_prepare(download_config=cfg)
      ds = builder.as_dataset(split=tfds.split_for_jax_process(split, process_index=pi, process_count=pc),
                              shuffle_files=False)
      if source == "imagenet_subset":
        if not subset_record:
          raise ValueError("imagenet_subset needs subset_record (a path in the workdir)")
        ids = imagenet_subset_ids(builder, split, subset_size, seed, pathlib.Path(subset_record))
        table = tf.lookup.StaticHashTable(tf.lookup.KeyValueTensorInitializer(ids, tf.ones(len(ids), tf.int32)), 0)
        ds = ds.filter(lambda e: table.lookup(e["file_name"]) > 0)
      key = "hr" if "hr" in builder.info.features else "image"
      ds = ds.map(lambda e: e[key]).ignore_errors()
      if channels == 1:
        ds = ds.map(lambda im: _tf_luma_u8(tf, im), num_parallel_calls=tf.data.AUTOTUNE)
      return ds
    paths = image_files.list_images(resolve_folder(source))[pi::pc]

    def gen():
      for p in paths:
        try:
          yield to_channels_u8(image_files.load_image(p), channels)
        except image_files.ImageError as e:
          self.skipped.append(str(e))

    return tf.data.Dataset.from_generator(gen, output_signature=tf.TensorSpec((None, None, channels), tf.uint8))

  def __iter__(self):
    return self

  def __next__(self) -> np.ndarray:
    batch = next(self._it)
    self.position += self.batch_size
    return batch

  def take(self, k: int) -> np.ndarray:
    """`k` batches stacked: (k, B_local, P, P, C)."""
    return np.stack([next(self) for _ in range(k)])
