// The bf16 convolutions of the training kernels on AMX tiles (included by espcn_cpu_train.cc only; compiled in the
// "avx512_amx" variant, -mamx-tile -mamx-bf16). One TDPBF16PS multiplies a 16 x 32 bf16 tile by a 32 x 16 bf16
// tile (as 16 rows of pairs) into 16 x 16 float32 sums: 8,192 multiply-adds, 16x what one AVX-512 vdpbf16ps does.
// The products and sums are those of the vdpbf16ps path (bf16 operands, float32 sums; AMX flushes bf16 denormals).
//
// Both convolutions work on the flat index of the padded image: with pad p = k/2 and padded width Wp, output pixel
// (y, x) is q = (y + p) * Wp + x + p, and tap (ky, kx) reads the input at q + (ky - p) * Wp + kx - p, a constant
// offset. So a tile's 16 rows are 16 consecutive q (an A tile loads straight from the NHWC bf16 image, row stride =
// the channel count), and the padding columns inside the run are computed and dropped (2 of 19 for 17-pixel rows).
//   conv_image_amx:  out(q, o) = sum_{tap, c} in(q + off(tap), c) w(tap, c, o)   [forward and input gradient]
//                    M = 16 pixels (2 blocks), N = 16 outputs (2 at a time), K = 32 input channels (or 16).
//   wgrad_image_amx: dw(tap, c, o) += sum_q in(q + off(tap), c) dz(q, o)         [weight gradient of one image]
//                    M = 16 input channels, N = 16 outputs, K = 32 positions: in transposed to [c][q] rows, dz
//                    paired along q ([q / 2][o] pairs). dz is zero on the padding, so only interior q count.
#pragma once

#if defined(__AMX_TILE__) && defined(__AMX_BF16__) && ESPCN_HAVE_BF16
#define ESPCN_HAVE_AMX 1
#include <immintrin.h>

#include "espcn_cpu_amx_tiles.h"

extern "C" int espcn_amx_request();  // espcn_cpu_probe.cc: the CPU has AMX and the OS lets this process use it

namespace {

bool amx_ready() {
  static const bool ok = espcn_amx_request() != 0;
  return ok;
}

// Tiles 0-3: C (16 x 16 float32); 4-5: A (16 rows of `a_cols` bf16); 6-7: B (`b_rows` rows of 16 bf16 pairs).
void tile_config(int a_cols, int b_rows) {
  TileConfig cfg;
  for (int t = 0; t < 4; ++t) cfg.rows[t] = 16, cfg.colsb[t] = 64;
  for (int t = 4; t < 6; ++t) cfg.rows[t] = 16, cfg.colsb[t] = (uint16_t)(2 * a_cols);
  for (int t = 6; t < 8; ++t) cfg.rows[t] = (uint8_t)b_rows, cfg.colsb[t] = 64;
  load_tile_config(cfg);
}

// The number of extra pixels an AMX convolution may read past the end of its padded input image.
constexpr int kAmxSlack = 32;

// dst = bf16(src) with kAmxSlack zero pixels after the image (cs is a multiple of 16).
void convert_bf16_slack(const Img& src, AlignedVector<uint16_t>& buf, BImg& dst) {
  dst = BImg{nullptr, src.h, src.w, src.pad, src.cs};
  const std::size_t n = src.size(), tail = (std::size_t)kAmxSlack * src.cs;
  buf.resize(n + tail);
  dst.data = buf.data();
  for (std::size_t i = 0; i < n; i += 16)
    _mm256_storeu_si256((__m256i*)(buf.data() + i), (__m256i)_mm512_cvtneps_pbh(_mm512_loadu_ps(src.data + i)));
  std::memset(buf.data() + n, 0, sizeof(uint16_t) * tail);
}

// 16 bf16 pairs: (bf16 lo[i], bf16 hi[i]) for i < 16, lo first in memory; a null pointer reads zeros.
inline __m512i pair16(const float* lo, const float* hi) {
  const __m512 a = lo ? _mm512_loadu_ps(lo) : _mm512_setzero_ps(), b = hi ? _mm512_loadu_ps(hi) : _mm512_setzero_ps();
  const __m512i v = (__m512i)_mm512_cvtne2ps_pbh(b, a);  // bf16 a[0..15], then b[0..15]
  const __m512i idx = _mm512_set_epi16(31, 15, 30, 14, 29, 13, 28, 12, 27, 11, 26, 10, 25, 9, 24, 8, 23, 7, 22, 6, 21,
                                       5, 20, 4, 19, 3, 18, 2, 17, 1, 16, 0);
  return _mm512_permutexvar_epi16(idx, v);
}

// r[i] = 32-bit element j of row i  ->  r[j] = element i of row j: a 16 x 16 transpose of 32-bit words.
inline void transpose16(__m512i r[16]) {
  __m512i t[16];
  for (int i = 0; i < 16; i += 2) {
    t[i] = _mm512_unpacklo_epi32(r[i], r[i + 1]);
    t[i + 1] = _mm512_unpackhi_epi32(r[i], r[i + 1]);
  }
  for (int i = 0; i < 16; i += 4) {
    r[i] = _mm512_unpacklo_epi64(t[i], t[i + 2]);
    r[i + 1] = _mm512_unpackhi_epi64(t[i], t[i + 2]);
    r[i + 2] = _mm512_unpacklo_epi64(t[i + 1], t[i + 3]);
    r[i + 3] = _mm512_unpackhi_epi64(t[i + 1], t[i + 3]);
  }
  for (int i = 0; i < 4; ++i) {
    t[i] = _mm512_shuffle_i32x4(r[i], r[i + 4], 0x88);
    t[i + 4] = _mm512_shuffle_i32x4(r[i], r[i + 4], 0xdd);
    t[i + 8] = _mm512_shuffle_i32x4(r[i + 8], r[i + 12], 0x88);
    t[i + 12] = _mm512_shuffle_i32x4(r[i + 8], r[i + 12], 0xdd);
  }
  for (int i = 0; i < 4; ++i) {
    r[i] = _mm512_shuffle_i32x4(t[i], t[i + 8], 0x88);
    r[i + 8] = _mm512_shuffle_i32x4(t[i], t[i + 8], 0xdd);
    r[i + 4] = _mm512_shuffle_i32x4(t[i + 4], t[i + 12], 0x88);
    r[i + 12] = _mm512_shuffle_i32x4(t[i + 4], t[i + 12], 0xdd);
  }
}

// out[c * row + q] = bf16(in[q * cs + c]) for q < n (then zeros up to row), c < cs (a multiple of 16): the image
// transposed to one row of positions per channel, 32 positions x 16 channels at a time.
void transpose_pairs(const float* in, int n, int cs, uint16_t* out, int row) {
  for (int q0 = 0; q0 < row; q0 += 32)
    for (int c0 = 0; c0 < cs; c0 += 16) {
      __m512i r[16];
      for (int j = 0; j < 16; ++j) {
        const int qa = q0 + 2 * j;
        r[j] = pair16(qa < n ? in + (std::size_t)qa * cs + c0 : nullptr,
                      qa + 1 < n ? in + (std::size_t)(qa + 1) * cs + c0 : nullptr);
      }
      transpose16(r);  // r[c]: channel c0 + c, positions q0 .. q0 + 31
      for (int c = 0; c < 16; ++c) {
        uint16_t* dst = out + (std::size_t)(c0 + c) * row + q0;
        if (q0 + 32 <= row)
          _mm512_storeu_si512(dst, r[c]);
        else
          _mm512_mask_storeu_epi16(dst, (__mmask32)((1ull << (row - q0)) - 1), r[c]);
      }
    }
}

// out = epilogue(conv(in, w) + bias) as conv_image_bf16 computes it; in: a bf16 image with pad k / 2 and kAmxSlack
// pixels of slack (convert_bf16_slack); w: [k][k][in.cs / 2][wstride] bf16 pairs (zero beyond the real channels).
void conv_image_amx(const BImg& in, int k, const uint32_t* w, int wstride, const float* bias, int cout, int epi,
                    int act, const Img* sav, const Img& out) {
  const int p = k / 2, wp = in.w + 2 * p, cs = in.cs, kc = cs % 32 == 0 ? 32 : 16;
  int offs[15 * 15];
  for (int ky = 0; ky < k; ++ky)
    for (int kx = 0; kx < k; ++kx) offs[ky * k + kx] = (ky - p) * wp + kx - p;
  const int q_begin = p * wp + p, q_end = (in.h - 1 + p) * wp + in.w + p;
  const int nvec = (cout + VL - 1) / VL;
  alignas(64) float tmp[32 * 32];
  tile_config(kc, kc / 2);
  for (int q0 = q_begin; q0 < q_end; q0 += 32)
    for (int v0 = 0; v0 < nvec; v0 += 2) {
      const int nb = std::min(2, nvec - v0);
      if (nb == 2)
        amx_block<2, 2>(in.data, cs, kc, offs, k * k, w, wstride, q0, v0 * VL, tmp);
      else
        amx_block<2, 1, 32>(in.data, cs, kc, offs, k * k, w, wstride, q0, v0 * VL, tmp);
      int y = q0 / wp - p, x = q0 % wp - p;
      for (int r = 0; r < 32 && q0 + r < q_end; ++r, ++x) {
        if (x == in.w + p) x = -p, ++y;
        if (x < 0 || x >= in.w) continue;
        for (int n = 0; n < nb; ++n) {
          const int o = (v0 + n) * VL;
          finish(loadu(tmp + r * 32 + n * VL) + loadu(bias + o), epi, act, sav ? sav->at(y, x) + o : nullptr, 0,
                 out.at(y, x) + o, cout - o);
        }
      }
    }
  _tile_release();
}

// dw[k][k][in.cs][dw_stride] += the weight gradient of one image: in (float32, pad k / 2, in.cs % 16 == 0) and dz
// (float32, the same geometry, zero on the padding, dz.cs outputs = dw_stride). Scratch buffers are reused.
void wgrad_image_amx(const Img& in, int k, const Img& dz, float* dw, AlignedVector<uint16_t>& in_t,
                     AlignedVector<uint32_t>& dz_p) {
  const int p = k / 2, wp = in.w + 2 * p, cin = in.cs, cvo = dz.cs;
  const int npx = (in.h + 2 * p) * wp, q_begin = p * wp + p, q_end = (in.h - 1 + p) * wp + in.w + p;
  const int nk = (q_end - q_begin + 31) / 32;
  const int row = npx + 64;  // in_t rows: q in [0, npx), then zeros (a K block reads up to 31 + p * wp + p past q_end)
  in_t.resize((std::size_t)cin * row);
  transpose_pairs(in.data, npx, cin, in_t.data(), row);
  dz_p.resize((std::size_t)nk * 16 * cvo);  // row j: (dz(q_begin + 2j), dz(q_begin + 2j + 1)) per output
  for (int j = 0; j < nk * 16; ++j) {
    const int qa = q_begin + 2 * j;
    for (int o = 0; o < cvo; o += 16)
      _mm512_storeu_si512(dz_p.data() + (std::size_t)j * cvo + o,
                          pair16(qa < npx ? dz.data + (std::size_t)qa * cvo + o : nullptr,
                                 qa + 1 < npx ? dz.data + (std::size_t)(qa + 1) * cvo + o : nullptr));
  }
  tile_config(32, 16);
  for (int ky = 0; ky < k; ++ky)
    for (int kx = 0; kx < k; ++kx) {
      const int off = (ky - p) * wp + kx - p;
      float* dwt = dw + (std::size_t)(ky * k + kx) * cin * cvo;
      for (int c0 = 0; c0 < cin; c0 += 32)
        for (int o0 = 0; o0 < cvo; o0 += 32) {
          const bool two_c = c0 + 16 < cin, two_o = o0 + 16 < cvo;
          float* c00 = dwt + (std::size_t)c0 * cvo + o0;
          _tile_loadd(0, c00, 4 * cvo);
          if (two_c) _tile_loadd(1, c00 + 16 * cvo, 4 * cvo);
          if (two_o) _tile_loadd(2, c00 + 16, 4 * cvo);
          if (two_c && two_o) _tile_loadd(3, c00 + 16 * cvo + 16, 4 * cvo);
          for (int kb = 0; kb < nk; ++kb) {
            const uint16_t* a = in_t.data() + (std::size_t)c0 * row + q_begin + off + 32 * kb;
            const uint32_t* b = dz_p.data() + (std::size_t)kb * 16 * cvo + o0;
            _tile_loadd(4, a, 2 * row);
            _tile_loadd(6, b, 4 * cvo);
            _tile_dpbf16ps(0, 4, 6);
            if (two_c) {
              _tile_loadd(5, a + 16 * row, 2 * row);
              _tile_dpbf16ps(1, 5, 6);
            }
            if (two_o) {
              _tile_loadd(7, b + 16, 4 * cvo);
              _tile_dpbf16ps(2, 4, 7);
              if (two_c) _tile_dpbf16ps(3, 5, 7);
            }
          }
          _tile_stored(0, c00, 4 * cvo);
          if (two_c) _tile_stored(1, c00 + 16 * cvo, 4 * cvo);
          if (two_o) _tile_stored(2, c00 + 16, 4 * cvo);
          if (two_c && two_o) _tile_stored(3, c00 + 16 * cvo + 16, 4 * cvo);
        }
    }
  _tile_release();
}

}  // namespace
#else
#define ESPCN_HAVE_AMX 0
#endif
