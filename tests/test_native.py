"""The fused C++ CPU kernel (espcn_jax.native) computes what model.apply / inference.forward compute."""

import ctypes
import os
import pathlib
import platform
import re
import shutil
import subprocess
import sys
import textwrap

import jax
import numpy as np
import pytest

from espcn_jax import inference, model, native

needs_native = pytest.mark.skipif(not native.available(), reason=f"native kernel: {native.unavailable_reason()}")

SPECS = [
    model.Spec(scale=3),  # the paper's net: 5-3-3, 64/32, tanh
    model.Spec(scale=2, activation="relu"),
    model.Spec(scale=4, channels=3),  # RGB: 48 outputs, depth-to-space colour order
    model.Spec(scale=3, features=(16, 8, 12), kernel_sizes=(3, 5, 1, 3), activation="relu"),  # odd widths, 1x1
    model.Spec(scale=3, features=(24,), kernel_sizes=(7, 3)),
    model.Spec(scale=2, features=(16, 16, 8), kernel_sizes=(3, 3, 3, 3)),  # three Winograd layers in a row
    model.Spec(scale=4),  # luma x4: 4 outputs per HR row, the widest depth-to-space by vector shuffles
]


def _params(spec, seed=0):
  p = model.init(jax.random.PRNGKey(seed), spec)
  rng = np.random.default_rng(seed)  # non-zero biases, so padding mistakes show
  return {k: {"kernel": v["kernel"], "bias": rng.normal(0, 0.1, v["bias"].shape).astype(np.float32)}
          for k, v in p.items()}


@needs_native
@pytest.mark.parametrize("spec", SPECS, ids=str)
@pytest.mark.parametrize("hw", [(37, 53), (5, 70), (64, 17), (9, 150)])  # Winograd: 1, 2, 1, 2 + 1 tile vectors
def test_matches_model_apply(spec, hw):
  params = _params(spec)
  x = np.random.default_rng(1).random((2, *hw, spec.channels), np.float32)
  want = np.asarray(model.apply(params, x, spec))
  for winograd in (True, False):
    got = np.asarray(jax.jit(lambda p, x: native.forward(p, x, spec, winograd=winograd))(params, x))
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, atol=3e-5, rtol=0)


@needs_native
@pytest.mark.parametrize("spec", SPECS[:3] + SPECS[-2:], ids=str)
def test_valid_rectangles_match_forward(spec):
  params = _params(spec, seed=2)
  x = np.random.default_rng(3).random((3, 40, 48, spec.channels), np.float32)
  valid = np.array([[3, 30, 5, 40], [0, 40, 0, 48], [10, 11, 47, 48]], np.int32)
  want = np.asarray(inference.forward(params, x, spec, valid_Bx4=valid, method="conv"))
  for winograd in (True, False):
    got = np.asarray(native.forward(params, x, spec, valid_Bx4=valid, winograd=winograd))
    np.testing.assert_allclose(got, want, atol=3e-5, rtol=0)


@needs_native
def test_upscaler_native_tiles_equal_untiled_and_threads_agree():
  spec = SPECS[0]
  params = _params(spec, seed=4)
  lr = np.random.default_rng(5).random((70, 90), np.float32)
  whole = inference.Upscaler(params, spec, method="native", tile=128).network(lr)
  tiled = inference.Upscaler(params, spec, method="native", tile=24).network(lr)
  np.testing.assert_allclose(tiled, whole, atol=1e-5, rtol=0)
  x = lr[None, :, :, None]
  one = np.asarray(native.forward(params, x, spec, threads=1))
  three = np.asarray(native.forward(params, x, spec, threads=3))
  np.testing.assert_array_equal(one, np.asarray(native.forward(params, x, spec, threads=1)))  # deterministic
  # bands recompute their halo rows (Winograd pairs rows from each band's start: rounding may differ)
  np.testing.assert_allclose(one, three, atol=1e-5, rtol=0)


XLA_AUTO = "fma" if jax.default_backend() == "cpu" else "conv"  # what "auto" is without the native kernel


def test_auto_picks_native_on_cpu_float32_only():
  """float32: native (native-bf16 where AMX runs it, within the drift budget); bfloat16: native-bf16 or XLA."""
  cpu = native.available() and jax.default_backend() == "cpu"
  amx = cpu and native.infer_has_amx()
  want = ("native-bf16" if amx and inference.AUTO_NATIVE_BF16 else "native") if cpu else XLA_AUTO
  assert inference.resolve_method("auto") == want
  assert inference.resolve_method("auto", np.float32) == want
  assert inference.resolve_method("auto", "bfloat16") == ("native-bf16" if amx else XLA_AUTO)
  if not amx:
    with pytest.raises(ValueError, match="float32 only"):
      inference.resolve_method("native", "bfloat16")


def test_unavailable_falls_back(monkeypatch):
  monkeypatch.setattr(native, "_state", {})
  monkeypatch.setenv("ESPCN_JAX_NATIVE", "0")
  assert not native.available()
  assert "ESPCN_JAX_NATIVE=0" in native.unavailable_reason()
  assert inference.resolve_method("auto") == XLA_AUTO
  with pytest.raises(ValueError, match="unavailable here: turned off"):
    inference.resolve_method("native")
  with pytest.raises(RuntimeError, match="unavailable"):
    native.forward({}, np.zeros((1, 4, 4, 1), np.float32), SPECS[0])


def test_build_without_compiler_says_so(monkeypatch, tmp_path):
  monkeypatch.setattr(native, "_compiler", lambda: None)
  with pytest.raises(RuntimeError, match="no C\\+\\+ compiler"):
    native.build(force=True)


def test_failed_build_says_which_step(monkeypatch, tmp_path):
  monkeypatch.setattr(native, "_compiler", lambda: "/bin/false")  # a "compiler" that fails every step
  monkeypatch.setenv("ESPCN_JAX_CACHE", str(tmp_path))
  with pytest.raises(RuntimeError, match="building the CPU kernel failed .*espcn_cpu_kernel.cc"):
    native.build(force=True)
  assert not list(tmp_path.rglob("*.so")) and not list(tmp_path.rglob("*.o"))  # nothing half-written is left


_VARIANT_CHECK = textwrap.dedent("""
    import jax, numpy as np
    from espcn_jax import model, native
    assert native.available(), native.unavailable_reason()
    spec = model.Spec(scale=3)
    params = model.init(jax.random.PRNGKey(0), spec)
    x = np.random.default_rng(0).random((2, 29, 45, 1), np.float32)
    want = np.asarray(model.apply(params, x, spec))
    for wino in (True, False):
      np.testing.assert_allclose(np.asarray(native.forward(params, x, spec, winograd=wino)), want, atol=3e-5)
    from espcn_jax.native import training  # the training kernels of the same build
    for sp in (spec, model.Spec(scale=4, channels=3, features=(20, 12), kernel_sizes=(3, 1, 5))):
      p = model.init(jax.random.PRNGKey(1), sp)
      xb = np.random.default_rng(1).random((3, 13, 11, sp.channels), np.float32)
      grad = lambda f: jax.grad(lambda q: jax.numpy.mean(jax.numpy.square(f(q, xb, sp) - 0.5)))(p)
      for a, b in zip(jax.tree.leaves(grad(training.apply)), jax.tree.leaves(grad(model.apply))):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), atol=2e-5 * float(np.abs(np.asarray(b)).max()))
    assert not native.train_has_bf16()  # AVX512_BF16 is not part of these -march levels
    print(native.isa())
""")


def _runs(variant: str) -> bool:
  return native.VARIANTS.index(variant) >= native.VARIANTS.index(native.cpu_variant())


@needs_native
@pytest.mark.skipif(platform.machine() not in ("x86_64", "AMD64"), reason="x86 variants")
@pytest.mark.parametrize("variant, isa", [("avx512", "avx512"), ("avx2", "avx2"), ("generic", "generic")])
def test_other_prebuilt_variants_agree(variant, isa):
  """The prebuilt AVX-512 without BF16, AVX2 (8 lanes) and SSE2 (4 lanes) libraries, which other CPUs get, compute
  the same (inference forward pass and training gradients)."""
  if not _runs(variant):
    pytest.skip(f"this CPU does not run the {variant} variant")
  env = dict(os.environ, ESPCN_JAX_NATIVE_VARIANT=variant, JAX_PLATFORMS="cpu")
  proc = subprocess.run([sys.executable, "-c", _VARIANT_CHECK], env=env, capture_output=True, text=True, timeout=600)
  assert proc.returncode == 0, proc.stderr[-2000:]
  assert proc.stdout.strip().splitlines()[-1] == isa


@needs_native
def test_dispatch_picks_the_best_variant_the_cpu_runs():
  """cpuid (espcn_cpu_best_variant) against the kernel's own view of the CPU (/proc/cpuinfo on Linux)."""
  try:
    flags = set(next(l for l in open("/proc/cpuinfo") if l.startswith("flags")).split(":")[1].split())
  except (OSError, StopIteration):
    pytest.skip("no /proc/cpuinfo flags")
  v4 = {"avx512f", "avx512bw", "avx512cd", "avx512dq", "avx512vl"} <= flags
  v3 = {"avx2", "fma", "bmi1", "bmi2"} <= flags
  bf16 = v4 and v3 and "avx512_bf16" in flags
  amx = bf16 and {"amx_tile", "amx_bf16"} <= flags and os.environ.get("ESPCN_JAX_NO_AMX") != "1"
  want = ("avx512_amx" if amx else "avx512_bf16" if bf16 else "avx512" if v4 and v3 else "avx2" if v3 else "generic")
  assert native.cpu_variant() == want
  if os.environ.get("ESPCN_JAX_NATIVE_VARIANT") is None and os.environ.get("ESPCN_JAX_NATIVE_BUILD") != "1":
    assert native.library_path().name == f"libespcn_cpu_{want}.so"
    assert native.train_has_bf16() == (want in ("avx512_amx", "avx512_bf16"))
    assert native.train_has_amx() == (want == "avx512_amx")


@pytest.mark.skipif(shutil.which("objdump") is None, reason="objdump (binutils) not installed")
@pytest.mark.parametrize("variant, allowed, banned", [("generic", (), ("ymm", "zmm")), ("avx2", ("ymm",), ("zmm",)),
                                                     ("avx512", ("zmm",), ("vdpbf16ps", "tdpbf16ps")),
                                                     ("avx512_bf16", ("zmm", "vdpbf16ps"), ("tdpbf16ps",)),
                                                     ("avx512_amx", ("zmm", "vdpbf16ps", "tdpbf16ps"), ())])
def test_prebuilt_variants_use_only_their_instruction_set(variant, allowed, banned):
  """No -march=native: the portable build has no AVX at all, the AVX2 build no AVX-512, and only the bf16 build has
  AVX512_BF16 dot products and only the AMX build tile instructions (each loads only on CPUs that run it)."""
  path = native.prebuilt_path(variant)
  if not path.is_file():
    pytest.skip(f"{path.name} is not built here")
  text = subprocess.run(["objdump", "-d", "--no-show-raw-insn", str(path)], capture_output=True, text=True).stdout
  for word in allowed:
    assert word in text, f"{path.name} has no {word}: not built for its instruction set"
  for word in banned:
    assert word not in text, f"{path.name} uses {word}: it would crash on CPUs it claims to run on"


GLIBC_FLOOR = (2, 27)  # jaxlib's (its wheels are manylinux_2_27): the prebuilt kernels may need no newer glibc
needs_objdump = pytest.mark.skipif(shutil.which("objdump") is None, reason="objdump (binutils) not installed")
needs_glibc = pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="not a glibc system")


def _glibc_too_new(path) -> list:
  """The glibc versions past the floor that the ELF file `path` asks for (its dynamic symbols' versions)."""
  text = subprocess.run(["objdump", "-T", str(path)], capture_output=True, text=True, check=True).stdout
  versions = {tuple(int(n) for n in v.split(".")) for v in re.findall(r"\bGLIBC_([0-9]+(?:\.[0-9]+)+)", text)}
  assert versions, f"{path}: no glibc symbol versions read"
  return sorted(".".join(map(str, v)) for v in versions if v > GLIBC_FLOOR)


@pytest.mark.parametrize("variant", native.VARIANTS)
@needs_objdump
@needs_glibc
def test_prebuilt_variants_need_no_glibc_past_2_27(variant):
  """The wheel's libraries ask glibc for nothing newer than jaxlib does, whatever glibc built them. Built on Debian 12
  (glibc 2.36) without espcn_cpu_glibc_floor.cc they asked for 2.36, so on Ubuntu 22.04 and Colab (2.35) they did
  not load and the package ran its XLA path."""
  path = native.prebuilt_path(variant)
  if not path.is_file():
    pytest.skip(f"{path.name} is not built here")
  assert _glibc_too_new(path) == [], f"{path.name} needs a glibc past 2.27"
  needed = subprocess.run(["objdump", "-p", str(path)], capture_output=True, text=True, check=True).stdout
  libs = set(re.findall(r"NEEDED\s+(\S+)", needed))
  assert libs <= {"libc.so.6", "libm.so.6", "libgcc_s.so.1", "ld-linux-x86-64.so.2", "ld-linux-aarch64.so.1"}, libs


_FLOOR_CHECK_CC = r"""
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cstdint>
#include <memory>
#include <mutex>
#include <vector>
// Declared here, so that the calls below reach them on any glibc (the link's --wrap sends them to the floor's own).
extern "C" int fstat64(int fd, struct stat64* out);
extern "C" std::uint32_t arc4random(void);
// out: call_once's runs, the file's size by fstat64, arc4random's distinct values of 64 calls, shared_ptr's use
// counts (10 * peak + after)
extern "C" int floor_check(const char* path, long* out) {
  static std::once_flag once;
  int calls = 0;
  for (int i = 0; i < 3; ++i) std::call_once(once, [&] { ++calls; });  // pthread_once
  int fd = open(path, O_RDONLY);
  struct stat64 st {};
  long size = (fd >= 0 && fstat64(fd, &st) == 0) ? static_cast<long>(st.st_size) : -1;
  if (fd >= 0) close(fd);
  std::vector<std::uint32_t> r;
  for (int i = 0; i < 64; ++i) {
    std::uint32_t v = arc4random();
    bool seen = false;
    for (auto u : r) seen |= u == v;
    if (!seen) r.push_back(v);
  }
  auto shared = std::make_shared<int>(7);
  std::vector<std::shared_ptr<int>> copies(1000, shared);
  long peak = shared.use_count();
  copies.clear();
  out[0] = calls; out[1] = size; out[2] = static_cast<long>(r.size()); out[3] = peak * 10 + shared.use_count();
  return 0;
}
"""


@needs_objdump
@needs_glibc
@pytest.mark.skipif(shutil.which("g++") is None, reason="g++ not installed")
def test_glibc_floor_wrappers_keep_what_they_replace_working(tmp_path):
  """Linked as setup.py links the kernels (static libstdc++, its --wrap list, espcn_cpu_glibc_floor.cc), a library
  calling the wrapped symbols needs no glibc past the floor, and they still work: std::call_once (pthread_once),
  fstat64, arc4random, shared_ptr's reference counts (__libc_single_threaded)."""
  import ast
  root = pathlib.Path(__file__).resolve().parents[1]
  tree = ast.parse((root / "setup.py").read_text())
  wraps = next(ast.literal_eval(n.value) for n in tree.body if isinstance(n, ast.Assign)
               and getattr(n.targets[0], "id", "") == "GLIBC_FLOOR_WRAPS")
  (tmp_path / "check.cc").write_text(_FLOOR_CHECK_CC)
  lib = tmp_path / "libcheck.so"
  subprocess.run(["g++", "-O2", "-std=c++17", "-fPIC", "-shared", "-pthread", str(tmp_path / "check.cc"),
                  str(root / "espcn_jax" / "native" / "espcn_cpu_glibc_floor.cc"), "-o", str(lib), "-Wl,-Bsymbolic",
                  "-static-libstdc++", *[f"-Wl,--wrap={w}" for w in wraps]], check=True, capture_output=True)
  assert _glibc_too_new(lib) == []
  data = tmp_path / "data.bin"
  data.write_bytes(b"x" * 12345)
  out = (ctypes.c_long * 4)()
  assert ctypes.CDLL(str(lib)).floor_check(str(data).encode(), out) == 0
  assert list(out) == [1, 12345, 64, 10011]


def test_variant_override_is_checked(monkeypatch):
  if not native.prebuilt_path("generic").is_file():
    pytest.skip("no prebuilt kernels here")
  monkeypatch.delenv("ESPCN_JAX_NATIVE_BUILD", raising=False)
  monkeypatch.setenv("ESPCN_JAX_NATIVE_VARIANT", "sse9")
  with pytest.raises(RuntimeError, match="unknown variant"):
    native._library_path()
  if native.cpu_variant() != native.VARIANTS[0]:
    monkeypatch.setenv("ESPCN_JAX_NATIVE_VARIANT", native.VARIANTS[0])
    with pytest.raises(RuntimeError, match="this CPU runs at most"):
      native._library_path()


def test_missing_prebuilt_library_says_so_once(monkeypatch, tmp_path, capsys):
  """A wheel built without kernels (or a clone never built): the XLA path, with one line on stderr that says why."""
  monkeypatch.setattr(native, "_state", {})
  monkeypatch.setattr(native, "_HERE", tmp_path)
  monkeypatch.delenv("ESPCN_JAX_NATIVE_BUILD", raising=False)
  monkeypatch.delenv("ESPCN_JAX_NATIVE", raising=False)
  assert not native.available() and not native.available()
  assert "no compiled CPU kernels" in native.unavailable_reason()
  err = capsys.readouterr().err.strip().splitlines()
  assert len(err) == 1 and "using the XLA path" in err[0]
  assert inference.resolve_method("auto") == XLA_AUTO


def test_unwritable_cache_falls_back_to_temp(monkeypatch, tmp_path):
  (tmp_path / "a_file").write_text("not a directory")  # mkdir under it fails, even for root
  monkeypatch.setenv("ESPCN_JAX_CACHE", str(tmp_path / "a_file" / "cache"))
  monkeypatch.setattr(native.tempfile, "gettempdir", lambda: str(tmp_path / "tmp"))
  if native._compiler() is None:
    pytest.skip("no compiler")
  assert native.build(force=True).parent == tmp_path / "tmp" / f"espcn_jax-native-{os.getuid()}"
