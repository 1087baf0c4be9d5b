// ESPCN inference with the layers of >= 8 input channels on AMX tiles (bf16 operands, float32 sums); compiled in
// the "avx512_amx" variant, a stub elsewhere. Same net, `valid` rectangles and periodic shuffle as espcn_forward
// (espcn_cpu_kernel.cc). A one-input first layer with k * k <= 32 taps runs on the tiles too, as a 1x1 convolution
// of its im2col rows (a pixel's taps as bf16 "channels"): 255 x as hi + lo, two bf16 numbers (~16 significant bits;
// 8-bit pictures exactly, lo = 0: the integers 0-255 are bf16 numbers; see kSnap), against the weights / 255 as the
// sum of three bf16 parts (float32's 24 bits): hi x (all three parts) + lo x (the first two). So this layer loses
// ~2^-17 of the input and nothing of the weights to bf16; other first layers (3 inputs, larger k) run in float32.
//
// Every layer's sums start from its bias (in the tiles), and the epilogue of a block (activation, bf16, or the last
// layer's periodic shuffle) runs while the tiles compute the next block (Item::amx_layer). Buffers the tiles touch
// are cache-line aligned (espcn_cpu_aligned.h).
//
// Work items: (image, band of output rows, strip of output columns), claimed in turn by the calling thread and tasks
// on XLA's intra-op thread pool (threads that live between calls). An item walks down its band in chunks of
// kChunk rows. Layer l's output is needed R_l = sum_{m > l} k_m / 2 pixels beyond the strip, so every activation of
// an item lives on one grid of Wp = strip + 2 R_0 columns, NHWC bf16 (channels padded to 16), chunk rows plus
// 2 R_l carried rows: after a chunk the last 2 R_l rows move to the top, so no row is computed twice within a band.
// A chunk's buffers (~1 MB for a 256-pixel strip of 64 channels) stay in L2.
//
// The AMX layers use the flat index of the grid (as espcn_cpu_train_amx.h): output q = row * Wp + column reads its
// input at q + ky * Wp + kx - k / 2, so a tile's 16 rows are 16 consecutive q (loaded straight from the NHWC image)
// and the few columns near the grid's sides come out wrong and are never read by the outputs that count.
// Activations outside the `valid` rectangle are set to zero (exact SAME padding of the rectangle).

#include "espcn_cpu_infer_amx.h"

#include <algorithm>
#include <atomic>
#include <cstring>
#include <memory>
#include <thread>
#include <vector>

#include "espcn_cpu_aligned.h"
#include "espcn_cpu_blocks.h"
#include "espcn_cpu_tasks.h"

#if defined(__AMX_TILE__) && defined(__AMX_BF16__) && defined(__AVX512BF16__)
#include <immintrin.h>

#include "espcn_cpu_amx_tiles.h"

extern "C" int espcn_amx_request();  // espcn_cpu_probe.cc: the CPU has AMX and the OS lets this process use it

namespace {

bool amx_ok() {
  static const bool ok = espcn_amx_request() != 0;
  return ok;
}

constexpr int kChunk = 16;     // output rows per chunk
constexpr int kStripMax = 256;  // output columns per strip at most
constexpr int kSlack = 128;    // pixels after each grid buffer (a block runs up to 47 past the end, taps + k / 2)
constexpr int kNP0 = 6;        // pixels per block of the float32 first layer
constexpr int kCol = 64;       // bf16 slots per im2col row of the AMX first layer: 32 for hi, 32 for lo
constexpr int kColPixels = 1024;  // im2col rows built at a time (128 KB: stays in L2 beside the activations)
constexpr float kInScale = 255.f;  // AMX first layer: input x 255 (8-bit values exact in bf16), weights / 255
constexpr int kParts = 3;      // AMX first layer: each weight as the sum of 3 bf16 numbers (float32's 24 bits)
// AMX first layer: 255 x within kSnap of an integer is taken as that integer (moves x by <= 2^-10 / 255 < 2^-17, what
// the lo part keeps anyway). 8-bit pictures divided by 255 then come out exact whichever way the division was done:
// XLA turns y / 255 into y * (1 / 255), and 255 (y * (1 / 255)) misses y by an ulp for 126 of the 256 values, which
// made every chunk of a video frame take the lo half (2 more products per block and a second im2col).
constexpr float kSnap = 1.f / 1024;

int round16(int n) { return (n + 15) / 16 * 16; }

struct Layer {
  int k, r, cin, cs_in, cout, cs_out;
  bool amx = true;            // on the tiles (the first layer: with one input and k * k <= 32)
  std::vector<float> w;       // float32 first layer: [k * k][cin][cs_out]
  AlignedVector<uint32_t> wp;  // AMX layers: [k * k][cs_in / 2][cs_out] bf16 pairs (input channels 2i, 2i + 1);
                               // the AMX first layer: [kParts][16][cs_out], the parts of the weights / 255 as pairs
                               // of taps (2i, 2i + 1); taps from k * k on are zero
  AlignedVector<float> bias;  // [cs_out + 16], zero beyond cout (the AMX sums start from it: 16 more for an odd last
                              // vector of outputs)
};

uint16_t to_bf16(float f) {  // round to nearest even (as vcvtneps2bf16)
  uint32_t u;
  std::memcpy(&u, &f, 4);
  if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x40);
  return (uint16_t)((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
}

float from_bf16(uint16_t h) {
  const uint32_t u = (uint32_t)h << 16;
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

struct Plan {
  const NetDesc* net;
  int L, act;
  std::vector<Layer> layers;
  std::vector<int> R;  // R[l]: how far beyond the strip layer l's output is needed
  std::vector<std::size_t> shuffle;  // the last layer's channel -> offset in the HR output from the pixel's corner
  // Item::store_run: for HR row i of 16 LR pixels, vector v, lane e (float j = 16 v + e of the row): where it is in the
  // block's sums (rows of gather_ld floats): pixel j / (r C), output i r C + j % (r C)
  std::vector<int32_t> gather;
  int gather_ld = 0;

  bool build(const NetDesc* d, const float* packed) {
    net = d, L = d->num_layers, act = d->activation;
    if (L < 2 || d->channels[0] >= 8) return false;
    const float* p = packed;
    for (int l = 0; l < L; ++l) {
      Layer ly;
      ly.k = d->kernel_sizes[l], ly.r = ly.k / 2, ly.cin = d->channels[l], ly.cout = d->channels[l + 1];
      if (ly.k % 2 == 0 || ly.k > 15 || (l > 0 && ly.cin < 8)) return false;
      ly.cs_in = l == 0 ? ly.cin : round16(ly.cin), ly.cs_out = round16(ly.cout);
      const int taps = ly.k * ly.k;
      ly.amx = l > 0 || (ly.cin == 1 && taps <= 32);
      if (l == 0 && ly.amx) {
        ly.wp.assign((std::size_t)kParts * 16 * ly.cs_out, 0u);
        for (int t = 0; t < taps; ++t)
          for (int o = 0; o < ly.cout; ++o) {
            float w = p[(std::size_t)t * ly.cout + o] / kInScale;
            for (int part = 0; part < kParts; ++part) {  // w = hi + mid + lo, each the bf16 nearest what is left
              const uint16_t h = to_bf16(w);
              w -= from_bf16(h);
              ly.wp[(std::size_t)(part * 16 + t / 2) * ly.cs_out + o] |= (uint32_t)h << (16 * (t & 1));
            }
          }
      } else if (l == 0) {
        ly.w.assign((std::size_t)taps * ly.cin * ly.cs_out, 0.f);
        for (int t = 0; t < taps; ++t)
          for (int c = 0; c < ly.cin; ++c)
            for (int o = 0; o < ly.cout; ++o)
              ly.w[((std::size_t)t * ly.cin + c) * ly.cs_out + o] = p[((std::size_t)t * ly.cin + c) * ly.cout + o];
      } else {
        ly.wp.assign((std::size_t)taps * (ly.cs_in / 2) * ly.cs_out, 0u);
        for (int t = 0; t < taps; ++t)
          for (int c = 0; c < ly.cin; ++c)
            for (int o = 0; o < ly.cout; ++o) {
              uint32_t& pair = ly.wp[((std::size_t)t * (ly.cs_in / 2) + c / 2) * ly.cs_out + o];
              pair |= (uint32_t)to_bf16(p[((std::size_t)t * ly.cin + c) * ly.cout + o]) << (16 * (c & 1));
            }
      }
      p += (std::size_t)taps * ly.cin * ly.cout;
      ly.bias.assign(ly.cs_out + 16, 0.f);
      std::copy(p, p + ly.cout, ly.bias.begin());
      p += ly.cout;
      layers.push_back(std::move(ly));
    }
    R.assign(L, 0);
    for (int l = L - 2; l >= 0; --l) R[l] = R[l + 1] + layers[l + 1].r;
    const int r = d->scale, C = d->in_channels;
    for (int ch = 0; ch < layers[L - 1].cout; ++ch) {
      const int c = ch % C, ij = ch / C, i = ij / r, j = ij % r;
      shuffle.push_back(((std::size_t)i * r * d->width + j) * C + c);
    }
    const int nvec_last = layers[L - 1].cs_out / 16, rc = r * C;
    gather_ld = (nvec_last >= 2 ? 2 : 1) * 16;  // amx_layer's blocks of the last layer
    for (int i = 0; i < r; ++i)
      for (int v = 0; v < rc; ++v)
        for (int e = 0; e < 16; ++e) {
          const int j = 16 * v + e;
          gather.push_back((j / rc) * gather_ld + i * rc + j % rc);
        }
    return true;
  }
};

// Tiles 0-3: C (16 x 16 float32); A tiles (16 rows of kc bf16) from 4; B tiles (kc / 2 rows of 16 bf16 pairs): 7
// for one vector of outputs per block (A: 4-6), 6-7 for two (A: 4-5).
void tile_config_for(int kc, int nb) {
  TileConfig cfg;
  for (int t = 0; t < 4; ++t) cfg.rows[t] = 16, cfg.colsb[t] = 64;
  for (int t = 4; t < 8; ++t) cfg.rows[t] = 16, cfg.colsb[t] = (uint16_t)(2 * kc);  // A tiles
  for (int t = (nb == 1 ? 7 : 6); t < 8; ++t) cfg.rows[t] = (uint8_t)(kc / 2), cfg.colsb[t] = 64;  // B tiles
  load_tile_config(cfg);
}

// tanh for outputs rounded to bf16 next: x P(x^2) / Q(x^2) of degrees 7 / 6 for |x| <= 4, fitted here (max abs error
// 2e-8 in exact arithmetic, ~1e-7 in float32), and tanh(+-4) = +-0.99933 beyond: within bf16's last step below 1
// (0.99805 rounds up), so every |x| >= 4 gives +-1 after the rounding, as tanh does. The division: a reciprocal
// estimate and one Newton step. 14 instructions, against 20 for espcn_cpu_blocks.h's float32-exact vtanh; over
// [-6, 6] the two differ after bf16 rounding for 7e-6 of the inputs (numpy, float32). relu and linear as `activate`.
// (Without the Newton step, 12: the outputs moved 4-5x further from the bf16-operand net's, tests/test_native_bf16.py,
// for ~2% of the kernel's time.)
inline vf activate_fast(vf x, int activation) {
  if (activation != kActTanh) return activate(x, activation);
  vf c = x > 4.f ? (vf){} + 4.f : x;  // a NaN stays NaN
  c = c < -4.f ? (vf){} - 4.f : c;
  const vf u = c * c;
  vf p = u * 5.8552768678055145e-06f + 0.002609633607789874f;
  p = p * u + 0.12646566331386566f;
  p = (p * u + 1.f) * c;
  vf q = u * 0.000181699768290855f + 0.022542772814631462f;
  q = q * u + 0.4597989022731781f;
  q = q * u + 1.f;
  vf r = (vf)_mm512_rcp14_ps((__m512)q);
  r = r * (2.0f - q * r);
  return p * r;
}

inline __m256i bf16x16(vf v) { return (__m256i)_mm512_cvtneps_pbh((__m512)v); }

// floats of one block's sums (32 pixels x 32 outputs, 48 x 16, or the first layer's 32 x 32)
constexpr int kTmp = 1024;

// A block's sums waiting in tmp for their epilogue: n pixels from grid index q0, outputs o0 .. o0 + 16 nbv - 1, rows
// of ld floats.
struct Sums {
  const float* t = nullptr;
  int q0 = 0, o0 = 0, nbv = 0, n = 0, ld = 0;
};

// One work item: rows [ys, ye) x columns [x0, x1) of image b.
class Item {
 public:
  Item(const Plan& plan, const float* img, const int32_t* valid, float* out)
      : P_(plan), d_(*plan.net), img_(img), out_(out) {
    vy0_ = valid[0], vy1_ = valid[1], vx0_ = valid[2], vx1_ = valid[3];
  }

  void run(int ys, int ye, int x0, int x1) {
    const int L = P_.L;
    x0_ = x0, x1_ = x1, G_ = P_.R[0], Wp_ = (x1 - x0) + 2 * G_;
    // (the buffers tiles touch are cache-line aligned: espcn_cpu_aligned.h)
    static thread_local std::vector<AlignedVector<uint16_t>> acts;
    static thread_local std::vector<float> inbuf;
    static thread_local AlignedVector<float> tmp;
    acts.resize(L - 1);
    for (int l = 0; l < L - 1; ++l) {
      const std::size_t n = ((std::size_t)(kChunk + 2 * P_.R[l]) * Wp_ + kSlack) * P_.layers[l].cs_out;
      if (acts[l].size() < n) acts[l].assign(n, 0);  // zeros: the slack is read by outputs that are dropped
    }
    const Layer& l0 = P_.layers[0];
    wi_ = Wp_ + 2 * l0.r + kNP0;
    const std::size_t nin = (std::size_t)(kChunk + 2 * P_.R[0] + 2 * l0.r) * l0.cin * wi_;
    if (!l0.amx && inbuf.size() < nin) inbuf.resize(nin);
    static thread_local AlignedVector<uint16_t> inb, col;
    if (l0.amx) {
      const std::size_t nb = (std::size_t)2 * (kChunk + 2 * P_.R[0] + 2 * l0.r) * wi_;  // hi and lo planes
      if (inb.size() < nb) inb.resize(nb);
      // zeros: the slots after the k * k taps are never written (their weights are zero; zeros keep them finite)
      const std::size_t nc = ((std::size_t)std::max(1, kColPixels / Wp_) * Wp_ + 64) * kCol;
      if (col.size() < nc) col.assign(nc, 0);
      inb_ = inb.data(), col_ = col.data();
    }
    tmp.resize(2 * kTmp);  // two blocks' sums: the tiles write one while the vector units read the other
    tmp_ = tmp.data();
    for (int y = ys; y < ye; y += kChunk) {
      const int c = std::min(kChunk, ye - y);
      const bool first = y == ys;
      for (int l = 0; l < L; ++l) {
        const int a = first ? 0 : 2 * P_.R[l], b = c + 2 * P_.R[l];  // output rows of the chunk (buffer rows)
        uint16_t* dst = l + 1 < L ? acts[l].data() : nullptr;
        if (l == 0 && P_.layers[0].amx)
          first_layer_amx(y, a, b, dst);
        else if (l == 0)
          first_layer(y, a, b, inbuf.data(), dst);
        else
          amx_layer(l, y, a, b, acts[l - 1].data(), dst);

      }
      for (int l = 0; l + 1 < L; ++l) {  // carry the last 2 R_l rows to the top
        const std::size_t row = (std::size_t)Wp_ * P_.layers[l].cs_out;
        std::memmove(acts[l].data(), acts[l].data() + c * row, 2 * P_.R[l] * row * sizeof(uint16_t));
      }
    }
    _tile_release();
  }

 private:
  bool inside(int Y, int X) const { return Y >= vy0_ && Y < vy1_ && X >= vx0_ && X < vx1_; }

  // Layer 0 (float32) output rows [a, b) of the chunk at y (canvas row y - R_0 + i) into dst (bf16, NHWC).
  __attribute__((noinline))  // (each layer its own function, also in profiles)
  void first_layer(int y, int a, int b, float* in, uint16_t* dst) {
    const Layer& ly = P_.layers[0];
    const int k = ly.k, rr = ly.r, cin = ly.cin, cs = ly.cs_out, W = d_.width;
    const int Y0 = y - P_.R[0] + a - rr, nrows = b - a + 2 * rr, X0 = x0_ - G_ - rr;
    // the input window, channel-planar rows of wi_ floats: zero outside the valid rectangle
    for (int j = 0; j < nrows; ++j) {
      const int Y = Y0 + j;
      const bool row_in = Y >= vy0_ && Y < vy1_;
      for (int c = 0; c < cin; ++c) {
        float* dr = in + ((std::size_t)j * cin + c) * wi_;
        std::memset(dr, 0, sizeof(float) * wi_);
        if (!row_in) continue;
        const int xs = std::max(X0, vx0_), xe = std::min(X0 + wi_, vx1_);
        const float* src = img_ + (std::size_t)Y * W * cin + c;
        for (int X = xs; X < xe; ++X) dr[X - X0] = src[(std::size_t)X * cin];
      }
    }
    const std::size_t rs = (std::size_t)cin * wi_;
    for (int i = a; i < b; ++i) {
      const int Y = y - P_.R[0] + i;
      uint16_t* drow = dst + (std::size_t)i * Wp_ * cs;
      if (Y < vy0_ || Y >= vy1_) {
        std::memset(drow, 0, sizeof(uint16_t) * Wp_ * cs);
        continue;
      }
      const float* irow = in + (std::size_t)(i - a) * rs;
      for (int v0 = 0; v0 < cs / 16; v0 += 4) {
        const int nv = std::min(4, cs / 16 - v0);
        for (int gx = 0; gx < Wp_; gx += kNP0) {
          switch (nv) {
            case 4: first_block<4>(irow, rs, k, cin, ly, v0, gx, Y, drow); break;
            case 3: first_block<3>(irow, rs, k, cin, ly, v0, gx, Y, drow); break;
            case 2: first_block<2>(irow, rs, k, cin, ly, v0, gx, Y, drow); break;
            default: first_block<1>(irow, rs, k, cin, ly, v0, gx, Y, drow);
          }
        }
      }
    }
  }

  // The AMX first layer (one input, k * k <= 32 taps): output rows [a, b) of the chunk at y into dst, as first_layer.
  // The input window holds hi = bf16(255 x) and lo = bf16(255 x - hi) in two planes of rows of wi_; an output pixel's
  // im2col row holds the hi of tap (ky, kx) at slot ky * k + kx and its lo 32 slots further. Rows whose lo are all
  // zero (8-bit pictures) skip the lo half.
  __attribute__((noinline))
  void first_layer_amx(int y, int a, int b, uint16_t* dst) {
    const Layer& ly = P_.layers[0];
    const int k = ly.k, rr = ly.r, cs = ly.cs_out, W = d_.width;
    const int Y0 = y - P_.R[0] + a - rr, nrows = b - a + 2 * rr, X0 = x0_ - G_ - rr;
    const std::size_t plane = (std::size_t)nrows * wi_;
    const __m512 scale = _mm512_set1_ps(kInScale), snap = _mm512_set1_ps(kSnap);
    __m512i any_lo = _mm512_setzero_si512();
    for (int j = 0; j < nrows; ++j) {
      const int Y = Y0 + j;
      uint16_t* dh = inb_ + (std::size_t)j * wi_;
      std::memset(dh, 0, sizeof(uint16_t) * wi_);
      std::memset(dh + plane, 0, sizeof(uint16_t) * wi_);
      if (Y < vy0_ || Y >= vy1_) continue;
      const int xs = std::max(X0, vx0_), xe = std::min(X0 + wi_, vx1_);
      const float* src = img_ + (std::size_t)Y * W;
      for (int X = xs; X < xe; X += 16) {
        const __mmask16 m = (__mmask16)(xe - X >= 16 ? 0xffffu : (1u << (xe - X)) - 1);
        __m512 v = _mm512_mul_ps(_mm512_maskz_loadu_ps(m, src + X), scale);
        const __m512 vr = _mm512_roundscale_ps(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
        v = _mm512_mask_mov_ps(v, _mm512_cmp_ps_mask(_mm512_abs_ps(_mm512_sub_ps(v, vr)), snap, _CMP_LE_OQ), vr);
        const __m256i hi = bf16x16((vf)v);
        const __m512 v_hi = _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(hi), 16));
        const __m256i lo = bf16x16((vf)_mm512_sub_ps(v, v_hi));
        any_lo = _mm512_or_si512(any_lo, _mm512_castsi256_si512(lo));
        _mm256_mask_storeu_epi16(dh + (X - X0), m, hi);
        _mm256_mask_storeu_epi16(dh + plane + (X - X0), m, lo);
      }
    }
    // lo: 255 x is not a bf16 number somewhere in the window (-0 counts: it changes nothing but costs nothing either)
    const bool lo = _mm512_test_epi32_mask(any_lo, any_lo) != 0;
    const __mmask8 tap_mask = (__mmask8)((1u << k) - 1);
    const int nvec = cs / 16, rows_per = std::max(1, kColPixels / Wp_);
    tile_config_for(32, 2);
    Sums prev;
    int half = 0;
    for (int i0 = a; i0 < b; i0 += rows_per) {
      const int i1 = std::min(b, i0 + rows_per), n = (i1 - i0) * Wp_;
      for (int i = i0; i < i1; ++i)
        for (int gx = 0; gx < Wp_; ++gx) {
          uint16_t* c = col_ + ((std::size_t)(i - i0) * Wp_ + gx) * kCol;
          const uint16_t* s = inb_ + (std::size_t)(i - a) * wi_ + gx;
          for (int ky = 0; ky < k; ++ky)
            _mm_mask_storeu_epi16(c + ky * k, tap_mask, _mm_maskz_loadu_epi16(tap_mask, s + (std::size_t)ky * wi_));
          if (lo)
            for (int ky = 0; ky < k; ++ky)
              _mm_mask_storeu_epi16(c + 32 + ky * k, tap_mask,
                                    _mm_maskz_loadu_epi16(tap_mask, s + plane + (std::size_t)ky * wi_));
        }
      for (int q0 = 0; q0 < n; q0 += 32)
        for (int v0 = 0; v0 < nvec; v0 += 2) {  // pipelined as amx_layer
          const int nbv = std::min(2, nvec - v0);
          float* t = tmp_ + half * kTmp;
          first_tiles(q0, v0 * 16, nbv, lo, ly, t, [&](int s, int ns) {
            finish(prev, prev.n * s / ns, prev.n * (s + 1) / ns, ly, y - P_.R[0], dst);
          });
          prev = Sums{t, i0 * Wp_ + q0, v0 * 16, nbv, std::min(32, n - q0), 32};
          half ^= 1;
        }
    }
    finish(prev, 0, prev.n, ly, y - P_.R[0], dst);
  }

  // The first layer's tiles for im2col rows q0 .. q0 + 31 x outputs o0 .. o0 + 16 nbv - 1, from the bias, into tmp
  // (rows of 32): hi x (each part of the weights), then lo x the first two (what is left, lo x the third, is ~2^-27
  // of the product). work(s, n) after each of the n steps (as amx_block's). Tiles: C 0-3 (C 2m + n), A 4-5, B 6-7.
  template <class Work>
  void first_tiles(int q0, int o0, int nbv, bool lo, const Layer& ly, float* tmp, const Work& work) {
    const int cs = ly.cs_out, steps = lo ? kParts + 2 : kParts;
    const std::size_t part = (std::size_t)(kCol / 4) * cs;  // one part of the weights: 16 rows of pairs
    const float* bias = ly.bias.data() + o0;
    _tile_loadd(0, bias, 0);
    _tile_loadd(1, bias + 16, 0);
    _tile_loadd(2, bias, 0);
    _tile_loadd(3, bias + 16, 0);
    int step = 0;
    for (int h = 0; h < (lo ? 2 : 1); ++h) {
      _tile_loadd(4, col_ + (std::size_t)q0 * kCol + 32 * h, 2 * kCol);
      _tile_loadd(5, col_ + (std::size_t)(q0 + 16) * kCol + 32 * h, 2 * kCol);
      for (int pt = 0; pt < (h == 0 ? kParts : 2); ++pt) {
        const uint32_t* w = ly.wp.data() + pt * part + o0;
        _tile_loadd(6, w, 4 * cs);
        _tile_dpbf16ps(0, 4, 6);
        _tile_dpbf16ps(2, 5, 6);
        if (nbv == 2) {
          _tile_loadd(7, w + 16, 4 * cs);
          _tile_dpbf16ps(1, 4, 7);
          _tile_dpbf16ps(3, 5, 7);
        }
        work(step++, steps);
      }
    }
    _tile_stored(0, tmp, 128);
    _tile_stored(2, tmp + 16 * 32, 128);
    if (nbv == 2) {
      _tile_stored(1, tmp + 16, 128);
      _tile_stored(3, tmp + 16 * 32 + 16, 128);
    }
  }

  template <int NV>
  void first_block(const float* irow, std::size_t rs, int k, int cin, const Layer& ly, int v0, int gx, int Y,
                   uint16_t* drow) {
    const int cs = ly.cs_out;
    vf acc[kNP0][NV];
    for (int v = 0; v < NV; ++v) {
      const vf bias = loadu(ly.bias.data() + (v0 + v) * 16);
      for (int p = 0; p < kNP0; ++p) acc[p][v] = bias;
    }
    for (int ky = 0; ky < k; ++ky)
      for (int kx = 0; kx < k; ++kx)
        for (int c = 0; c < cin; ++c) {
          const float* wt = ly.w.data() + ((std::size_t)(ky * k + kx) * cin + c) * cs + v0 * 16;
          vf wv[NV];
          for (int v = 0; v < NV; ++v) wv[v] = loadu(wt + v * 16);
          const float* src = irow + ky * rs + (std::size_t)c * wi_ + gx + kx;
#pragma GCC unroll 8
          for (int p = 0; p < kNP0; ++p) {
            const vf s = splat(src[p]);
            for (int v = 0; v < NV; ++v) acc[p][v] += s * wv[v];
          }
        }
    for (int p = 0; p < kNP0 && gx + p < Wp_; ++p) {
      const bool in = inside(Y, x0_ - G_ + gx + p);
      uint16_t* d = drow + (std::size_t)(gx + p) * cs + v0 * 16;
      for (int v = 0; v < NV; ++v) {
        const vf a = in ? activate_fast(acc[p][v], P_.act) : (vf){};
        _mm256_storeu_si256((__m256i*)(d + v * 16), bf16x16(a));
      }
    }
  }

  // AMX layer l: output rows [a, b) of the chunk (canvas row y - R_l + i) from src (layer l - 1's grid); into dst,
  // or (the last layer) shuffled into the HR output.
  __attribute__((noinline))
  void amx_layer(int l, int y, int a, int b, const uint16_t* src, uint16_t* dst) {
    const Layer& ly = P_.layers[l];
    const int k = ly.k, cs = ly.cs_in, kc = cs % 32 == 0 ? 32 : 16, R = P_.R[l];
    int offs[15 * 15];
    for (int ky = 0; ky < k; ++ky)
      for (int kx = 0; kx < k; ++kx) offs[ky * k + kx] = ky * Wp_ + kx - ly.r;
    // the outputs that count: columns G - R .. Wp - G + R of rows a .. b - 1
    const int q_begin = a * Wp_ + (G_ - R), q_end = (b - 1) * Wp_ + Wp_ - G_ + R;
    const int nvec = ly.cs_out / 16;
    const int nb = nvec >= 2 ? 2 : 1, mb = nb == 2 ? 2 : 3, step = 16 * mb;
    tile_config_for(kc, nb);
    // Software pipelined: while the tiles sum block j (into one half of tmp), the vector units finish block j - 1
    // (from the other half), a share of its pixels after each step of block j's products.
    Sums prev;
    int half = 0;
    for (int v0 = 0; v0 < nvec; v0 += nb) {
      const int nbv = std::min(nb, nvec - v0);
      for (int q0 = q_begin; q0 < q_end; q0 += step) {
        float* t = tmp_ + half * kTmp;
        const auto work = [&](int i, int n) { finish(prev, prev.n * i / n, prev.n * (i + 1) / n, ly, y - R, dst); };
        if (nb == 2 && nbv == 2)
          amx_block<2, 2>(src, cs, kc, offs, k * k, ly.wp.data(), ly.cs_out, q0, v0 * 16, t, work, ly.bias.data());
        else if (nb == 2)  // an odd last vector of outputs with the 2-output tile config (B in tile 7)
          amx_block<2, 1, 32>(src, cs, kc, offs, k * k, ly.wp.data(), ly.cs_out, q0, v0 * 16, t, work, ly.bias.data());
        else
          amx_block<3, 1>(src, cs, kc, offs, k * k, ly.wp.data(), ly.cs_out, q0, v0 * 16, t, work, ly.bias.data());
        prev = Sums{t, q0, v0 * 16, nbv, std::min(step, q_end - q0), nb * 16};
        half ^= 1;
      }
    }
    finish(prev, 0, prev.n, ly, y - R, dst);
  }

  // Pixels [p0, p1) of the block `s` of layer `ly` (grid row i is canvas row y0 + i; the sums include the bias): the
  // activation, to dst (bf16, zero outside the valid rectangle); or (dst null: the last layer) shuffled into the HR
  // output.
  void finish(const Sums& s, int p0, int p1, const Layer& ly, int y0, uint16_t* dst) {
    if (p0 >= p1) return;
    int i = (s.q0 + p0) / Wp_, gx = (s.q0 + p0) % Wp_;
    if (dst == nullptr) {  // runs of pixels along one grid row; the columns of the strip count
      for (int p = p0; p < p1; i += 1, gx = 0) {
        const int e = std::min(p1, p + Wp_ - gx), a = std::max(gx, G_) - gx, b = std::min(Wp_ - G_ - gx, e - p);
        if (a < b) store_run(y0 + i, x0_ - G_ + gx + a, s.t + (std::size_t)(p + a) * s.ld, b - a, s, ly);
        p = e;
      }
      return;
    }
    for (int p = p0; p < p1; i += 1, gx = 0) {  // runs along one grid row: zeros, the valid columns, zeros
      const int e = std::min(p1, p + Wp_ - gx), X = x0_ - G_ + gx, Y = y0 + i;
      const bool row_in = Y >= vy0_ && Y < vy1_;
      const int a = row_in ? std::clamp(vx0_ - X, 0, e - p) : e - p;
      const int b = row_in ? std::clamp(vx1_ - X, a, e - p) : e - p;
      uint16_t* d = dst + (std::size_t)(s.q0 + p) * ly.cs_out + s.o0;
      const float* t = s.t + (std::size_t)p * s.ld;
      const auto zero = [&](int j0, int j1) {
        for (int j = j0; j < j1; ++j)
          for (int n = 0; n < s.nbv; ++n)
            _mm256_storeu_si256((__m256i*)(d + (std::size_t)j * ly.cs_out + n * 16), __m256i{});
      };
      zero(0, a);
      if (s.nbv == 2 && P_.act == kActTanh)
        activate_run<2, kActTanh>(t, s.ld, d, ly.cs_out, a, b);
      else if (s.nbv == 2)
        activate_run<2, -1>(t, s.ld, d, ly.cs_out, a, b);
      else
        activate_run<1, -1>(t, s.ld, d, ly.cs_out, a, b);
      zero(b, e - p);
      p = e;
    }
  }

  // dst pixels j in [j0, j1) (rows of `stride` bf16) = the activation (ACT, or P_.act for -1) of NV vectors of sums at
  // t (rows of ld floats).
  template <int NV, int ACT>
  void activate_run(const float* t, int ld, uint16_t* dst, int stride, int j0, int j1) const {
    const int act = ACT >= 0 ? ACT : P_.act;
    for (int j = j0; j < j1; ++j) {
      const float* s = t + (std::size_t)j * ld;
      uint16_t* d = dst + (std::size_t)j * stride;
      if (NV == 2) {  // 32 outputs: one conversion, one store
        const vf lo = activate_fast(loadu(s), act), hi = activate_fast(loadu(s + 16), act);
        _mm512_storeu_si512(d, (__m512i)_mm512_cvtne2ps_pbh((__m512)hi, (__m512)lo));
      } else {
        _mm256_storeu_si256((__m256i*)d, bf16x16(activate_fast(loadu(s), act)));
      }
    }
  }

  // The last layer's outputs of the n LR pixels (Y, X ..) (tmp rows from t, s.ld floats apart) to the HR pixels. Where
  // the block holds every output, HR row i of 16 LR pixels is 16 r C consecutive floats: r C vectors, each gathered
  // from the tmp rows (P_.gather: the indices); else pixel by pixel.
  void store_run(int Y, int X, const float* t, int n, const Sums& s, const Layer& ly) {
    const int r = d_.scale, C = d_.in_channels, W = d_.width, rc = r * C;
    if (s.o0 != 0 || s.nbv * 16 < ly.cout || s.ld != P_.gather_ld) {
      for (int p = 0; p < n; ++p) store_shuffled(Y, X + p, t + (std::size_t)p * s.ld, s.o0, s.nbv, ly);
      return;
    }
    for (int p = 0; p < n; p += 16) {
      const int m = std::min(16, n - p);
      float* base = out_ + ((std::size_t)r * Y * r * W + (std::size_t)r * (X + p)) * C;
      const float* tp = t + (std::size_t)p * s.ld;
      for (int i = 0; i < r; ++i)
        for (int v = 0; v < rc && 16 * v < m * rc; ++v) {
          const int left = m * rc - 16 * v;
          const __mmask16 k = (__mmask16)(left >= 16 ? 0xffffu : (1u << left) - 1);
          const __m512i idx = _mm512_loadu_si512(P_.gather.data() + (std::size_t)(i * rc + v) * 16);
          const __m512 g = _mm512_mask_i32gather_ps(_mm512_setzero_ps(), k, idx, tp, 4);
          _mm512_mask_storeu_ps(base + (std::size_t)i * r * W * C + 16 * v, k, g);
        }
    }
  }

  // The last layer's outputs o0 .. o0 + 16 nbv of LR pixel (Y, X) (tmp row t, with the bias), one by one to their HR
  // pixels: the blocks that do not hold every output (store_run gathers the others).
  void store_shuffled(int Y, int X, const float* t, int o0, int nbv, const Layer& ly) {
    const int r = d_.scale, C = d_.in_channels, W = d_.width;
    float* base = out_ + ((std::size_t)r * Y * r * W + (std::size_t)r * X) * C;
    const int oe = std::min(ly.cout, o0 + 16 * nbv);
    for (int o = o0; o < oe; ++o) base[P_.shuffle[o]] = t[o - o0];
  }

 private:
  const Plan& P_;
  const NetDesc& d_;
  const float* img_;
  float* out_;
  int vy0_, vy1_, vx0_, vx1_;
  int x0_ = 0, x1_ = 0, G_ = 0, Wp_ = 0, wi_ = 0;
  float* tmp_ = nullptr;
  uint16_t *inb_ = nullptr, *col_ = nullptr;
};


}  // namespace

extern "C" int espcn_infer_has_amx() { return amx_ok(); }

int espcn_forward_bf16(const NetDesc* net, const float* packed, const float* x, const int32_t* valid, float* out,
                       const Schedule& schedule) {
  if (!amx_ok()) return 2;
  Plan plan;
  if (!plan.build(net, packed)) return 1;
  const int B = net->batch, H = net->height, W = net->width, C = net->in_channels, r = net->scale;
  const int T = std::max(1, net->num_threads);
  const int ns = (W + kStripMax - 1) / kStripMax;
  // bands: about 4 items per thread in all, bands of >= 32 rows, a multiple of the threads where that is free
  int nb = std::max(1, std::min(H / 32, (4 * T + B * ns - 1) / (B * ns)));
  if ((B * ns * nb) % T != 0 && nb + 1 <= H / 32) ++nb;
  const int n = B * ns * nb;
  run_tasks(n, T, schedule, [&](int i) {
    const int b = i / (ns * nb), band = i / ns % nb, strip = i % ns;
    const int ys = (int)((long)H * band / nb), ye = (int)((long)H * (band + 1) / nb);
    const int x0 = (int)((long)W * strip / ns), x1 = (int)((long)W * (strip + 1) / ns);
    Item item(plan, x + (std::size_t)b * H * W * C, valid + 4 * b, out + (std::size_t)b * H * W * C * r * r);
    item.run(ys, ye, x0, x1);
  });
  return 0;
}

#else  // no AMX in this build

extern "C" int espcn_infer_has_amx() { return 0; }

int espcn_forward_bf16(const NetDesc*, const float*, const float*, const int32_t*, float*, const Schedule&) {
  return 2;
}

#endif
