// Building blocks of the training kernels (included by espcn_cpu_train.cc only): padded images, the float32 and bf16
// register-blocked microkernels (forward / input-gradient convolution and weight gradient) and their dispatch tables.
#pragma once

#include <array>
#include <cstdint>
#include <cstring>
#include <utility>
#include <vector>

#include "espcn_cpu_aligned.h"

#include "espcn_cpu_blocks.h"

// bfloat16 dot products (AVX512_BF16: 32 multiply-adds of bf16 pairs into 16 float32 sums per instruction, twice
// the float32 FMA's rate): used for the convolutions with >= 8 input channels when NetDesc::bf16 is set.
#if defined(__AVX512BF16__) && ESPCN_VL == 16
#include <immintrin.h>
#define ESPCN_HAVE_BF16 1
#else
#define ESPCN_HAVE_BF16 0
#endif

namespace {

constexpr int kCS = 16;  // channel counts are padded to a multiple of this (any of the vector widths divides it)
inline int round_up(int c, int m) { return (c + m - 1) / m * m; }
constexpr int kMaxNV = 4;  // output vectors per block
constexpr int kBf16MinIn = 8;  // convolutions with fewer input channels stay float32 in bf16 mode

// A padded NHWC image: pixel (y, x), -pad <= y < H + pad, starts at data + (y + pad) * pitch + (x + pad) * cs.
template <class T>
struct ImgT {
  T* data;
  int h, w, pad, cs;
  std::size_t pitch() const { return (std::size_t)(w + 2 * pad) * cs; }
  std::size_t size() const { return (std::size_t)(h + 2 * pad) * pitch(); }
  T* at(int y, int x) const { return data + (std::size_t)(y + pad) * pitch() + (std::size_t)(x + pad) * cs; }
};
using Img = ImgT<float>;
using BImg = ImgT<uint16_t>;  // bfloat16 (the upper half of a float32), same geometry
using PImg = ImgT<uint32_t>;  // a pair of images as bf16 pairs: element (y, x, c) = (image a, image b)

inline uint16_t to_bf16(float f) {  // round to nearest even (finite f)
  uint32_t u;
  std::memcpy(&u, &f, sizeof u);
  u += 0x7FFFu + ((u >> 16) & 1u);
  return (uint16_t)(u >> 16);
}

// Two bf16 as one 32-bit word, `lo` first in memory (the pair a dot-product lane multiplies).
inline uint32_t bf16_pair(float lo, float hi) { return (uint32_t)to_bf16(lo) | ((uint32_t)to_bf16(hi) << 16); }

inline vf deriv(vf g, vf a, int activation) {  // dL/dz from dL/da and a = act(z)
  if (activation == kActTanh) return g * (1.0f - a * a);
  if (activation == kActRelu) return a > 0 ? g : (vf){};
  return g;
}

inline void store_part(float* p, vf v, int n) {  // the first n (< VL) lanes
  float t[VL];
  storeu(t, v);
  std::memcpy(p, t, sizeof(float) * n);
}

// The convolutions' epilogue for one vector of outputs: epi 0: act(a); epi 1: deriv(a, saved activation at
// sav + sav_off); stores the first n lanes (all when n >= VL, none when n <= 0).
inline void finish(vf a, int epi, int act, const float* sav, std::size_t sav_off, float* out, int n) {
  const vf r = epi == 0 ? activate(a, act) : deriv(a, loadu(sav + sav_off), act);
  if (n >= VL)
    storeu(out, r);
  else if (n > 0)
    store_part(out, r, n);
}

// out(px p, channels [v*VL, ...)) = sum_{ky, kx, ci} in0[ky * pitch + (p + kx) * in_cs + ci] * w[ky][kx][ci][v*VL ...]
// + bias, for p < NP; then the epilogue: epi 0: act(acc); epi 1: deriv(acc, saved activation at `sav`).
template <int NV, int NP>
void conv_px(const float* in0, std::size_t pitch, int in_cs, int k, int cin, const float* w, int wstride,
             const float* bias, int epi, int act, const float* sav, int sav_cs, float* out, int out_cs, int nstore) {
  vf acc[NP][NV];
#pragma GCC unroll 24
  for (int p = 0; p < NP; ++p)
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) acc[p][v] = loadu(bias + v * VL);
  for (int ky = 0; ky < k; ++ky)
    for (int kx = 0; kx < k; ++kx) {
      const float* ip = in0 + ky * pitch + (std::size_t)kx * in_cs;
      const float* wp = w + (std::size_t)(ky * k + kx) * cin * wstride;
      for (int ci = 0; ci < cin; ++ci) {
        vf wv[NV];
#pragma GCC unroll 4
        for (int v = 0; v < NV; ++v) wv[v] = loadu(wp + (std::size_t)ci * wstride + v * VL);
#pragma GCC unroll 24
        for (int p = 0; p < NP; ++p) {
          vf s = splat(ip[(std::size_t)p * in_cs + ci]);
#pragma GCC unroll 4
          for (int v = 0; v < NV; ++v) acc[p][v] += s * wv[v];
        }
      }
    }
#pragma GCC unroll 24
  for (int p = 0; p < NP; ++p)
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v)
      finish(acc[p][v], epi, act, sav, (std::size_t)p * sav_cs + v * VL, out + (std::size_t)p * out_cs + v * VL,
             nstore - v * VL);
}

#if ESPCN_HAVE_BF16
// conv_px with bf16 inputs and weights, float32 sums: per (tap, pair of input channels) NV loads of 16 weight pairs
// and NP broadcasts of an input pair, NP x NV dot products. w is [k][k][cpairs][wstride] pairs (uint32).
template <int NV, int NP>
void conv_px_bf16(const uint16_t* in0, std::size_t pitch, int in_cs, int k, int cpairs, const uint32_t* w,
                  int wstride, const float* bias, int epi, int act, const float* sav, int sav_cs, float* out,
                  int out_cs, int nstore) {
  __m512 acc[NP][NV];
#pragma GCC unroll 24
  for (int p = 0; p < NP; ++p)
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) acc[p][v] = _mm512_loadu_ps(bias + v * VL);
  for (int ky = 0; ky < k; ++ky)
    for (int kx = 0; kx < k; ++kx) {
      const uint16_t* ip = in0 + ky * pitch + (std::size_t)kx * in_cs;
      const uint32_t* wp = w + (std::size_t)(ky * k + kx) * cpairs * wstride;
      for (int cp = 0; cp < cpairs; ++cp) {
        __m512bh wv[NV];
#pragma GCC unroll 4
        for (int v = 0; v < NV; ++v) wv[v] = (__m512bh)_mm512_loadu_si512(wp + (std::size_t)cp * wstride + v * VL);
#pragma GCC unroll 24
        for (int p = 0; p < NP; ++p) {
          uint32_t pair;
          std::memcpy(&pair, ip + (std::size_t)p * in_cs + 2 * cp, sizeof pair);
          const __m512bh s = (__m512bh)_mm512_set1_epi32((int)pair);
#pragma GCC unroll 4
          for (int v = 0; v < NV; ++v) acc[p][v] = _mm512_dpbf16_ps(acc[p][v], s, wv[v]);
        }
      }
    }
#pragma GCC unroll 24
  for (int p = 0; p < NP; ++p)
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v)
      finish((vf)acc[p][v], epi, act, sav, (std::size_t)p * sav_cs + v * VL, out + (std::size_t)p * out_cs + v * VL,
             nstore - v * VL);
}

// dst = bf16(src), the whole padded image (its size is a multiple of 16: cs is).
void convert_bf16(const Img& src, AlignedVector<uint16_t>& buf, BImg& dst) {
  dst = BImg{nullptr, src.h, src.w, src.pad, src.cs};
  const std::size_t n = src.size();
  buf.resize(n);
  dst.data = buf.data();
  for (std::size_t i = 0; i < n; i += 16)
    _mm256_storeu_si256((__m256i*)(buf.data() + i), (__m256i)_mm512_cvtneps_pbh(_mm512_loadu_ps(src.data + i)));
}

// dst(y, x, c) = (bf16 a(y, x, c), bf16 b(y, x, c)); b null: zeros (an odd image out). a and b share a geometry.
void convert_pair(const Img& a, const Img* b, AlignedVector<uint32_t>& buf, PImg& dst) {
  dst = PImg{nullptr, a.h, a.w, a.pad, a.cs};
  const std::size_t n = a.size();
  buf.resize(n);
  dst.data = buf.data();
  for (std::size_t i = 0; i < n; i += 16) {
    const __m512i lo = _mm512_cvtepu16_epi32((__m256i)_mm512_cvtneps_pbh(_mm512_loadu_ps(a.data + i)));
    const __m512i hi = b ? _mm512_cvtepu16_epi32((__m256i)_mm512_cvtneps_pbh(_mm512_loadu_ps(b->data + i)))
                         : _mm512_setzero_si512();
    _mm512_storeu_si512(buf.data() + i, _mm512_or_si512(lo, _mm512_slli_epi32(hi, 16)));
  }
}

// wgrad_px for a pair of images at once: each dot product multiplies (a, b) of an input channel by (a, b) of 16
// output channels' dz, so the pair's two sums come out added.
template <int NV, int NI>
void wgrad_px_bf16(const PImg& in, int k, std::size_t off, const PImg& dz, int vbase, float* dw, int dw_stride) {
  __m512 acc[NI][NV];
#pragma GCC unroll 24
  for (int j = 0; j < NI; ++j)
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) acc[j][v] = _mm512_setzero_ps();
  const int h = dz.h, w = dz.w, in_cs = in.cs, dz_cs = dz.cs;
  for (int y = 0; y < h; ++y) {
    const uint32_t* ip = in.at(y - k / 2, -(k / 2)) + off;
    const uint32_t* dp = dz.at(y, 0) + vbase * VL;
    for (int x = 0; x < w; ++x, ip += in_cs, dp += dz_cs) {
      __m512bh d[NV];
#pragma GCC unroll 4
      for (int v = 0; v < NV; ++v) d[v] = (__m512bh)_mm512_loadu_si512(dp + v * VL);
#pragma GCC unroll 24
      for (int j = 0; j < NI; ++j) {
        const __m512bh s = (__m512bh)_mm512_set1_epi32((int)ip[j]);
#pragma GCC unroll 4
        for (int v = 0; v < NV; ++v) acc[j][v] = _mm512_dpbf16_ps(acc[j][v], s, d[v]);
      }
    }
  }
#pragma GCC unroll 24
  for (int j = 0; j < NI; ++j)
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) {
      float* p = dw + (std::size_t)j * dw_stride + (vbase + v) * VL;
      storeu(p, loadu(p) + (vf)acc[j][v]);
    }
}
#endif

// dw[j][v*VL ...] += sum over the image's pixels (y, x) of in(y - k/2, x - k/2)[off + j] * dz(y, x)[v*VL ...], j < NI.
// `off` addresses a run of NI consecutive floats: NI input channels of one tap, or NI taps along x when cs == 1.
template <int NV, int NI>
void wgrad_px(const Img& in, int k, std::size_t off, const Img& dz, int vbase, float* dw, int dw_stride) {
  vf acc[NI][NV];
#pragma GCC unroll 24
  for (int j = 0; j < NI; ++j)
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) acc[j][v] = (vf){};
  const int h = dz.h, w = dz.w, in_cs = in.cs, dz_cs = dz.cs;
  for (int y = 0; y < h; ++y) {
    const float* ip = in.at(y - k / 2, -(k / 2)) + off;
    const float* dp = dz.at(y, 0) + vbase * VL;
    for (int x = 0; x < w; ++x, ip += in_cs, dp += dz_cs) {
      vf d[NV];
#pragma GCC unroll 4
      for (int v = 0; v < NV; ++v) d[v] = loadu(dp + v * VL);
#pragma GCC unroll 24
      for (int j = 0; j < NI; ++j) {
        vf s = splat(ip[j]);
#pragma GCC unroll 4
        for (int v = 0; v < NV; ++v) acc[j][v] += s * d[v];
      }
    }
  }
#pragma GCC unroll 24
  for (int j = 0; j < NI; ++j)
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) {
      float* p = dw + (std::size_t)j * dw_stride + (vbase + v) * VL;
      storeu(p, loadu(p) + acc[j][v]);
    }
}

typedef void (*ConvFn)(const float*, std::size_t, int, int, int, const float*, int, const float*, int, int,
                       const float*, int, float*, int, int);
typedef void (*WgradFn)(const Img&, int, std::size_t, const Img&, int, float*, int);

constexpr int max_block(int nv) { return ACC / nv; }  // pixels (conv) or pairs (wgrad) per block
constexpr int kTable = ACC + 1;

template <int NV, int... I>
std::array<ConvFn, kTable> conv_table(std::integer_sequence<int, I...>) {
  return {{&conv_px<NV, (I < 1 ? 1 : (I > max_block(NV) ? max_block(NV) : I))>...}};
}
template <int NV, int... I>
std::array<WgradFn, kTable> wgrad_table(std::integer_sequence<int, I...>) {
  return {{&wgrad_px<NV, (I < 1 ? 1 : (I > max_block(NV) ? max_block(NV) : I))>...}};
}

ConvFn conv_fn(int nv, int np) {
  static const std::array<ConvFn, kTable> t[kMaxNV] = {
      conv_table<1>(std::make_integer_sequence<int, kTable>()), conv_table<2>(std::make_integer_sequence<int, kTable>()),
      conv_table<3>(std::make_integer_sequence<int, kTable>()), conv_table<4>(std::make_integer_sequence<int, kTable>())};
  return t[nv - 1][np];
}
#if ESPCN_HAVE_BF16
typedef void (*ConvBf16Fn)(const uint16_t*, std::size_t, int, int, int, const uint32_t*, int, const float*, int, int,
                           const float*, int, float*, int, int);
template <int NV, int... I>
std::array<ConvBf16Fn, kTable> conv_bf16_table(std::integer_sequence<int, I...>) {
  return {{&conv_px_bf16<NV, (I < 1 ? 1 : (I > max_block(NV) ? max_block(NV) : I))>...}};
}
typedef void (*WgradBf16Fn)(const PImg&, int, std::size_t, const PImg&, int, float*, int);
template <int NV, int... I>
std::array<WgradBf16Fn, kTable> wgrad_bf16_table(std::integer_sequence<int, I...>) {
  return {{&wgrad_px_bf16<NV, (I < 1 ? 1 : (I > max_block(NV) ? max_block(NV) : I))>...}};
}
WgradBf16Fn wgrad_bf16_fn(int nv, int ni) {
  static const std::array<WgradBf16Fn, kTable> t[kMaxNV] = {
      wgrad_bf16_table<1>(std::make_integer_sequence<int, kTable>()),
      wgrad_bf16_table<2>(std::make_integer_sequence<int, kTable>()),
      wgrad_bf16_table<3>(std::make_integer_sequence<int, kTable>()),
      wgrad_bf16_table<4>(std::make_integer_sequence<int, kTable>())};
  return t[nv - 1][ni];
}

ConvBf16Fn conv_bf16_fn(int nv, int np) {
  static const std::array<ConvBf16Fn, kTable> t[kMaxNV] = {
      conv_bf16_table<1>(std::make_integer_sequence<int, kTable>()),
      conv_bf16_table<2>(std::make_integer_sequence<int, kTable>()),
      conv_bf16_table<3>(std::make_integer_sequence<int, kTable>()),
      conv_bf16_table<4>(std::make_integer_sequence<int, kTable>())};
  return t[nv - 1][np];
}
#endif

WgradFn wgrad_fn(int nv, int ni) {
  static const std::array<WgradFn, kTable> t[kMaxNV] = {
      wgrad_table<1>(std::make_integer_sequence<int, kTable>()),
      wgrad_table<2>(std::make_integer_sequence<int, kTable>()),
      wgrad_table<3>(std::make_integer_sequence<int, kTable>()),
      wgrad_table<4>(std::make_integer_sequence<int, kTable>())};
  return t[nv - 1][ni];
}

}  // namespace
