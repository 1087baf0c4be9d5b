// The prebuilt kernels' glibc floor: what the wheel's libraries need from glibc is what jaxlib needs (2.27), not
// what the build machine has.
//
// The libraries link libstdc++ statically (setup.py), and GCC 12's libstdc++.a, built against a recent glibc, takes
// four symbols from glibc 2.32-2.36: pthread_once (2.34: moved into libc under a new version), fstat64 (2.33),
// __libc_single_threaded (2.32; the inline reference counting of shared_ptr uses it too) and arc4random (2.36,
// std::random_device). Built on Debian 12 they would not load on Ubuntu 22.04 or Colab (glibc 2.35), and the
// package would quietly fall back to XLA. setup.py links with -Wl,--wrap=SYMBOL for each of them, which sends every
// reference to __wrap_SYMBOL below, written with what glibc has had since its first x86-64 / aarch64 release (the
// unwinder comes from the system's libgcc_s.so.1, not libgcc_eh.a, whose _dl_find_object is glibc 2.35).
// What is left asks for glibc 2.25 at most (getentropy). Checked by tests/test_native.py (each library's symbol
// versions; the wrappers at work) and by .ci/run, whose `auditwheel repair` tags the wheel manylinux_2_27 or fails.
//
// Only setup.py's builds compile this file; the developer build (ESPCN_JAX_NATIVE_BUILD=1) runs where it was built.

#include <cerrno>  // first: it defines __GLIBC__

#if defined(__linux__) && defined(__GLIBC__) && (defined(__x86_64__) || defined(__aarch64__))

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <fcntl.h>
#include <pthread.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#if defined(__x86_64__)
#define ESPCN_GLIBC_BASE "GLIBC_2.2.5"
#else
#define ESPCN_GLIBC_BASE "GLIBC_2.17"
#endif

#define ESPCN_HIDDEN __attribute__((visibility("hidden")))

extern "C" {

// The architecture's first pthread_once: libpthread's before glibc 2.34, a compatibility symbol of libc since.
int espcn_pthread_once_base(pthread_once_t* once, void (*init)(void));
__asm__(".symver espcn_pthread_once_base, pthread_once@" ESPCN_GLIBC_BASE);

ESPCN_HIDDEN int __wrap_pthread_once(pthread_once_t* once, void (*init)(void)) {
  return espcn_pthread_once_base(once, init);
}

// 0: "other threads may exist", so reference counts always use atomic instructions (always correct).
ESPCN_HIDDEN char __wrap___libc_single_threaded = 0;

struct stat64;
ESPCN_HIDDEN int __wrap_fstat64(int fd, struct stat64* out) {  // the kernel's struct stat is glibc's stat64 on both
  return static_cast<int>(syscall(SYS_fstat, fd, out));
}

static bool espcn_random_bytes(void* out, std::size_t n) {
  auto* p = static_cast<unsigned char*>(out);
  while (n > 0) {
    long got = syscall(SYS_getrandom, p, n, 0);
    if (got < 0 && errno == EINTR) continue;
    if (got <= 0) break;
    p += got;
    n -= static_cast<std::size_t>(got);
  }
  if (n == 0) return true;
  int fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);  // kernels before 3.17 have no getrandom
  if (fd < 0) return false;
  while (n > 0) {
    ssize_t got = read(fd, p, n);
    if (got < 0 && errno == EINTR) continue;
    if (got <= 0) break;
    p += got;
    n -= static_cast<std::size_t>(got);
  }
  close(fd);
  return n == 0;
}

ESPCN_HIDDEN std::uint32_t __wrap_arc4random(void) {  // arc4random cannot fail; neither may this
  std::uint32_t r;
  if (!espcn_random_bytes(&r, sizeof r)) std::abort();
  return r;
}

}  // extern "C"

#endif
