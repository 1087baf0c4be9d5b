// std::vector on 64-byte (cache-line) aligned storage, for the buffers AMX tiles load from and store to. A tile row
// of 64 bytes that starts off a cache line straddles two lines, and the loads and stores then cost ~3x: one
// TDPBF16PS with its two tile loads took 16.7 ns with buffers 16 bytes off, against 5.9 ns aligned (this 2-core Xeon
// VM). malloc only promises 16 bytes, and a large block from mmap starts 16 bytes past a page.
#pragma once

#include <cstddef>
#include <new>
#include <vector>

namespace {

template <class T>
struct CacheAligned {
  using value_type = T;
  static constexpr std::align_val_t kAlign{64};
  CacheAligned() = default;
  template <class U>
  CacheAligned(const CacheAligned<U>&) {}  // NOLINT: rebinding, as allocators do
  T* allocate(std::size_t n) { return static_cast<T*>(::operator new(n * sizeof(T), kAlign)); }
  void deallocate(T* p, std::size_t) { ::operator delete(p, kAlign); }
  template <class U>
  bool operator==(const CacheAligned<U>&) const { return true; }
  template <class U>
  bool operator!=(const CacheAligned<U>&) const { return false; }
};

template <class T>
using AlignedVector = std::vector<T, CacheAligned<T>>;

}  // namespace
