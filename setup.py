"""Builds the native CPU kernels (espcn_jax/native/*.cc) into the wheel, once per instruction-set variant.

Everything else about the package is in pyproject.toml. The kernels are plain shared libraries called through the
XLA FFI (loaded with ctypes, no Python C API), so the wheel is tagged py3-none-<platform>: one wheel serves every
Python version. On x86-64 five variants are built and the best one the CPU runs is picked when the package loads
(espcn_jax/native/__init__.py, `espcn_cpu_best_variant` in espcn_cpu_probe.cc):

    avx512_amx   x86-64-v4 + AVX512_BF16 + AMX-TILE/AMX-BF16 (bf16 training convolutions and inference on AMX tiles)
    avx512_bf16  x86-64-v4 + AVX512_BF16 (the bf16 training kernels)
    avx512       x86-64-v4 (AVX-512 F/BW/CD/DQ/VL)
    avx2         x86-64-v3 (AVX2 + FMA)
    generic      x86-64 (SSE2): any x86-64 CPU

Other CPUs (aarch64) get one "generic" build for the architecture's baseline. Nothing is built with -march=native.
The XLA FFI headers come from jaxlib (a build requirement). ESPCN_JAX_SKIP_NATIVE_BUILD=1 builds a wheel without
kernels (the package then runs its XLA path and says so).
"""

import os
import platform
import shutil

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

try:
  from setuptools.command.bdist_wheel import bdist_wheel
except ImportError:  # setuptools < 70.1
  from wheel.bdist_wheel import bdist_wheel

NATIVE = "espcn_jax/native"
SOURCES = [f"{NATIVE}/{s}" for s in ("espcn_cpu_kernel.cc", "espcn_cpu_train.cc", "espcn_cpu_ffi.cc",
                                     "espcn_cpu_probe.cc", "espcn_cpu_infer_amx.cc")]
HEADERS = [f"{NATIVE}/{h}" for h in ("espcn_cpu_kernel.h", "espcn_cpu_blocks.h", "espcn_cpu_train.h",
                                     "espcn_cpu_train_blocks.h", "espcn_cpu_train_amx.h", "espcn_cpu_infer_amx.h",
                                     "espcn_cpu_tasks.h", "espcn_cpu_amx_tiles.h",
                                     "espcn_cpu_aligned.h")]
# glibc systems: the libraries need no glibc newer than jaxlib's floor (2.27), whatever glibc builds them; see
# espcn_cpu_glibc_floor.cc for the symbols GCC's static libstdc++ would otherwise take from glibc 2.32-2.36.
GLIBC = platform.system() == "Linux" and platform.libc_ver()[0] == "glibc"
GLIBC_FLOOR_SOURCE = f"{NATIVE}/espcn_cpu_glibc_floor.cc"
GLIBC_FLOOR_WRAPS = ("pthread_once", "__libc_single_threaded", "fstat64", "arc4random")
# -mtune: GCC's "generic" tuning splits unaligned 256-bit loads and stores in two, which cost the AVX2 / AVX-512
# builds 15-20% of a -march=native build's speed (CPU time per 1080p frame, BENCHMARKS.md); tuning changes no result
# and no instruction set, so a variant still runs on every CPU its -march admits.
X86_VARIANTS = {
    "avx512_amx": ["-march=x86-64-v4", "-mavx512bf16", "-mamx-tile", "-mamx-bf16", "-mtune=sapphirerapids"],
    "avx512_bf16": ["-march=x86-64-v4", "-mavx512bf16", "-mtune=icelake-server"],
    "avx512": ["-march=x86-64-v4", "-mtune=icelake-server"],
    "avx2": ["-march=x86-64-v3", "-mtune=skylake"],
    "generic": ["-march=x86-64"],
}


def variants() -> dict:
  machine = platform.machine().lower()
  if machine in ("x86_64", "amd64"):
    return X86_VARIANTS
  if machine in ("aarch64", "arm64"):
    return {"generic": ["-march=armv8-a"]}
  return {}


class BuildNative(build_ext):
  """Compiles each variant's objects in its own temp folder (same sources, other flags) and links a plain .so."""

  def finalize_options(self):
    super().finalize_options()
    if self.parallel is None:
      self.parallel = os.cpu_count() or 1

  def get_ext_filename(self, fullname):
    return os.path.join(*fullname.split(".")) + ".so"  # libespcn_cpu_<variant>.so: not a Python module

  def build_extension(self, ext):
    import jaxlib  # its XLA FFI headers (what jax.ffi.include_dir() returns)
    include = os.path.join(os.path.dirname(os.path.abspath(jaxlib.__file__)), "include")
    variant = ext.name.rsplit("_cpu_", 1)[1]
    cxx = os.environ.get("CXX") or shutil.which("g++") or shutil.which("c++") or "c++"
    self.compiler.set_executable("compiler_so", [cxx, "-fPIC"])
    self.compiler.set_executable("compiler_cxx", [cxx])
    self.compiler.set_executable("linker_so", [cxx, "-shared"])
    # -isystem: no warnings from jaxlib's headers. -Wno-maybe-uninitialized: GCC 12's AVX-512 intrinsics start from a
    # self-initialised "undefined" vector, reported wherever they inline (GCC bug 105593, fixed in GCC 13).
    flags = ["-O3", "-std=c++17", "-pthread", "-isystem", include, "-Wno-maybe-uninitialized", *variants()[variant]]
    objects = self.compiler.compile(ext.sources, output_dir=os.path.join(self.build_temp, variant),
                                    include_dirs=[NATIVE], extra_postargs=flags,
                                    depends=ext.depends)
    out = self.get_ext_fullpath(ext.name)
    os.makedirs(os.path.dirname(out), exist_ok=True)
    # -Bsymbolic: each variant calls its own functions even when another variant is loaded in the same process;
    # static libstdc++: the library runs beside whatever C++ runtime the user's system has (the unwinder is the
    # system's libgcc_s.so.1: libgcc_eh.a would need glibc 2.35); --wrap: the glibc floor (GLIBC_FLOOR_WRAPS).
    wraps = [f"-Wl,--wrap={s}" for s in GLIBC_FLOOR_WRAPS] if GLIBC else []
    self.compiler.link_shared_object(objects, out, extra_postargs=[
        "-pthread", "-Wl,-Bsymbolic", "-static-libstdc++", *wraps, "-s"], target_lang="c++")


class PlatformWheel(bdist_wheel):
  """py3-none-<platform>: the kernels use no Python API, so one wheel fits every Python 3."""

  def finalize_options(self):
    super().finalize_options()
    self.root_is_pure = False

  def get_tag(self):
    _, _, plat = super().get_tag()
    return "py3", "none", plat


skip = os.environ.get("ESPCN_JAX_SKIP_NATIVE_BUILD") == "1"
setup(
    ext_modules=[] if skip else [
        Extension(f"espcn_jax.native.libespcn_cpu_{v}", sources=SOURCES + [GLIBC_FLOOR_SOURCE] * GLIBC,
                  depends=HEADERS) for v in variants()],
    cmdclass={"build_ext": BuildNative, "bdist_wheel": PlatformWheel},
)
