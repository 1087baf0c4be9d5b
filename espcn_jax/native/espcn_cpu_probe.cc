// Run-time CPU dispatch: which of the prebuilt library variants this CPU can run. Compiled into every variant
// (the Python loader asks the portable "generic" one first, then loads the best variant it names).
#include <cstdlib>
#include <cstring>

#if (defined(__x86_64__) || defined(__i386__)) && (defined(__GNUC__) || defined(__clang__))
#include <cpuid.h>
#if defined(__linux__)
#include <sys/syscall.h>
#include <unistd.h>
#endif

// AMX (tile registers, TDPBF16PS): the CPU has AMX-TILE and AMX-BF16 (cpuid leaf 7: EDX bits 24 and 22) and the OS
// lets this process use the tile data (Linux asks each process to request it: arch_prctl ARCH_REQ_XCOMP_PERM for
// XFEATURE_XTILEDATA; the permission then holds for every thread of the process, so the request is made here, before
// any tile instruction runs, and again by the AMX library itself). ESPCN_JAX_NO_AMX=1 in the environment says no.
extern "C" int espcn_amx_request() {
  unsigned a, b, c, d;
  if (!__get_cpuid_count(7, 0, &a, &b, &c, &d)) return 0;
  if (!((d >> 24) & 1u) || !((d >> 22) & 1u)) return 0;
#if defined(__linux__)
  const long kArchReqXcompPerm = 0x1023, kXfeatureXtiledata = 18;
  return syscall(SYS_arch_prctl, kArchReqXcompPerm, kXfeatureXtiledata) == 0;
#else
  return 0;
#endif
}
#else
extern "C" int espcn_amx_request() { return 0; }
#endif

extern "C" const char* espcn_cpu_best_variant() {
#if (defined(__x86_64__) || defined(__i386__)) && (defined(__GNUC__) || defined(__clang__))
  __builtin_cpu_init();  // cpuid plus the OS's register-state support (XGETBV) for AVX and AVX-512
  const bool v4 = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
                  __builtin_cpu_supports("avx512cd") && __builtin_cpu_supports("avx512dq") &&
                  __builtin_cpu_supports("avx512vl");
  const bool v3 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
                  __builtin_cpu_supports("bmi") && __builtin_cpu_supports("bmi2") && __builtin_cpu_supports("avx");
  const bool bf16 = v3 && v4 && __builtin_cpu_supports("avx512bf16");
  const char* no_amx = std::getenv("ESPCN_JAX_NO_AMX");
  if (bf16 && !(no_amx && std::strcmp(no_amx, "1") == 0) && espcn_amx_request()) return "avx512_amx";
  if (bf16) return "avx512_bf16";
  if (v3 && v4) return "avx512";
  if (v3) return "avx2";
#endif
  return "generic";
}
