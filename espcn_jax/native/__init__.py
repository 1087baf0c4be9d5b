"""A fused ESPCN forward pass for the CPU in C++, called from jitted JAX code through the XLA FFI.

    from espcn_jax import native
    if native.available():                                    # loads the prebuilt variant for this CPU
      hr_BxrHxrWxC = native.forward(params, lr_BxHxWxC, spec)  # = inference.forward, jit-able, CPU only

The same library holds the training kernels (forward pass with saved activations, and the weight gradients):
`espcn_jax.native.training`.

Why: XLA:CPU runs this net's convolutions layer by layer through Eigen, with every 64-channel activation of a frame
going to memory and back, and uses ~1.4 of 2 cores. The kernel (espcn_cpu_kernel.cc) computes all layers row by row
in cache, vectorised for the CPU it was built on, with one thread per band of rows. Same maths as
`inference.forward` to float32 rounding (tanh: a rational approximation with max error ~1e-7).

The library is compiled when the package is built (setup.py), once per instruction set: on x86-64 "avx512_amx"
(the bf16 variant whose training convolutions, and `forward(bf16=True)`, run on AMX tiles; picked when the CPU
has AMX-BF16 and the OS grants this process the tile state, ESPCN_JAX_NO_AMX=1 says no), "avx512_bf16" (x86-64-v4 +
AVX512_BF16), "avx512" (x86-64-v4), "avx2" (x86-64-v3) and "generic" (SSE2); on aarch64 one "generic"
build. When the package loads the kernels, the portable build asks the CPU which variant it runs (cpuid, through
`espcn_cpu_best_variant`) and that one is loaded: no compiler is needed and nothing is built with -march=native.
ESPCN_JAX_NATIVE_VARIANT=avx2 (say) picks a variant by hand (it must be one this CPU runs; the tests use it to check
every variant). No prebuilt library (a wheel built with ESPCN_JAX_SKIP_NATIVE_BUILD=1, a source tree that was never
built): `available()` is False, the reason is in `unavailable_reason()`, it is printed once, and callers use the XLA
path. ESPCN_JAX_NATIVE=0 turns the kernels off. A library compiled by clang has no Winograd path (it needs GCC's
vector shuffles): `has_winograd()` is False, a one-line note says so when it loads, and the 3x3 layers run as direct
convolutions (same result, slower).

For developers: ESPCN_JAX_NATIVE_BUILD=1 compiles the sources at first use instead, with the system's C++ compiler
(`$CXX`, else g++, else c++) and `-march=$ESPCN_JAX_NATIVE_MARCH` (default `native`), against the XLA FFI headers that
jaxlib ships, into `$ESPCN_JAX_CACHE` (default ~/.cache/espcn_jax/native), keyed by the sources, the jaxlib version,
the compiler and the CPU model (written to a temporary file and renamed, so parallel first uses are safe).
ESPCN_JAX_THREADS sets the thread count (default: the CPUs this process may run on).
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import pathlib
import platform
import shutil
import subprocess
import sys
import tempfile

import jax
import jax.numpy as jnp
import numpy as np

_HERE = pathlib.Path(__file__).resolve().parent
SOURCES = ("espcn_cpu_kernel.cc", "espcn_cpu_train.cc", "espcn_cpu_ffi.cc", "espcn_cpu_probe.cc",
           "espcn_cpu_infer_amx.cc")
HEADERS = ("espcn_cpu_kernel.h", "espcn_cpu_blocks.h", "espcn_cpu_train.h", "espcn_cpu_train_blocks.h",
           "espcn_cpu_train_amx.h", "espcn_cpu_infer_amx.h", "espcn_cpu_tasks.h", "espcn_cpu_amx_tiles.h")
TARGET = "espcn_forward_cpu"
TARGET_BF16 = "espcn_forward_bf16_cpu"  # the AMX bf16 inference kernel (espcn_cpu_infer_amx.cc)
TRAIN_TARGETS = {"espcn_train_forward_cpu": "EspcnTrainForward", "espcn_train_backward_cpu": "EspcnTrainBackward"}
ACTIVATION_CODES = {"linear": 0, "tanh": 1, "relu": 2}
VARIANTS = ("avx512_amx", "avx512_bf16", "avx512", "avx2", "generic")  # best first; built into the wheel by setup.py

_state: dict = {}


def _compiler() -> str | None:
  for c in (os.environ.get("CXX"), "g++", "c++", "clang++"):
    if c and shutil.which(c):
      return shutil.which(c)
  return None


def _cpu_fingerprint() -> str:
  """The CPU model and flags (-march=native code must not run on another CPU sharing the cache directory)."""
  try:
    text = pathlib.Path("/proc/cpuinfo").read_text()
    lines = [l for l in text.splitlines() if l.startswith(("model name", "flags", "Features", "CPU part"))]
    return "\n".join(sorted(set(lines)))
  except OSError:
    return platform.processor() + platform.machine()


def cache_dir() -> pathlib.Path:
  return pathlib.Path(os.environ.get("ESPCN_JAX_CACHE", pathlib.Path.home() / ".cache" / "espcn_jax")) / "native"


def build(force: bool = False) -> pathlib.Path:
  """Compiles the library (once per sources/jaxlib/compiler/CPU) and returns its path; raises RuntimeError."""
  cxx = _compiler()
  if cxx is None:
    raise RuntimeError("no C++ compiler found (set $CXX or install g++)")
  import jaxlib
  h = hashlib.sha256()
  for name in SOURCES + HEADERS:
    h.update((_HERE / name).read_bytes())
  march = os.environ.get("ESPCN_JAX_NATIVE_MARCH", "native")
  h.update(f"{jaxlib.__version__}|{cxx}|{march}|{_cpu_fingerprint()}".encode())
  name = f"libespcn_cpu_{h.hexdigest()[:16]}.so"
  for d in (cache_dir(), pathlib.Path(tempfile.gettempdir()) / f"espcn_jax-native-{os.getuid()}"):
    out = d / name
    if out.exists() and not force:
      return out
    try:  # the cache directory may be read-only (a shared home): then the temp directory
      out.parent.mkdir(parents=True, exist_ok=True)
      fd, tmp = tempfile.mkstemp(suffix=".so", dir=out.parent)
      break
    except OSError as e:
      err = e
  else:
    raise RuntimeError(f"no writable directory for the CPU kernel: {err}")
  os.close(fd)
  print(f"espcn_jax.native: building the CPU kernels for this machine (once, ~15 s) into {out.parent}",
        file=sys.stderr, flush=True)
  flags = ["-O3", f"-march={march}", "-std=c++17", "-fPIC", "-pthread", "-isystem", jax.ffi.include_dir()]
  try:
    with tempfile.TemporaryDirectory(dir=out.parent) as objdir:  # the sources compile in parallel, then link
      objs = [os.path.join(objdir, src + ".o") for src in SOURCES]
      procs = [subprocess.Popen([cxx, *flags, "-c", str(_HERE / src), "-o", obj], stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE, text=True) for src, obj in zip(SOURCES, objs)]
      errors = [(src, p.communicate()[1], p.returncode) for src, p in zip(SOURCES, procs)]
      link = subprocess.run([cxx, "-shared", "-pthread", *objs, "-o", tmp], capture_output=True, text=True)
      errors.append(("linking", link.stderr, link.returncode))
      for what, stderr, code in errors:
        if code != 0:
          last = (stderr.strip().splitlines() or ["?"])[-1]
          raise RuntimeError(f"building the CPU kernel failed ({cxx} -O3 -march={march}, {what}): {last}")
    os.replace(tmp, out)
  finally:
    if os.path.exists(tmp):
      os.unlink(tmp)
  return out


def prebuilt_path(variant: str) -> pathlib.Path:
  return _HERE / f"libespcn_cpu_{variant}.so"


def cpu_variant() -> str:
  """The best prebuilt variant this CPU runs ("avx512_amx", "avx512_bf16", "avx512", "avx2" or "generic");
  RuntimeError if none."""
  generic = prebuilt_path("generic")
  if not generic.is_file():
    raise RuntimeError(f"this installation has no compiled CPU kernels ({generic.name} is missing from {_HERE}; "
                       "reinstall the wheel, or `pip install -e .` in a clone)")
  probe = ctypes.CDLL(str(generic))
  probe.espcn_cpu_best_variant.restype = ctypes.c_char_p
  return probe.espcn_cpu_best_variant().decode()


def _library_path() -> pathlib.Path:
  """The library to load: a developer build (ESPCN_JAX_NATIVE_BUILD=1), else the prebuilt variant for this CPU."""
  if os.environ.get("ESPCN_JAX_NATIVE_BUILD", "0") == "1":
    return build()
  best = cpu_variant()
  wanted = os.environ.get("ESPCN_JAX_NATIVE_VARIANT") or best
  if wanted not in VARIANTS:
    raise RuntimeError(f"ESPCN_JAX_NATIVE_VARIANT={wanted}: unknown variant (expected one of {', '.join(VARIANTS)})")
  if VARIANTS.index(wanted) < VARIANTS.index(best):
    raise RuntimeError(f"ESPCN_JAX_NATIVE_VARIANT={wanted}: this CPU runs at most the {best} variant")
  for variant in VARIANTS[VARIANTS.index(wanted):]:
    if prebuilt_path(variant).is_file():
      return prebuilt_path(variant)
  raise RuntimeError(f"no prebuilt CPU kernel in {_HERE}")


def _load():
  if "lib" in _state or "error" in _state:
    return _state.get("lib")
  try:
    if os.environ.get("ESPCN_JAX_NATIVE", "1") == "0":
      raise RuntimeError("turned off by ESPCN_JAX_NATIVE=0")
    if platform.machine().lower() not in ("x86_64", "amd64", "aarch64", "arm64"):
      raise RuntimeError(f"untested CPU architecture {platform.machine()}")
    path = _library_path()
    lib = ctypes.CDLL(str(path))
    jax.ffi.register_ffi_target(TARGET, jax.ffi.pycapsule(lib.EspcnForward), platform="cpu")
    infer_amx = getattr(lib, "espcn_infer_has_amx", None)  # (a developer build from before it: no such symbol)
    _state["infer_amx"] = bool(infer_amx()) if infer_amx else False
    if _state["infer_amx"]:
      jax.ffi.register_ffi_target(TARGET_BF16, jax.ffi.pycapsule(lib.EspcnForwardBf16), platform="cpu")
    for target, symbol in TRAIN_TARGETS.items():  # the training VJP's halves (espcn_jax.native.training)
      jax.ffi.register_ffi_target(target, jax.ffi.pycapsule(getattr(lib, symbol)), platform="cpu")
    lib.espcn_isa.restype = ctypes.c_char_p
    _state["lib"] = lib
    _state["path"] = path
    _state["isa"] = lib.espcn_isa().decode()
    _state["train_bf16"] = bool(lib.espcn_train_has_bf16())
    has_amx = getattr(lib, "espcn_train_has_amx", None)
    _state["train_amx"] = bool(has_amx()) if has_amx else False
    _state["winograd"] = _winograd_compiled(lib)
    if not _state["winograd"]:
      print(f"espcn_jax: the native CPU kernel {path.name} was built without Winograd F(4x4, 3x3) (a clang build); "
            "its 3x3 layers run as direct convolutions (same result, ~2x slower)", file=sys.stderr, flush=True)
  except (RuntimeError, OSError, AttributeError) as e:
    _state["error"] = str(e)
    if os.environ.get("ESPCN_JAX_NATIVE", "1") != "0":  # said once per process; an explicit off needs no note
      print(f"espcn_jax: the native CPU kernels are unavailable ({e}); using the XLA path (slower)",
            file=sys.stderr, flush=True)
  return _state.get("lib")


def _winograd_compiled(lib) -> bool:
  """Whether the library has the Winograd path (`espcn_has_winograd`: 0 in a clang build, see espcn_cpu_blocks.h).
  A library from before the flag (no such symbol) was built by setup.py with GCC: it has it."""
  flag = getattr(lib, "espcn_has_winograd", None)
  return True if flag is None else bool(flag())


def has_winograd() -> bool:
  """True when the loaded kernel computes 3x3 layers by Winograd (`forward(winograd=True)`); False: direct only."""
  _load()
  return bool(_state.get("winograd"))


def library_path() -> pathlib.Path | None:
  """The file of the loaded kernel library (None if unavailable)."""
  _load()
  return _state.get("path")


def available() -> bool:
  """True when the kernel is built (or builds now) and loads; False otherwise (see `unavailable_reason`)."""
  return _load() is not None


def unavailable_reason() -> str | None:
  _load()
  return _state.get("error")


def isa() -> str | None:
  """The vector instruction set the library was built for: "avx512", "avx2", "generic" (None if unavailable)."""
  _load()
  return _state.get("isa")


def train_has_bf16() -> bool:
  """True when the training kernels can take bf16 operands (a build for a CPU with AVX512_BF16)."""
  _load()
  return bool(_state.get("train_bf16"))


def train_has_amx() -> bool:
  """True when the training kernels' bf16 convolutions run on AMX tiles (the "avx512_amx" build, on a CPU and OS
  that allow AMX: Intel Sapphire Rapids and later)."""
  _load()
  return bool(_state.get("train_amx"))


def infer_has_amx() -> bool:
  """True when `forward(bf16=True)` runs here: the inference kernel with the layers of >= 8 inputs on AMX tiles (the
  "avx512_amx" build, on a CPU and OS that allow AMX)."""
  _load()
  return bool(_state.get("infer_amx"))


def usable_cpus() -> int:
  """The CPUs this process may run on: os.sched_getaffinity (Linux), else os.cpu_count() (macOS, Windows: said once)."""
  if hasattr(os, "sched_getaffinity"):
    return max(1, len(os.sched_getaffinity(0)))
  if not _state.get("said_affinity"):
    _state["said_affinity"] = True
    print(f"espcn_jax: os.sched_getaffinity is not available on {platform.system() or 'this system'}; "
          f"counting all {os.cpu_count() or 1} CPUs (os.cpu_count)", file=sys.stderr, flush=True)
  return max(1, os.cpu_count() or 1)


def num_threads() -> int:
  env = os.environ.get("ESPCN_JAX_THREADS")
  if env:
    return max(1, int(env))
  return usable_cpus()


def pack_params(params, spec):
  """All layers' weights in one float32 vector, as the kernel reads them: per layer the HWIO kernel, then the bias."""
  parts = []
  for i in range(spec.num_layers):
    p = params[f"conv{i + 1}"]
    parts += [jnp.asarray(p["kernel"], jnp.float32).reshape(-1), jnp.asarray(p["bias"], jnp.float32).reshape(-1)]
  return jnp.concatenate(parts)


def bf16_takes(spec) -> bool:
  """Whether `forward(bf16=True)` takes this net: >= 2 layers, the first with < 8 inputs, the others >= 8."""
  return spec.num_layers >= 2 and spec.channels < 8 and min(spec.features) >= 8


def forward(params, lr_BxHxWxC, spec, *, valid_Bx4=None, threads: int | None = None, winograd: bool = True,
            bf16: bool = False):
  """LR canvases (B, H, W, C) float32 -> HR (B, rH, rW, C) float32, as `inference.forward` (float32). CPU only.

  `valid_Bx4` (y0, y1, x0, x1) per canvas: the input and hidden activations are zero outside it (exact padding);
  None = the whole canvas. `winograd`: 3x3 layers with >= 8 inputs by Winograd F(4x4, 3x3) (4x fewer multiplies; float32
  error ~1e-6) where the library has it (`has_winograd()`: not in a clang build); False: direct convolution.
  `bf16`: the layers with >= 8 inputs on AMX tiles with bf16 operands and float32 sums (espcn_cpu_infer_amx.cc; the
  first layer, bias and activations in float32); ValueError where `infer_has_amx()` is False. Nets it takes: a first
  layer with fewer than 8 inputs, then layers with >= 8 (ESPCN); `winograd` does not apply.
  """
  if not available():
    raise RuntimeError(f"the native CPU kernel is unavailable: {unavailable_reason()}")
  if bf16 and not infer_has_amx():
    raise ValueError("native.forward(bf16=True) needs the avx512_amx kernel on a CPU with AMX-BF16 (this one loaded "
                     f"{library_path().name if library_path() else 'none'})")
  x = jnp.asarray(lr_BxHxWxC, jnp.float32)
  b, h, w, c = x.shape
  if c != spec.channels:
    raise ValueError(f"the net takes {spec.channels} channel(s), got shape {x.shape}")
  if valid_Bx4 is None:
    valid_Bx4 = jnp.broadcast_to(jnp.asarray([0, h, 0, w], jnp.int32), (b, 4))
  valid = jnp.clip(jnp.asarray(valid_Bx4, jnp.int32), 0, jnp.asarray([h, h, w, w], jnp.int32))
  r = spec.scale
  channels = [spec.channels, *spec.features, spec.channels * r * r]
  if bf16 and not bf16_takes(spec):
    raise ValueError(f"native.forward(bf16=True) takes nets of < 8 inputs and hidden layers of >= 8, got {channels}")
  attrs = dict(kernel_sizes=np.asarray(spec.kernel_sizes, np.int64), channels=np.asarray(channels, np.int64),
               activation=np.int64(ACTIVATION_CODES[spec.activation]), scale=np.int64(r),
               num_threads=np.int64(threads or num_threads()))
  if not bf16:
    attrs["winograd"] = np.int64(bool(winograd))
  call = jax.ffi.ffi_call(TARGET_BF16 if bf16 else TARGET, jax.ShapeDtypeStruct((b, h * r, w * r, c), jnp.float32),
                          vmap_method="sequential")
  return call(x, valid, pack_params(params, spec), **attrs)
