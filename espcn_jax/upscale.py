"""Upscale images, folders and videos with ESPCN.

    python -m espcn_jax.upscale photo.jpg -o photo_x3.png
    python -m espcn_jax.upscale data/Set5 data/Set14 clip.mp4 -o out/ --scale 3
    python -m espcn_jax.upscale big.tif -o big_x3.tif --weights runs/x3/best.safetensors --tile 256
    ffmpeg -i in.mkv -f yuv4mpegpipe - | python -m espcn_jax.upscale - -o - | ffplay -     # streaming (y4m)

Colour pictures: Y through the net, Cb and Cr by bicubic (an RGB net takes RGB); grayscale stays grayscale; alpha is
upscaled by bicubic and kept. One input file and an output name with an image/video suffix: that file. Otherwise
OUTPUT is a folder: files keep their names, folders their relative layout (under the folder's name when several
inputs are given); an output folder inside an input folder is not read back. Inputs (and --weights) are never
overwritten, also through links; a bad file prints one line naming it, the rest are processed and the exit code is
1. Videos are decoded, upscaled and encoded at the same time (--verbose prints where the time went); `- -o -`
reads a y4m stream from standard input and writes the upscaled one to standard output (espcn_jax.stream). Pictures
keep what their output format can hold (EXIF orientation applied, 16-bit grayscale, alpha, ICC profile, GIF frames:
espcn_jax.image_files), with one note per file on what it cannot. Shipped weights (--variant) or --weights; random
weights only with --random-weights. No TensorFlow is imported.
"""

from __future__ import annotations

import pathlib
import sys

import numpy as np

from espcn_jax import (atomic_io, auto_precision, cli, frame_pipeline, image_files, inference, model, plane_net,
                       stream, video, weights)

def _parse(argv):
  p = cli.parser("python -m espcn_jax.upscale", __doc__.split("\n\n")[0])
  p.add_argument("inputs", nargs="+", metavar="INPUT",
                 help="image/video files or folders (searched recursively); - : a y4m stream on stdin (with -o -)")
  p.add_argument("-o", "--output", required=True, help="output file (one input) or folder; - : y4m on stdout")
  p.add_argument("--scale", type=int, default=None, help="upscaling factor (None: the weights', else 3)")
  cli.add_weights(p)
  p.add_argument("--tile", type=cli.positive_int, default=512, help="largest LR canvas side; bigger pictures are tiled")
  p.add_argument("--batch", type=cli.positive_int, metavar="N", default=8,
                 help="canvases / video frames per call of the net")
  p.add_argument("--dtype", choices=cli.DTYPES, default="float32", help="compute dtype of the net")
  p.add_argument("--method", choices=inference.METHODS, default="auto",
                 help="the kernel (see inference); auto: native-bf16 on AMX CPUs for weights measured within the "
                      "drift budget (espcn_jax/auto_precision.py), else float32")
  p.add_argument("--preset", choices=video.X264_PRESETS, default=None,
                 help="libx264 preset for .mp4/.mkv/.mov outputs (None: ffmpeg's medium; veryfast encodes "
                      "~2.7x faster, about the same quality)")
  p.add_argument("--crf", type=float, default=None,
                 help="libx264 rate factor for .mp4/.mkv/.mov outputs, 0-51, lower is better and larger (None: 10, "
                      "near-transparent; ffmpeg's own default is 23, 6-7x smaller files)")
  p.add_argument("--quality", type=int, default=image_files.DEFAULT_QUALITY, help="JPEG / WebP quality, 1-100")
  p.add_argument("--allow-partial", action="store_true",
                 help="keep a video's output when fewer frames than the container announces could be read")
  p.add_argument("--random-weights", action="store_true",
                 help="without shipped weights for the scale: random ones (tests only; NOT super-resolved)")
  p.add_argument("--quiet", action="store_true", help="no progress bars")
  p.add_argument("--verbose", action="store_true",
                 help="print each video's time per stage (decode, net, colour, encode, waiting) to stderr")
  args = p.parse_args(argv)
  if ("-" in args.inputs or args.output == "-") and (args.inputs != ["-"] or args.output != "-"):
    p.error("streaming is `- -o -` (a y4m stream in on stdin, out on stdout); '-' cannot mix with files")
  if not 1 <= args.quality <= 100:
    p.error(f"--quality must be in 1-100, got {args.quality}")
  if args.crf is not None and not 0 <= args.crf <= 51:
    p.error(f"--crf must be in 0-51, got {args.crf:g}")
  return args


def _load_net(weight_file, scale, random_weights: bool = False, variant: str | None = None):
  """Returns (params, spec): the weight file's, else the shipped weights; random ones only if asked for."""
  if weight_file:
    params, spec, _ = weights.load(weight_file)
    if scale is not None and scale != spec.scale:
      raise cli.UsageError(f"{weight_file}: trained for x{spec.scale}, but --scale {scale} was asked")
    return params, spec
  scale = 3 if scale is None else scale
  try:
    return weights.pretrained(scale, variant)
  except weights.WeightsError as e:
    if not random_weights:
      raise weights.WeightsError(f"{e}; give --weights (or --random-weights to test with random ones)") from None
    import jax  # pylint: disable=import-outside-toplevel
    print("warning: using RANDOM weights: the output is NOT super-resolved", file=sys.stderr)
    spec = model.Spec(scale=scale)
    return model.init(jax.random.PRNGKey(0), spec), spec


def _is_media(path: pathlib.Path) -> bool:
  return path.suffix.lower() in image_files.IMAGE_EXTENSIONS or video.is_video(path)


def _found(src: pathlib.Path, output: pathlib.Path):
  """Media files under folder `src`, leaving out hidden and temp files and everything under `output` (so an output
  folder inside the input folder is never read back as input)."""
  out = output.resolve()
  for p in sorted(src.rglob("*")):
    if p.name.startswith(".") or not _is_media(p) or not p.is_file():
      continue
    if p.resolve().is_relative_to(out):
      continue
    yield p


def plan_jobs(inputs, output):
  """[(src, dst)] for every input file; folders are searched recursively and keep their relative names.

  Raises ValueError (one line) for an input that does not exist or a folder without images or videos.
  """
  output = pathlib.Path(output)
  srcs = [pathlib.Path(s) for s in inputs]
  single_file = len(srcs) == 1 and srcs[0].is_file() and _is_media(output)
  jobs = []
  for src in srcs:
    if single_file:
      jobs.append((src, output))
    elif src.is_dir():
      found = list(_found(src, output))
      if not found:
        raise ValueError(f"{src}: no images or videos in this folder or its subfolders")
      base = output if len(srcs) == 1 else output / src.resolve().name
      jobs.extend((p, base / p.relative_to(src)) for p in found)
    elif src.exists():
      jobs.append((src, output / src.name))
    else:
      raise ValueError(f"{src}: no such file or folder")
  return jobs


def upscale_image_file(up: inference.Upscaler, src: pathlib.Path, dst: pathlib.Path, quality: int) -> list[str]:
  """Upscales every frame of `src` into `dst`; returns notes on what `dst`'s format could not keep."""
  pic = image_files.read_picture(src)
  frames = []
  for f in pic.frames:
    if f.dtype == np.uint16:  # 16-bit: through the net in float, back to 16 bits
      frames.append(np.floor(up.image(f.astype(np.float32) / 65535.0) * 65535.0 + 0.5).astype(np.uint16))
    else:
      frames.append(up.image(f))
  return pic.notes + image_files.write_picture(dst, pic.with_frames(frames), quality=quality)


def _stream(args, params, spec, dtype) -> int:
  """`- -o -`: y4m from stdin to stdout (espcn_jax.stream); messages to stderr only."""
  times = frame_pipeline.StageTimes()
  with stream.stdout_for_stream() as out:
    try:
      net = plane_net.PlaneNet(params, spec, dtype=dtype, method=args.method)
      n = stream.upscale_y4m(sys.stdin.buffer, out, net, name="stdin", times=times)
    except stream.OutputClosed as e:
      print(f"note: stdout: {e}", file=sys.stderr)
      return cli.OK
    except (ValueError, OSError) as e:  # Y4MError is a ValueError
      print(f"error: {str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__}", file=sys.stderr)
      return cli.FAILED
  if args.verbose:
    print(times.table(n), file=sys.stderr)
  if not args.quiet:
    print(f"{n} frame(s) upscaled x{spec.scale}: stdin -> stdout", file=sys.stderr)
  return cli.OK


@cli.exits_130_on_interrupt
def main(argv) -> int:
  args = _parse(argv)
  streaming = args.inputs == ["-"]
  try:
    jobs = [] if streaming else plan_jobs(args.inputs, args.output)
    params, spec = _load_net(args.weights, args.scale, args.random_weights, args.variant)
  except cli.UsageError as e:
    print(f"error: {e}", file=sys.stderr)
    return cli.USAGE
  except (ValueError, OSError) as e:
    print(f"error: {e}", file=sys.stderr)
    return cli.FAILED
  dtype = None
  if args.dtype != "float32":
    import jax.numpy as jnp  # pylint: disable=import-outside-toplevel
    dtype = getattr(jnp, args.dtype)
  args.method = auto_precision.method_for(params, spec, args.method, dtype)  # native-bf16 where measured within budget
  try:
    up = inference.Upscaler(params, spec, dtype=dtype, method=args.method, tile=args.tile, max_batch=args.batch)
  except ValueError as e:
    print(f"error: {e}", file=sys.stderr)
    return cli.FAILED
  if streaming:
    return _stream(args, params, spec, dtype)
  planes = plane_net.PlaneNet(params, spec, dtype=dtype, method=args.method)
  inputs = [p for p, _ in jobs] + ([args.weights] if args.weights else [])
  written: set = set()
  failed = 0
  from tqdm import tqdm  # pylint: disable=import-outside-toplevel
  bar = tqdm(jobs, desc=f"x{spec.scale}", unit="file", disable=args.quiet or len(jobs) < 2)
  for src, dst in bar:
    try:
      atomic_io.refuse_inputs(dst, inputs)
      if dst.resolve() in written:
        raise ValueError(f"{dst}: two inputs map to this output ({src} would overwrite it)")
      if not src.is_file():
        raise ValueError(f"{src}: no such file")
      if video.is_video(src):
        if not video.is_video(dst):
          raise ValueError(f"{dst}: a video ({src.name}) needs a video output name")
        notes, times = [], frame_pipeline.StageTimes()
        n = video.upscale_video(src, dst, planes, frames_per_call=up.frames_per_call, preset=args.preset,
                                crf=args.crf, progress=not args.quiet, allow_partial=args.allow_partial, notes=notes,
                                times=times)
        if args.verbose:
          bar.write(f"{src}: time per stage (they overlap)\n{times.table(n)}", file=sys.stderr)
      else:
        if video.is_video(dst):
          raise ValueError(f"{dst}: an image ({src.name}) needs an image output name")
        notes = upscale_image_file(up, src, dst, args.quality)
      if notes:
        bar.write(f"note: {dst}: {'; '.join(notes)}", file=sys.stderr)
      written.add(dst.resolve())
    except (ValueError, OSError) as e:  # ImageError, VideoError, WeightsError are ValueErrors
      failed += 1
      msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
      bar.write(f"error: {msg}", file=sys.stderr)
  if not args.quiet:
    print(f"{len(jobs) - failed} of {len(jobs)} file(s) upscaled x{spec.scale} -> {args.output}", file=sys.stderr)
  return cli.FAILED if failed else cli.OK


def run():
  sys.exit(main(sys.argv[1:]))


if __name__ == "__main__":
  run()
