// Run-time CPU dispatch: which of the prebuilt library variants this CPU can run. Compiled into every variant
// (the Python loader asks the portable "generic" one first, then loads the best variant it names).
#include <cstring>

extern "C" const char* espcn_cpu_best_variant() {
#if (defined(__x86_64__) || defined(__i386__)) && (defined(__GNUC__) || defined(__clang__))
  __builtin_cpu_init();  // cpuid plus the OS's register-state support (XGETBV) for AVX and AVX-512
  const bool v4 = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
                  __builtin_cpu_supports("avx512cd") && __builtin_cpu_supports("avx512dq") &&
                  __builtin_cpu_supports("avx512vl");
  const bool v3 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
                  __builtin_cpu_supports("bmi") && __builtin_cpu_supports("bmi2") && __builtin_cpu_supports("avx");
  if (v3 && v4 && __builtin_cpu_supports("avx512bf16")) return "avx512_bf16";
  if (v3 && v4) return "avx512";
  if (v3) return "avx2";
#endif
  return "generic";
}
