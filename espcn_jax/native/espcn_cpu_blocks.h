// Building blocks of the CPU kernel (included by espcn_cpu_kernel.cc only): the vector type for the -march the
// library is built for, tanh, the register-blocked direct convolution, and the Winograd F(4x4, 3x3) transforms.
#pragma once

#include <cstdint>
#include <cstring>
#include <vector>

#include "espcn_cpu_kernel.h"

#if defined(__AVX2__)
#include <immintrin.h>
#endif

#if defined(__AVX512F__)
#define ESPCN_VL 16
#define ESPCN_ACC 24  // of 32 zmm registers
#define ESPCN_ISA "avx512"
#elif defined(__AVX2__)
#define ESPCN_VL 8
#define ESPCN_ACC 12  // of 16 ymm registers
#define ESPCN_ISA "avx2"
#else
#define ESPCN_VL 4
#define ESPCN_ACC 12
#define ESPCN_ISA "generic"
#endif

namespace {

constexpr int VL = ESPCN_VL;      // floats per vector register
constexpr int ACC = ESPCN_ACC;    // accumulator registers per block (of 32 zmm / 16 ymm)
typedef float vf __attribute__((vector_size(VL * sizeof(float))));

inline vf loadu(const float* p) {
  vf v;
  std::memcpy(&v, p, sizeof v);
  return v;
}
inline void storeu(float* p, vf v) { std::memcpy(p, &v, sizeof v); }
// s in every lane: one broadcast (from memory, or folded into the FMA with AVX-512). `(vf){} + s` would be a scalar
// add of +0.0 and then a register broadcast, as 0 + s is not s for s = -0.0: two extra instructions per use.
inline vf splat(float s) { return s - (vf){}; }

// tanh as a clamped odd rational function (13/6), max abs error ~1e-7 on float32 (the form XLA/Eigen use):
// tanh(x) = p / q for x clamped to +-kTanhClamp (tanh_pq), and x itself for |x| < 0.0004.
constexpr float kTanhClamp = 7.90531110763549805f;
inline void tanh_pq(vf x, vf& p, vf& q) {
  vf c = x;
  c = c > kTanhClamp ? (vf){} + kTanhClamp : c;
  c = c < -kTanhClamp ? (vf){} - kTanhClamp : c;
  vf x2 = c * c;
  p = (vf){} + -2.76076847742355e-16f;
  p = p * x2 + 2.00018790482477e-13f;
  p = p * x2 + -8.60467152213735e-11f;
  p = p * x2 + 5.12229709037114e-08f;
  p = p * x2 + 1.48572235717979e-05f;
  p = p * x2 + 6.37261928875436e-04f;
  p = p * x2 + 4.89352455891786e-03f;
  p = p * c;
  q = (vf){} + 1.19825839466702e-06f;
  q = q * x2 + 1.18534705686654e-04f;
  q = q * x2 + 2.26843463243900e-03f;
  q = q * x2 + 4.89352518554385e-03f;
}

inline vf vtanh(vf x) {
  vf p, q;
  tanh_pq(x, p, q);
  vf t = p / q;
  // tiny |x|: tanh(x) = x to float precision (keeps the sign of zero and avoids the rational's rounding)
  vf ax = x < 0 ? -x : x;
  return ax < 0.0004f ? x : t;
}

inline vf activate(vf v, int activation) {
  if (activation == kActTanh) return vtanh(v);
  if (activation == kActRelu) return v > 0 ? v : (vf){};
  return v;
}

// Activation rows are channel-planar: a row of a C-channel activation is C planes of `plane` floats, the W pixels
// at offset `pad` (the next layer's k/2) with zeros around them, so SAME padding reads zeros.
//
// acc[o][q] = bias[o] + sum_{ky,kx,ic} w[ky][kx][ic][o] * in[ky][ic][x + q*VL + kx .. + VL]: NO output channels x
// NP vectors of VL consecutive pixels in registers; per (tap, ic) NP vector loads and NO weight broadcasts.
// Output channel o's NP vectors go to out + o * ostride (a scratch block, or straight into the next layer's planes).
template <int NO, int NP>
void conv_block(const float* const* rows, std::size_t plane, int k, int cin, int x, const float* w, int cout,
                const float* bias, int activation, float* out, std::size_t ostride) {
  vf acc[NO][NP];
#pragma GCC unroll 16
  for (int o = 0; o < NO; ++o) {
#pragma GCC unroll 4
    for (int q = 0; q < NP; ++q) acc[o][q] = splat(bias[o]);
  }
  for (int ky = 0; ky < k; ++ky) {
    for (int kx = 0; kx < k; ++kx) {
      const float* in = rows[ky] + x + kx;
      const float* wt = w + (std::size_t)(ky * k + kx) * cin * cout;
      for (int ic = 0; ic < cin; ++ic) {
        vf xin[NP];
#pragma GCC unroll 4
        for (int q = 0; q < NP; ++q) xin[q] = loadu(in + (std::size_t)ic * plane + q * VL);
        const float* wo = wt + (std::size_t)ic * cout;
#pragma GCC unroll 16
        for (int o = 0; o < NO; ++o) {
          vf wb = splat(wo[o]);
#pragma GCC unroll 4
          for (int q = 0; q < NP; ++q) acc[o][q] += wb * xin[q];
        }
      }
    }
  }
#pragma GCC unroll 16
  for (int o = 0; o < NO; ++o) {
#pragma GCC unroll 4
    for (int q = 0; q < NP; ++q) storeu(out + o * ostride + q * VL, activate(acc[o][q], activation));
  }
}

constexpr int kMaxNO = ACC / 2;  // output channels per block: 12 with AVX-512, 6 with 16 vector registers
constexpr int kMaxNP = 4;
constexpr int block_vectors(int no) { return ACC / no < 1 ? 1 : (ACC / no > kMaxNP ? kMaxNP : ACC / no); }

typedef void (*BlockFn)(const float* const*, std::size_t, int, int, int, const float*, int, const float*, int, float*,
                        std::size_t);

template <int NO>
BlockFn block_for() { return conv_block<NO, block_vectors(NO)>; }

inline BlockFn block_fn(int no) {
  static const BlockFn fns[13] = {nullptr, block_for<1>(), block_for<2>(), block_for<3>(), block_for<4>(),
                                          block_for<5>(), block_for<6>(), block_for<7>(), block_for<8>(),
                                          block_for<9>(), block_for<10>(), block_for<11>(), block_for<12>()};
  return fns[no];
}

// Winograd F(4x4, 3x3) (Lavin & Gray 2016) for 3x3 layers with >= 8 inputs: 36 products per 4x4 outputs instead of
// 144. Tiles are vectorised VL at a time; a tile's input columns 4t..4t+5 come from 4-way deinterleaved loads.
// Tile vectors per block: 2 (x up to 12 output channels) with 32 registers; 3 (x 4 channels) with 16, where a
// block's 12 accumulators then need 4 weight broadcasts per input channel instead of 6 (x 2 tile vectors).
#if ESPCN_VL == 8
constexpr int kWinoNP = 3;
#else
constexpr int kWinoNP = 2;
#endif
constexpr int kWinoNO = ACC / kWinoNP;     // output channels per block
constexpr int kWinoTB = kWinoNP * VL;      // tiles per block
// The deinterleaving uses GCC's __builtin_shuffle; without it (clang) the Winograd path is left out, the 3x3 layers
// run as direct convolutions, and espcn_has_winograd() returns 0 (Python prints a one-line note when it loads).
#if defined(__GNUC__) && !defined(__clang__)
#define ESPCN_HAVE_SHUFFLE 1
typedef int32_t vi __attribute__((vector_size(VL * sizeof(int32_t))));
#if ESPCN_VL == 16
const vi kEven = {0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30};
const vi kOdd = {1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31};
const vi kZipLo = {0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23};
const vi kZipHi = {8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31};
const vi kPairLo = {0, 1, 16, 17, 2, 3, 18, 19, 4, 5, 20, 21, 6, 7, 22, 23};
const vi kPairHi = {8, 9, 24, 25, 10, 11, 26, 27, 12, 13, 28, 29, 14, 15, 30, 31};
#elif ESPCN_VL == 8
const vi kEven = {0, 2, 4, 6, 8, 10, 12, 14};
const vi kOdd = {1, 3, 5, 7, 9, 11, 13, 15};
const vi kZipLo = {0, 8, 1, 9, 2, 10, 3, 11};
const vi kZipHi = {4, 12, 5, 13, 6, 14, 7, 15};
const vi kPairLo = {0, 1, 8, 9, 2, 3, 10, 11};
const vi kPairHi = {4, 5, 12, 13, 6, 7, 14, 15};
#else
const vi kEven = {0, 2, 4, 6};
const vi kOdd = {1, 3, 5, 7};
const vi kZipLo = {0, 4, 1, 5};
const vi kZipHi = {2, 6, 3, 7};
const vi kPairLo = {0, 1, 4, 5};
const vi kPairHi = {2, 3, 6, 7};
#endif
#else
#define ESPCN_HAVE_SHUFFLE 0
#endif

#if ESPCN_HAVE_SHUFFLE
// Columns of VL Winograd tiles (tile t: floats p[4t .. 4t+5]; lanes are tiles): d[i][t] = p[4t + i], i < 6.
// With AVX2 a two-source shuffle across the two 128-bit lanes is three instructions, so there the 4-way
// deinterleave is a 4x4 transpose inside each lane (tiles 0-3 in one, 4-7 in the other: unpacks and shuffles of
// one cycle) of vectors loaded half by half, and columns 4, 5 are columns 0, 1 moved one tile down.
inline void tile_columns(const float* p, vf* d) {
#if ESPCN_VL == 8 && defined(__AVX2__)
  auto halves = [p](int a) { return _mm256_insertf128_ps(_mm256_castps128_ps256(_mm_loadu_ps(p + a)), _mm_loadu_ps(p + a + 16), 1); };
  const __m256 t0 = halves(0), t1 = halves(4), t2 = halves(8), t3 = halves(12);  // tiles (0, 4), (1, 5), ...
  const __m256 lo01 = _mm256_unpacklo_ps(t0, t1), hi01 = _mm256_unpackhi_ps(t0, t1);
  const __m256 lo23 = _mm256_unpacklo_ps(t2, t3), hi23 = _mm256_unpackhi_ps(t2, t3);
  const __m256 c0 = _mm256_shuffle_ps(lo01, lo23, 0x44), c1 = _mm256_shuffle_ps(lo01, lo23, 0xEE);
  d[0] = c0, d[1] = c1, d[2] = _mm256_shuffle_ps(hi01, hi23, 0x44), d[3] = _mm256_shuffle_ps(hi01, hi23, 0xEE);
  const __m256i down = _mm256_setr_epi32(1, 2, 3, 4, 5, 6, 7, 0);
  d[4] = _mm256_blend_ps(_mm256_permutevar8x32_ps(c0, down), _mm256_broadcast_ss(p + 32), 0x80);
  d[5] = _mm256_blend_ps(_mm256_permutevar8x32_ps(c1, down), _mm256_broadcast_ss(p + 33), 0x80);
#else
  const float* p4 = p + 4;
  vf e01 = __builtin_shuffle(loadu(p), loadu(p + VL), kEven);
  vf o01 = __builtin_shuffle(loadu(p), loadu(p + VL), kOdd);
  vf e23 = __builtin_shuffle(loadu(p + 2 * VL), loadu(p + 3 * VL), kEven);
  vf o23 = __builtin_shuffle(loadu(p + 2 * VL), loadu(p + 3 * VL), kOdd);
  d[0] = __builtin_shuffle(e01, e23, kEven), d[2] = __builtin_shuffle(e01, e23, kOdd);
  d[1] = __builtin_shuffle(o01, o23, kEven), d[3] = __builtin_shuffle(o01, o23, kOdd);
  vf f01 = __builtin_shuffle(loadu(p4), loadu(p4 + VL), kEven);
  vf g01 = __builtin_shuffle(loadu(p4), loadu(p4 + VL), kOdd);
  vf f23 = __builtin_shuffle(loadu(p4 + 2 * VL), loadu(p4 + 3 * VL), kEven);
  vf g23 = __builtin_shuffle(loadu(p4 + 2 * VL), loadu(p4 + 3 * VL), kOdd);
  d[4] = __builtin_shuffle(f01, f23, kEven), d[5] = __builtin_shuffle(g01, g23, kEven);
#endif
}

// The inverse for outputs: the 4 column phases of VL tiles (lane t of y[c]: pixel 4t + c) -> 4 vectors of
// consecutive pixels at d (AVX2: the in-lane transpose, then the 128-bit halves put in pixel order).
inline void zip_phases(const vf* y, float* d) {
#if ESPCN_VL == 8 && defined(__AVX2__)
  const __m256 lo01 = _mm256_unpacklo_ps(y[0], y[1]), hi01 = _mm256_unpackhi_ps(y[0], y[1]);
  const __m256 lo23 = _mm256_unpacklo_ps(y[2], y[3]), hi23 = _mm256_unpackhi_ps(y[2], y[3]);
  const __m256 a = _mm256_shuffle_ps(lo01, lo23, 0x44), b = _mm256_shuffle_ps(lo01, lo23, 0xEE);  // tiles 0|4, 1|5
  const __m256 c = _mm256_shuffle_ps(hi01, hi23, 0x44), e = _mm256_shuffle_ps(hi01, hi23, 0xEE);  // tiles 2|6, 3|7
  _mm256_storeu_ps(d, _mm256_permute2f128_ps(a, b, 0x20));
  _mm256_storeu_ps(d + 8, _mm256_permute2f128_ps(c, e, 0x20));
  _mm256_storeu_ps(d + 16, _mm256_permute2f128_ps(a, b, 0x31));
  _mm256_storeu_ps(d + 24, _mm256_permute2f128_ps(c, e, 0x31));
#else
  vf z01l = __builtin_shuffle(y[0], y[1], kZipLo), z01h = __builtin_shuffle(y[0], y[1], kZipHi);
  vf z23l = __builtin_shuffle(y[2], y[3], kZipLo), z23h = __builtin_shuffle(y[2], y[3], kZipHi);
  storeu(d, __builtin_shuffle(z01l, z23l, kPairLo));
  storeu(d + VL, __builtin_shuffle(z01l, z23l, kPairHi));
  storeu(d + 2 * VL, __builtin_shuffle(z01h, z23h, kPairLo));
  storeu(d + 3 * VL, __builtin_shuffle(z01h, z23h, kPairHi));
#endif
}
#endif

// Floats between the 16 transformed planes: padded by a cache line so the 16 store streams do not share cache sets.
inline std::size_t vstride(int cin) { return (std::size_t)cin * kWinoTB + 16; }

template <int NP>
BlockFn wino_block_row(int no) {
  static const BlockFn fns[13] = {nullptr,           conv_block<1, NP>,  conv_block<2, NP>,  conv_block<3, NP>,
                                  conv_block<4, NP>, conv_block<5, NP>,  conv_block<6, NP>,  conv_block<7, NP>,
                                  conv_block<8, NP>, conv_block<9, NP>,  conv_block<10, NP>, conv_block<11, NP>,
                                  conv_block<12, NP>};
  return fns[no];
}

// NO (1 .. kWinoNO) output channels x NP (1 .. kWinoNP) vectors of tiles.
inline BlockFn wino_block_fn(int no, int np) {
  static_assert(kWinoNO <= 12 && kWinoNP <= 3, "the tables list up to 12 channels and 3 tile vectors");
  if (np == 1) return wino_block_row<1>(no);
  if (np == 2) return wino_block_row<2>(no);
  return wino_block_row<kWinoNP>(no);
}

// U = G g G^T for every (ic, oc): [36][cin][cout], from HWIO 3x3 weights (F(4x4, 3x3)).
inline std::vector<float> winograd_weights(const float* w, int cin, int cout) {
  static const double G[6][3] = {{1 / 4., 0, 0},          {-1 / 6., -1 / 6., -1 / 6.}, {-1 / 6., 1 / 6., -1 / 6.},
                                 {1 / 24., 1 / 12., 1 / 6.}, {1 / 24., -1 / 12., 1 / 6.}, {0, 0, 1}};
  // Separable: t = G g (6x3), then U = t G^T (6x6), in double, for all output channels of one input channel at
  // once (rows of cout floats are read and written contiguously: this runs on every call of the kernel).
  std::vector<float> u((std::size_t)36 * cin * cout);
  std::vector<double> t((std::size_t)18 * cout);  // t[a][j][oc]
  for (int ic = 0; ic < cin; ++ic) {
    const float* g[3][3];  // g[i][j][oc]
    for (int i = 0; i < 3; ++i)
      for (int j = 0; j < 3; ++j) g[i][j] = w + ((std::size_t)(i * 3 + j) * cin + ic) * cout;
    for (int a = 0; a < 6; ++a)
      for (int j = 0; j < 3; ++j) {
        double* tr = t.data() + (std::size_t)(a * 3 + j) * cout;
        for (int oc = 0; oc < cout; ++oc)
          tr[oc] = G[a][0] * g[0][j][oc] + G[a][1] * g[1][j][oc] + G[a][2] * g[2][j][oc];
      }
    for (int a = 0; a < 6; ++a)
      for (int b = 0; b < 6; ++b) {
        const double *t0 = t.data() + (std::size_t)(a * 3) * cout, *t1 = t0 + cout, *t2 = t1 + cout;
        float* ur = u.data() + ((std::size_t)(a * 6 + b) * cin + ic) * cout;
        for (int oc = 0; oc < cout; ++oc) ur[oc] = (float)(t0[oc] * G[b][0] + t1[oc] * G[b][1] + t2[oc] * G[b][2]);
      }
  }
  return u;
}

// Winograd F(4, 3) transforms in 1D: input B^T d (6 -> 6) and output A^T m (6 -> 4) (Lavin & Gray 2016).
inline void bt6(const vf* d, vf* r) {
  vf t1 = d[4] - 4.0f * d[2], t2 = d[3] - 4.0f * d[1], t3 = d[4] - d[2], t4 = 2.0f * (d[3] - d[1]);
  r[0] = 4.0f * d[0] - 5.0f * d[2] + d[4];
  r[1] = t1 + t2, r[2] = t1 - t2, r[3] = t3 + t4, r[4] = t3 - t4;
  r[5] = 4.0f * d[1] - 5.0f * d[3] + d[5];
}
inline void at6(const vf* m, vf* y) {
  vf a = m[1] + m[2], b = m[1] - m[2], c = m[3] + m[4], d = m[3] - m[4];
  y[0] = m[0] + a + c, y[1] = b + 2.0f * d, y[2] = a + 4.0f * c, y[3] = b + 8.0f * d + m[5];
}

// cout split into near-equal chunks of at most `most` channels (kMaxNO = 12: 64 -> 6 x 11ish, 32 -> 3 x 11ish,
// 9 -> 9).
inline std::vector<int> chunks(int cout, int most = kMaxNO) {
  int n = (cout + most - 1) / most;
  std::vector<int> c;
  for (int i = 0; i < n; ++i) c.push_back(cout * (i + 1) / n - cout * i / n);
  return c;
}

}  // namespace
