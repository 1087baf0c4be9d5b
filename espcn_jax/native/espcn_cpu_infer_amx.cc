// ESPCN inference with the layers of >= 8 input channels on AMX tiles (bf16 operands, float32 sums); compiled in
// the "avx512_amx" variant, a stub elsewhere. Same net, `valid` rectangles and periodic shuffle as espcn_forward
// (espcn_cpu_kernel.cc); the first layer (1 or 3 inputs) stays float32.
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

int round16(int n) { return (n + 15) / 16 * 16; }

struct Layer {
  int k, r, cin, cs_in, cout, cs_out;
  std::vector<float> w;       // first layer: [k * k][cin][cs_out] float32
  std::vector<uint32_t> wp;   // AMX layers: [k * k][cs_in / 2][cs_out] bf16 pairs (input channels 2i, 2i + 1)
  std::vector<float> bias;    // [cs_out], zero beyond cout
};

uint16_t to_bf16(float f) {  // round to nearest even (as vcvtneps2bf16)
  uint32_t u;
  std::memcpy(&u, &f, 4);
  if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x40);
  return (uint16_t)((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
}

struct Plan {
  const NetDesc* net;
  int L, act;
  std::vector<Layer> layers;
  std::vector<int> R;  // R[l]: how far beyond the strip layer l's output is needed
  std::vector<std::size_t> shuffle;  // the last layer's channel -> offset in the HR output from the pixel's corner

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
      if (l == 0) {
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
      ly.bias.assign(ly.cs_out, 0.f);
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
  _tile_loadconfig(&cfg);
}

// tanh as espcn_cpu_blocks.h's vtanh (the same clamped rational), the division by a reciprocal estimate and one
// Newton step (relative error ~1e-7: far below the bf16 rounding that follows); relu and linear as `activate`.
inline vf activate_fast(vf x, int activation) {
  if (activation != kActTanh) return activate(x, activation);
  vf p, q;
  tanh_pq(x, p, q);
  vf r = (vf)_mm512_rcp14_ps((__m512)q);
  r = r * (2.0f - q * r);
  const vf t = p * r;
  const vf ax = (vf)_mm512_abs_ps((__m512)x);
  return ax < 0.0004f ? x : t;
}

inline __m256i bf16x16(vf v) { return (__m256i)_mm512_cvtneps_pbh((__m512)v); }

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
    static thread_local std::vector<std::vector<uint16_t>> acts;
    static thread_local std::vector<float> inbuf, tmp;
    acts.resize(L - 1);
    for (int l = 0; l < L - 1; ++l) {
      const std::size_t n = ((std::size_t)(kChunk + 2 * P_.R[l]) * Wp_ + kSlack) * P_.layers[l].cs_out;
      if (acts[l].size() < n) acts[l].assign(n, 0);  // zeros: the slack is read by outputs that are dropped
    }
    const Layer& l0 = P_.layers[0];
    wi_ = Wp_ + 2 * l0.r + kNP0;
    const std::size_t nin = (std::size_t)(kChunk + 2 * P_.R[0] + 2 * l0.r) * l0.cin * wi_;
    if (inbuf.size() < nin) inbuf.resize(nin);
    tmp.resize(64 * 32);
    tmp_ = tmp.data();
    for (int y = ys; y < ye; y += kChunk) {
      const int c = std::min(kChunk, ye - y);
      const bool first = y == ys;
      for (int l = 0; l < L; ++l) {
        const int a = first ? 0 : 2 * P_.R[l], b = c + 2 * P_.R[l];  // output rows of the chunk (buffer rows)
        uint16_t* dst = l + 1 < L ? acts[l].data() : nullptr;
        if (l == 0)
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
            const vf s = (vf){} + src[p];
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
  void amx_layer(int l, int y, int a, int b, const uint16_t* src, uint16_t* dst) {
    const Layer& ly = P_.layers[l];
    const bool last = dst == nullptr;
    const int k = ly.k, cs = ly.cs_in, kc = cs % 32 == 0 ? 32 : 16, R = P_.R[l];
    int offs[15 * 15];
    for (int ky = 0; ky < k; ++ky)
      for (int kx = 0; kx < k; ++kx) offs[ky * k + kx] = ky * Wp_ + kx - ly.r;
    // the outputs that count: columns G - R .. Wp - G + R of rows a .. b - 1
    const int q_begin = a * Wp_ + (G_ - R), q_end = (b - 1) * Wp_ + Wp_ - G_ + R;
    const int nvec = ly.cs_out / 16;
    const int nb = nvec >= 2 ? 2 : 1, mb = nb == 2 ? 2 : 3, step = 16 * mb;
    tile_config_for(kc, nb);
    for (int v0 = 0; v0 < nvec; v0 += nb) {
      const int nbv = std::min(nb, nvec - v0);
      for (int q0 = q_begin; q0 < q_end; q0 += step) {
        if (nb == 2 && nbv == 2)
          amx_block<2, 2>(src, cs, kc, offs, k * k, ly.wp.data(), ly.cs_out, q0, v0 * 16, tmp_);
        else if (nb == 2)  // an odd last vector of outputs with the 2-output tile config (B in tile 7)
          amx_block<2, 1, 32>(src, cs, kc, offs, k * k, ly.wp.data(), ly.cs_out, q0, v0 * 16, tmp_);
        else
          amx_block<3, 1>(src, cs, kc, offs, k * k, ly.wp.data(), ly.cs_out, q0, v0 * 16, tmp_);
        const int ld = nb * 16;
        int i = q0 / Wp_, gx = q0 % Wp_;
        const int pe = std::min(step, q_end - q0);
        for (int p = 0; p < pe; ++p, ++gx) {
          if (gx == Wp_) gx = 0, ++i;
          const int Y = y - R + i, X = x0_ - G_ + gx;
          if (last) {
            if (gx >= G_ && gx < Wp_ - G_) store_shuffled(Y, X, tmp_ + p * ld, v0 * 16, nbv, ly);
            continue;
          }
          const bool in = inside(Y, X);
          uint16_t* d = dst + (std::size_t)(q0 + p) * ly.cs_out + v0 * 16;
          for (int n = 0; n < nbv; ++n) {
            const vf s = loadu(tmp_ + p * ld + n * 16) + loadu(ly.bias.data() + v0 * 16 + n * 16);
            const vf v = in ? activate_fast(s, P_.act) : (vf){};
            _mm256_storeu_si256((__m256i*)(d + n * 16), bf16x16(v));
          }
        }
      }
    }
  }

  // The last layer's outputs of LR pixel (Y, X) (tmp row t: outputs o0 .. o0 + 16 nbv) + bias, to the HR pixels.
  void store_shuffled(int Y, int X, const float* t, int o0, int nbv, const Layer& ly) {
    const int r = d_.scale, C = d_.in_channels, W = d_.width;
    float* base = out_ + ((std::size_t)r * Y * r * W + (std::size_t)r * X) * C;
    if (o0 == 0 && nbv * 16 >= ly.cout) {  // all outputs here: HR row i takes outputs i r C .. (i + 1) r C - 1 in order
      const int n = r * C;
      const __mmask16 m = (__mmask16)((1u << n) - 1);
      for (int i = 0; i < r; ++i) {
        const __m512 v =
            _mm512_add_ps(_mm512_maskz_loadu_ps(m, t + i * n), _mm512_maskz_loadu_ps(m, ly.bias.data() + i * n));
        _mm512_mask_storeu_ps(base + (std::size_t)i * r * W * C, m, v);
      }
      return;
    }
    const int oe = std::min(ly.cout, o0 + 16 * nbv);
    for (int o = o0; o < oe; ++o) base[P_.shuffle[o]] = t[o - o0] + ly.bias[o];
  }

 private:
  const Plan& P_;
  const NetDesc& d_;
  const float* img_;
  float* out_;
  int vy0_, vy1_, vx0_, vx1_;
  int x0_ = 0, x1_ = 0, G_ = 0, Wp_ = 0, wi_ = 0;
  float* tmp_ = nullptr;
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
