"""Timing the net and its peers: one call's median time (wall and process CPU), the device and its peak, our
forward pass, our bicubic, the same net in PyTorch (eager / torch.compile), onnxruntime and OpenCV dnn on our ONNX
export, and the PSNR drift of reduced precision. Library functions with plain arguments; the command line that
puts them side by side is `python -m espcn_jax.benchmark`.
"""

from __future__ import annotations

import pathlib
import platform
import statistics
import time

import numpy as np

# Dense peak TFLOP/s by (device kind substring, dtype): float32 convs/dots run as TF32 on these GPUs by default.
_GPU_PEAKS = {("H100", "float32"): 494.7, ("H100", "bfloat16"): 989.4, ("H100", "float16"): 989.4,
              ("H200", "float32"): 494.7, ("H200", "bfloat16"): 989.4, ("H200", "float16"): 989.4,
              ("A100", "float32"): 156.0, ("A100", "bfloat16"): 312.0, ("A100", "float16"): 312.0}


CPU_TIMES: list = []  # process CPU seconds of the last time_calls, per call (all threads)


def time_calls(fn, iters: int, warmup: int) -> tuple[float, list[float]]:
  """Median wall seconds of fn() (fn must block until done) over `iters` calls after `warmup`; also all samples.

  Also records the process CPU time of each call (all threads) in CPU_TIMES: on a shared CPU the wall time
  depends on the neighbours' load, the CPU time much less.
  """
  for _ in range(warmup):
    fn()
  ts = []
  CPU_TIMES.clear()
  for _ in range(max(iters, 1)):
    c = time.process_time()
    t = time.perf_counter()
    fn()
    ts.append(time.perf_counter() - t)
    CPU_TIMES.append(time.process_time() - c)
  return statistics.median(ts), ts


def cpu_peak_gflops() -> float | None:
  """Rough fp32 peak of the CPUs this process may use: cores x GHz x FLOPs/cycle (FMA: 2 x SIMD lanes x 2 units)."""
  try:
    info = pathlib.Path("/proc/cpuinfo").read_text()
  except OSError:
    return None
  mhz = [float(l.split(":")[1]) for l in info.splitlines() if l.startswith("cpu MHz")]
  flags = next((l for l in info.splitlines() if l.startswith("flags")), "")
  if not mhz or " fma" not in flags:
    return None
  lanes = 16 if " avx512f" in flags else 8
  return _cpus() * (sum(mhz) / len(mhz)) / 1e3 * lanes * 2 * 2


def _cpus() -> int:
  from espcn_jax import native  # pylint: disable=import-outside-toplevel
  return native.usable_cpus()  # os.sched_getaffinity where it exists (not on macOS: os.cpu_count, said once)


def native_isa() -> str:
  from espcn_jax import native  # pylint: disable=import-outside-toplevel
  return native.isa() or "unavailable"


def device_info():
  import jax  # pylint: disable=import-outside-toplevel
  d = jax.devices()[0]
  kind = getattr(d, "device_kind", d.platform)
  if d.platform == "cpu":
    cpu = platform.processor() or ""
    try:
      cpu = next(l.split(":", 1)[1].strip() for l in pathlib.Path("/proc/cpuinfo").read_text().splitlines()
                 if l.startswith("model name"))
    except (OSError, StopIteration):
      pass
    return f"cpu: {cpu} x{_cpus()} threads", "cpu"
  return f"{d.platform}: {kind}", kind


def peak_tflops(kind: str, dtype: str) -> float | None:
  if kind == "cpu":
    g = cpu_peak_gflops()
    return None if g is None else g / 1e3
  for (sub, dt), v in _GPU_PEAKS.items():
    if sub in kind and dt == dtype:
      return v
  return None


def ours(params, spec, lr_h, lr_w, dtype: str, batch: int, method: str, iters: int, warmup: int):
  import jax  # pylint: disable=import-outside-toplevel
  import jax.numpy as jnp  # pylint: disable=import-outside-toplevel
  from espcn_jax import inference  # pylint: disable=import-outside-toplevel
  dt = None if dtype == "float32" else getattr(jnp, dtype)
  p = jax.device_put(jax.tree_util.tree_map(jnp.asarray, params))
  x = jax.device_put(jnp.asarray(np.random.default_rng(0).random((batch, lr_h, lr_w, spec.channels), np.float32)))
  fn = jax.jit(lambda p, x: inference.forward(p, x, spec, dtype=dt, method=method))
  t = time.perf_counter()
  compiled = fn.lower(p, x).compile()
  compile_s = time.perf_counter() - t
  med, _ = time_calls(lambda: compiled(p, x).block_until_ready(), iters, warmup)
  return med, compile_s, np.asarray(compiled(p, x)[0])


def bicubic(spec, lr_h, lr_w, batch: int, iters: int, warmup: int):
  import jax  # pylint: disable=import-outside-toplevel
  import jax.numpy as jnp  # pylint: disable=import-outside-toplevel
  from espcn_jax import image_ops  # pylint: disable=import-outside-toplevel
  x = jax.device_put(jnp.asarray(np.random.default_rng(0).random((batch, lr_h, lr_w, spec.channels), np.float32)))
  fn = jax.jit(lambda x: image_ops.imresize(x, scale=spec.scale))
  t = time.perf_counter()
  compiled = fn.lower(x).compile()
  compile_s = time.perf_counter() - t
  med, _ = time_calls(lambda: compiled(x).block_until_ready(), iters, warmup)
  return med, compile_s


def torch_net(params, spec):
  """The same net in PyTorch: the one in espcn_jax.backends (the list of every forward pass of the net)."""
  from espcn_jax import backends  # pylint: disable=import-outside-toplevel
  return backends.torch_net(params, spec)


def torch_peer(net, x_nhwc, dtype: str, compiled: bool, iters: int, warmup: int):
  """Returns (median s, compile s, first output NHWC) of the torch net, channels_last, on CUDA when available."""
  import torch  # pylint: disable=import-outside-toplevel
  dev = "cuda" if torch.cuda.is_available() else "cpu"
  tdt = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}[dtype]
  torch.backends.cudnn.benchmark = True
  torch.set_num_threads(_cpus())
  m = net.to(dev).to(tdt).to(memory_format=torch.channels_last)
  x = torch.from_numpy(np.ascontiguousarray(x_nhwc.transpose(0, 3, 1, 2))).to(dev).to(tdt)
  x = x.contiguous(memory_format=torch.channels_last)
  sync = torch.cuda.synchronize if dev == "cuda" else (lambda: None)
  if compiled:
    torch._dynamo.reset()  # pylint: disable=protected-access  # a fresh compile per (dtype, batch), static shapes
    fn = torch.compile(m, dynamic=False)
  else:
    fn = m

  def call():
    with torch.inference_mode():
      y = fn(x)
    sync()
    return y

  t = time.perf_counter()
  y = call()
  compile_s = time.perf_counter() - t
  med, _ = time_calls(call, iters, warmup)
  return med, compile_s, y[0].float().cpu().numpy().transpose(1, 2, 0)


def export_onnx(params, spec, path):
  """The project's own ONNX export (`python -m espcn_jax.export`: DepthToSpace DCR, dynamic sizes), as deployed."""
  import onnx  # pylint: disable=import-outside-toplevel
  from espcn_jax import export_formats  # pylint: disable=import-outside-toplevel  (imports no TensorFlow)
  onnx.save(export_formats.onnx_model(params, spec), str(path))


def onnxruntime_peer(path, x_nhwc, iters: int, warmup: int):
  import onnxruntime as ort  # pylint: disable=import-outside-toplevel
  opts = ort.SessionOptions()
  opts.intra_op_num_threads = _cpus()
  providers = [p for p in ("CUDAExecutionProvider", "CPUExecutionProvider") if p in ort.get_available_providers()]
  t = time.perf_counter()
  sess = ort.InferenceSession(str(path), opts, providers=providers)
  x = np.ascontiguousarray(x_nhwc.transpose(0, 3, 1, 2))
  y = sess.run(None, {"lr": x})[0]
  compile_s = time.perf_counter() - t
  med, _ = time_calls(lambda: sess.run(None, {"lr": x}), iters, warmup)
  return med, compile_s, y[0].transpose(1, 2, 0), sess.get_providers()[0]


def opencv_peer(path, x_nhwc, iters: int, warmup: int):
  import cv2  # pylint: disable=import-outside-toplevel
  cv2.setNumThreads(_cpus())
  t = time.perf_counter()
  net = cv2.dnn.readNetFromONNX(str(path))
  x = np.ascontiguousarray(x_nhwc.transpose(0, 3, 1, 2))

  def call():
    net.setInput(x)
    return net.forward()

  y = call()
  compile_s = time.perf_counter() - t
  med, _ = time_calls(call, iters, warmup)
  return med, compile_s, np.asarray(y)[0].transpose(1, 2, 0)


def psnr_drift(params, spec, paths, dataset: str, method: str):
  """Mean Y PSNR (dB) on a built-in set for each path, x scale, crop_border = scale: {path: psnr}. A path is a dtype
  ("float32", "bfloat16", ...: `method` in it, or what "auto" runs in it where `method` cannot) or a method of its own
  precision ("native-bf16")."""
  import jax.numpy as jnp  # pylint: disable=import-outside-toplevel
  from espcn_jax import backends, image_files, image_ops, inference, metrics  # pylint: disable=import-outside-toplevel
  r = spec.scale
  def upscaler(d):
    if d in inference.METHODS:
      return inference.Upscaler(params, spec, method=d)
    dt = None if d == "float32" else getattr(jnp, d)
    try:
      m = backends.choose(method, dt).method
    except ValueError:  # e.g. native (float32 only) for float16: what "auto" gives that dtype
      m = backends.choose("auto", dt).method
    return inference.Upscaler(params, spec, dtype=dt, method=m)

  ups = {d: upscaler(d) for d in paths}
  scores = {d: [] for d in paths}
  for path in image_files.list_images(image_files.builtin_dataset_dir(dataset)):
    hr = image_files.load_image(path).astype(np.float32) / 255.0
    hr = np.asarray(image_ops.modcrop(hr, r))
    y_hr = np.asarray(image_ops.luma(hr))
    y_hr = y_hr[..., 0] if y_hr.ndim == 3 else y_hr
    lr = np.asarray(image_ops.imresize(y_hr, scale=1.0 / r))
    ref = metrics.quantize(y_hr)  # HR Y on uint8 levels, as MATLAB's rgb2ycbcr on uint8
    for d, up in ups.items():
      scores[d].append(metrics.psnr(metrics.quantize(up.network(lr)), ref, crop_border=r))
  return {d: float(np.mean(v)) for d, v in scores.items()}
