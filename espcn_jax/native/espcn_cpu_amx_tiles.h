// The AMX tile block both AMX kernels use (included by espcn_cpu_train_amx.h and espcn_cpu_infer_amx.cc, in AMX
// builds only): a convolution on the flat index of a padded NHWC bf16 image (see espcn_cpu_train_amx.h's comment).
#pragma once

#include <cstddef>
#include <cstdint>
#include <immintrin.h>

namespace {

struct alignas(64) TileConfig {  // LDTILECFG's palette-1 layout
  uint8_t palette = 1, start_row = 0, reserved[14] = {};
  uint16_t colsb[16] = {};
  uint8_t rows[16] = {};
};

// LDTILECFG of cfg. GCC does not count the instruction as reading its operand, so it may drop or delay the stores
// that fill cfg: with them gone, a tile of 16 rows and 0 bytes faulted (SIGSEGV, general protection) once store_run's
// code changed what got inlined. The empty asm reads cfg, so the stores happen before.
inline void load_tile_config(const TileConfig& cfg) {
  asm volatile("" : : "m"(cfg));
  _tile_loadconfig(&cfg);
}

struct NoWork {
  void operator()(int, int) const {}
};

// C tiles of MB blocks of 16 pixels (from q0) x NB * 16 outputs (from o0), summed over taps (input offsets `offs`)
// and input channels (kc at a time; w: [tap][cs / 2][wstride] bf16 pairs), stored to tmp rows of LD floats:
// tmp[m * 16 + p][n * 16 + o]. Tiles: C 0-3, A from 4, B 7 (NB = 1) or 6-7 (NB = 2), as the caller configured them.
// work(i, n) runs after the products of step i of the n (tap, channel chunk) steps: vector work that does not touch
// the tiles (e.g. the previous block's epilogue) interleaved with them, so the core runs it while the tile unit works.
// bias: the sums start from bias[o0 ..] (every pixel's row; a tile load of stride 0), else from zero.
template <int MB, int NB, int LD = NB * 16, class Work = NoWork>
void amx_block(const uint16_t* in, int cs, int kc, const int* offs, int taps, const uint32_t* w, int wstride, int q0,
               int o0, float* tmp, const Work& work = Work(), const float* bias = nullptr) {
  static_assert(MB * NB <= 4 && MB + NB <= 4, "8 tiles");
  if (bias == nullptr) {
    _tile_zero(0);
    if (MB * NB > 1) _tile_zero(1);
    if (MB * NB > 2) _tile_zero(2);
    if (MB * NB > 3) _tile_zero(3);
  } else {  // C tile m (NB = 1) or 2m + n (NB = 2): outputs o0 + 16 n
    _tile_loadd(0, bias + o0, 0);
    if (MB * NB > 1) _tile_loadd(1, bias + o0 + (NB == 2 ? 16 : 0), 0);
    if (MB * NB > 2) _tile_loadd(2, bias + o0, 0);
    if (MB * NB > 3) _tile_loadd(3, bias + o0 + 16, 0);
  }
  const int cpairs = cs / 2, steps = taps * ((cs + kc - 1) / kc);
  int step = 0;
  for (int t = 0; t < taps; ++t) {
    const uint16_t* a = in + (std::ptrdiff_t)(q0 + offs[t]) * cs;
    const uint32_t* b = w + (std::size_t)t * cpairs * wstride + o0;
    for (int c0 = 0; c0 < cs; c0 += kc) {
      _tile_loadd(4, a + c0, 2 * cs);
      if (NB == 1) {  // C tile m: block m
        if (MB > 1) _tile_loadd(5, a + 16 * cs + c0, 2 * cs);
        if (MB > 2) _tile_loadd(6, a + 32 * cs + c0, 2 * cs);
        _tile_loadd(7, b + (std::size_t)(c0 / 2) * wstride, 4 * wstride);
        _tile_dpbf16ps(0, 4, 7);
        if (MB > 1) _tile_dpbf16ps(1, 5, 7);
        if (MB > 2) _tile_dpbf16ps(2, 6, 7);
      } else {  // MB <= 2, C tile 2m + n; loads between the products, as oneDNN's brgemm orders them
        _tile_loadd(6, b + (std::size_t)(c0 / 2) * wstride, 4 * wstride);
        _tile_dpbf16ps(0, 4, 6);
        _tile_loadd(7, b + (std::size_t)(c0 / 2) * wstride + 16, 4 * wstride);
        _tile_dpbf16ps(1, 4, 7);
        if (MB > 1) {
          _tile_loadd(5, a + 16 * cs + c0, 2 * cs);
          _tile_dpbf16ps(2, 5, 6);
          _tile_dpbf16ps(3, 5, 7);
        }
      }
      work(step++, steps);
    }
  }
  if (NB == 1) {
    _tile_stored(0, tmp, 4 * LD);
    if (MB > 1) _tile_stored(1, tmp + 16 * LD, 4 * LD);
    if (MB > 2) _tile_stored(2, tmp + 32 * LD, 4 * LD);
  } else {
    _tile_stored(0, tmp, 4 * LD);
    _tile_stored(1, tmp + 16, 4 * LD);
    if (MB > 1) {
      _tile_stored(2, tmp + 16 * LD, 4 * LD);
      _tile_stored(3, tmp + 16 * LD + 16, 4 * LD);
    }
  }
}

}  // namespace
