"""Every forward pass of the ESPCN net, listed in one place. `model.apply` is the reference; each backend below must
agree with it to its stated tolerance (tests/test_backends.py runs every available one on real images with the
shipped weights).

    b = backends.choose("auto")                     # what `auto` runs here (inference.resolve_method's rule)
    b = backends.get("onnxruntime")                 # or one by name (NAMES)
    if b.unavailable_reason() is None:              # a missing package, no native kernel, no CUDA...
      fn = b.prepare(params, spec, workdir)         # builds, exports into workdir, or compiles, once
      hr_BxrHxrWxC = fn(lr_BxHxWxC)                 # float32 numpy in [0, 1] -> float32 numpy, unclipped

Backends (tolerance: max |backend - model.apply| on [0, 1] images, `atol`; on GPU machines see `tolerance()`):
  conv, fma, native          inference.forward's methods in float32 (XLA conv; XLA with the one-channel first layer as
                             fused shifted multiply-adds; the fused C++ kernel with Winograd 3x3 layers): 1e-5
  conv-bfloat16, ...         inference.forward with bfloat16 / float16 operands (float32 sums, bias and tanh): 2e-2 /
                             3e-3
  native-direct              native.forward(winograd=False): 1e-5
  native-bf16                inference.forward(method="native-bf16"): the native kernel with the layers of >= 8 inputs
                             on AMX tiles (bf16 operands, float32 sums; CPUs with AMX-BF16): 2e-2
  native-training(-bf16)     native.training.apply (the training kernels' forward pass): 1e-5; bf16 operands: 2e-2
  torch, torch_compile       the same net in PyTorch (channels_last; CUDA when present), eager / torch.compile;
                             float32 1e-5, -bfloat16 2e-2, -float16 (CUDA only) 3e-3
  onnxruntime, opencv        the ONNX export (export_formats) run by onnxruntime / OpenCV dnn: 1e-5
  tflite, tflite_tfnn,       the TF exports (jax2tf; tfnn and pb: tf.nn; pb: luma nets only) run by TFLite /
  savedmodel, pb             TensorFlow: 1e-5

Which command runs which (written down here only):
  evaluate    model.apply: the scores are the reference net's, whatever the fast paths do (train's validation too)
  train       native-training(-bf16) when train_step.use_native says so (one CPU device, float32), else model.apply
  upscale     --method, default "auto": native-bf16 on CPUs with AMX-BF16 for weights measured within the drift
              budget (auto_precision.method_for), else choose("auto"): native on the CPU in float32 where the kernel
              loads, fma on the CPU otherwise, conv on GPUs
  benchmark   --method for ours (the first one is compared with the peers; native-bf16 added on AMX CPUs) in each
              --dtype, and benchmark.PEERS: torch, torch_compile (each --dtype), opencv, onnxruntime; it says which
              one `auto` runs for the weights (auto_precision)
  export      writes onnx / savedmodel / tflite / pb and checks the file with its runtime against model.apply;
              --benchmark times choose("auto"), onnxruntime, opencv and tflite_tfnn
"""

from __future__ import annotations

import dataclasses
import functools
import importlib.util
import pathlib
from typing import Callable

import numpy as np

from espcn_jax import export_formats, model, ps

DTYPES = ("float32", "bfloat16", "float16")
_ATOL = {"float32": 1e-5, "bfloat16": 2e-2, "float16": 3e-3}


@dataclasses.dataclass(frozen=True)
class Backend:
  """One way to run the net. `prepare(params, spec, workdir)` -> fn(lr_BxHxWxC) -> hr_BxrHxrWxC (numpy float32)."""
  name: str
  what: str
  dtype: str
  atol: float
  requires: tuple[str, ...]
  make: Callable = dataclasses.field(repr=False)
  check: Callable[[], str | None] = dataclasses.field(repr=False, default=lambda: None)
  method: str | None = None  # inference.forward's method, for ours
  channels: tuple[int, ...] = (1, 3)  # the nets it takes: luma (1) and / or RGB (3)

  def unavailable_reason(self, spec: model.Spec | None = None) -> str | None:
    """None when it runs here (for `spec`'s net), else why not (one line)."""
    if spec is not None and spec.channels not in self.channels:
      return f"takes nets of {' or '.join(map(str, self.channels))} channel(s), not {spec.channels}"
    if spec is not None and spec.kind != "espcn" and self.method not in ("auto", "conv"):
      return f"computes ESPCN only, not the {spec.kind} net (espcn_jax.baselines: XLA's 'conv')"
    for module in self.requires:
      if importlib.util.find_spec(module) is None:
        return f"{module} is not installed"
    return self.check()

  def tolerance(self) -> float:
    """`atol`, or on a machine with a GPU the float16 one for float32 backends too: JAX, PyTorch and TensorFlow run
    float32 convolutions there as TF32 (10-bit mantissa) by default. Not yet checked on a GPU."""
    import jax  # pylint: disable=import-outside-toplevel
    if self.dtype == "float32" and jax.default_backend() != "cpu":
      return max(self.atol, _ATOL["float16"])
    return self.atol

  def prepare(self, params, spec: model.Spec, workdir):
    reason = self.unavailable_reason(spec)
    if reason is not None:
      raise RuntimeError(f"backend {self.name} is unavailable here: {reason}")
    return self.make(params, spec, pathlib.Path(workdir))


def name_of(base: str, dtype: str = "float32") -> str:
  """The backend's name: `base` in float32, `base-dtype` in reduced precision."""
  return base if dtype in (None, "float32") else f"{base}-{dtype}"


def reference(params, lr_BxHxWxC, spec: model.Spec):
  """`model.apply` in full float32 (no TF32 on GPUs): what every backend is compared with."""
  import jax  # pylint: disable=import-outside-toplevel
  with jax.default_matmul_precision("highest"):
    return np.asarray(model.apply(params, lr_BxHxWxC, spec))


# ------------------------------------------------------------------------------------------------------------ ours


def _cpu_kernel_reason(bf16: bool = False) -> str | None:
  import jax  # pylint: disable=import-outside-toplevel
  from espcn_jax import native  # pylint: disable=import-outside-toplevel
  if jax.default_backend() != "cpu":
    return f"the native kernels run on the CPU only (default backend: {jax.default_backend()})"
  if not native.available():
    return native.unavailable_reason()
  if bf16 and not native.train_has_bf16():
    return "bf16 training kernels need a CPU with AVX512_BF16"
  return None


def _amx_inference_reason() -> str | None:
  from espcn_jax import native  # pylint: disable=import-outside-toplevel
  reason = _cpu_kernel_reason()
  if reason is None and not native.infer_has_amx():
    return "the bf16 inference kernel needs a CPU with AMX-BF16 (and the avx512_amx build)"
  return reason


def _make_inference(method: str, dtype: str, params, spec, _):
  import jax  # pylint: disable=import-outside-toplevel
  import jax.numpy as jnp  # pylint: disable=import-outside-toplevel
  from espcn_jax import inference  # pylint: disable=import-outside-toplevel
  dt = None if dtype == "float32" else getattr(jnp, dtype)
  fn = jax.jit(functools.partial(inference.forward, spec=spec, dtype=dt, method=method))
  return lambda lr: np.asarray(fn(params, lr))


def _make_native(fn_name: str, params, spec, _, **kw):
  import jax  # pylint: disable=import-outside-toplevel
  from espcn_jax import native  # pylint: disable=import-outside-toplevel
  from espcn_jax.native import training  # pylint: disable=import-outside-toplevel
  fn = jax.jit(functools.partial(native.forward if fn_name == "forward" else training.apply, spec=spec, **kw))
  return lambda lr: np.asarray(fn(params, lr))


def _ours() -> list[Backend]:
  out = []
  for method, what in (("conv", "inference.forward: XLA conv"),
                       ("fma", "inference.forward: XLA conv, one-channel layers as fused shifted multiply-adds")):
    for dt in DTYPES:
      out.append(Backend(name_of(method, dt), what, dt, _ATOL[dt], (), functools.partial(_make_inference, method, dt),
                         method=method))
  out.append(Backend("native", "native.forward through inference.forward: fused C++ kernel, Winograd 3x3 layers",
                     "float32", _ATOL["float32"], (), functools.partial(_make_inference, "native", "float32"),
                     _cpu_kernel_reason, method="native"))
  out.append(Backend("native-bf16", "inference.forward(method='native-bf16'): fused C++ kernel, AMX bf16 tiles",
                     "bfloat16", _ATOL["bfloat16"], (), functools.partial(_make_inference, "native-bf16", "float32"),
                     _amx_inference_reason, method="native-bf16"))
  out.append(Backend("native-direct", "native.forward(winograd=False): fused C++ kernel, direct convolutions",
                     "float32", _ATOL["float32"], (), functools.partial(_make_native, "forward", winograd=False),
                     _cpu_kernel_reason))
  for bf16 in (False, True):
    dt = "bfloat16" if bf16 else "float32"
    out.append(Backend(name_of("native-training", "bf16" if bf16 else dt), "native.training.apply: training kernels",
                       dt, _ATOL[dt], (), functools.partial(_make_native, "training", bf16=bf16),
                       functools.partial(_cpu_kernel_reason, bf16)))
  return out


# ----------------------------------------------------------------------------------------------------------- peers


def torch_net(params, spec: model.Spec):
  """The same net in PyTorch (NCHW weights, PixelShuffle channel order), float32, eval mode."""
  import torch  # pylint: disable=import-outside-toplevel
  widths = (spec.channels,) + spec.features + (spec.channels * spec.scale ** 2,)
  layers = []
  for i, k in enumerate(spec.kernel_sizes):
    conv = torch.nn.Conv2d(widths[i], widths[i + 1], k, padding=k // 2)
    kern = np.asarray(params[f"conv{i + 1}"]["kernel"], np.float32).transpose(3, 2, 0, 1)  # HWIO -> OIHW
    bias = np.asarray(params[f"conv{i + 1}"]["bias"], np.float32)
    if i == spec.num_layers - 1:
      perm = ps.ours_to_torch_perm(spec.channels, spec.scale)
      kern, bias = kern[perm], bias[perm]
    conv.weight.data = torch.tensor(np.array(kern))
    conv.bias.data = torch.tensor(np.array(bias))
    layers.append(conv)
    if i < spec.num_layers - 1:
      layers.append(torch.nn.Tanh() if spec.activation == "tanh" else torch.nn.ReLU())
  layers.append(torch.nn.PixelShuffle(spec.scale))
  return torch.nn.Sequential(*layers).eval()


def _torch_reason(dtype: str) -> str | None:
  import torch  # pylint: disable=import-outside-toplevel
  if dtype == "float16" and not torch.cuda.is_available():
    return "PyTorch runs float16 convolutions on CUDA only (no CUDA device here)"
  return None


def _make_torch(dtype: str, compiled: bool, params, spec, _):
  import torch  # pylint: disable=import-outside-toplevel
  dev = "cuda" if torch.cuda.is_available() else "cpu"
  tdt = getattr(torch, dtype)
  net = torch_net(params, spec).to(dev).to(tdt).to(memory_format=torch.channels_last)
  fn = torch.compile(net, dynamic=False) if compiled else net

  def run(lr_BxHxWxC):
    x = torch.from_numpy(np.ascontiguousarray(lr_BxHxWxC.transpose(0, 3, 1, 2), np.float32)).to(dev).to(tdt)
    with torch.inference_mode():
      y = fn(x.contiguous(memory_format=torch.channels_last))
    return y.float().cpu().numpy().transpose(0, 2, 3, 1)
  return run


def _nchw(x_BxHxWxC):
  return np.ascontiguousarray(np.asarray(x_BxHxWxC, np.float32).transpose(0, 3, 1, 2))


def _make_export(fmt: str, params, spec, workdir: pathlib.Path):
  name = fmt
  fmt, tf_builder = ("tflite", "tfnn") if fmt == "tflite_tfnn" else (fmt, "jax2tf")
  suffix = {"onnxruntime": ".onnx", "opencv": ".onnx", "tflite": ".tflite", "savedmodel": "", "pb": ".pb"}[fmt]
  path = export_formats.export(params, spec, {"onnxruntime": "onnx", "opencv": "onnx"}.get(fmt, fmt),
                          workdir / f"espcn_x{spec.scale}_{name}{suffix}", tf_builder=tf_builder)
  if fmt == "onnxruntime":
    import onnxruntime as ort  # pylint: disable=import-outside-toplevel
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return lambda lr: export_formats.run_onnxruntime(path, _nchw(lr), sess).transpose(0, 2, 3, 1)
  if fmt == "opencv":
    import cv2  # pylint: disable=import-outside-toplevel
    net = cv2.dnn.readNet(str(path))
    return lambda lr: np.asarray(export_formats.run_opencv(path, _nchw(lr), net)).transpose(0, 2, 3, 1)
  if fmt == "tflite":
    interpreter = export_formats.tflite_interpreter(path)
    return lambda lr: export_formats.run_tflite(path, lr, interpreter)
  if fmt == "savedmodel":
    return lambda lr: export_formats.run_savedmodel(path, lr)
  return lambda lr: export_formats.run_frozen_graph(path, lr)


def _peers() -> list[Backend]:
  out = []
  for compiled in (False, True):
    base = "torch_compile" if compiled else "torch"
    for dt in DTYPES:
      out.append(Backend(name_of(base, dt), f"PyTorch {'torch.compile' if compiled else 'eager'}, channels_last", dt,
                         _ATOL[dt], ("torch",), functools.partial(_make_torch, dt, compiled),
                         functools.partial(_torch_reason, dt)))
  exports = {"onnxruntime": ("ONNX export run by onnxruntime (CPU)", ("onnx", "onnxruntime"), (1, 3)),
             "opencv": ("ONNX export run by OpenCV dnn", ("onnx", "cv2"), (1, 3)),
             "tflite": ("TFLite export (jax2tf) run by the TFLite interpreter", ("tensorflow",), (1, 3)),
             "tflite_tfnn": ("TFLite export (tf.nn graph, as `export --benchmark` times it)", ("tensorflow",), (1, 3)),
             "savedmodel": ("SavedModel export (jax2tf) run by TensorFlow", ("tensorflow",), (1, 3)),
             "pb": ("frozen TF1 graph (tf.nn; OpenCV dnn_superres's format) run by TensorFlow", ("tensorflow",), (1,))}
  for fmt, (what, requires, channels) in exports.items():
    out.append(Backend(fmt, what, "float32", _ATOL["float32"], requires, functools.partial(_make_export, fmt),
                       channels=channels))
  return out


BACKENDS = {b.name: b for b in _ours() + _peers()}
NAMES = tuple(BACKENDS)


def get(name: str) -> Backend:
  if name not in BACKENDS:
    raise ValueError(f"unknown backend {name!r}; choose from {', '.join(NAMES)}")
  return BACKENDS[name]


def choose(method: str = "auto", dtype=None) -> Backend:
  """The backend `inference.forward(method=..., dtype=...)` runs here ("auto" resolved); ValueError (one line) when
  that method cannot run here or in that dtype."""
  import jax.numpy as jnp  # pylint: disable=import-outside-toplevel
  from espcn_jax import inference  # pylint: disable=import-outside-toplevel
  resolved = inference.resolve_method(method, dtype)
  if resolved == "native-bf16":  # bf16 whatever the dtype asked (float32 by `auto` within the drift budget)
    return get(resolved)
  return get(name_of(resolved, "float32" if dtype is None else jnp.dtype(dtype).name))
