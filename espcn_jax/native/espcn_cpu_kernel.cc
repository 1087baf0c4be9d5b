// ESPCN forward pass on the CPU: every layer fused, row by row, in cache. Built by setup.py once per instruction-set
// variant (-march=x86-64-v4, v3, ...; the best one the CPU runs is loaded), so the vectors are as wide as the
// variant's: 16 floats with AVX-512, 8 with AVX2, 4 otherwise.
//
// The net: L convolutions (odd k x k, SAME zero padding, NHWC), an activation after every layer but the last, and
// the periodic shuffle (depth-to-space, "DCR": channel (i*r + j)*C + c -> pixel (r*y + i, r*x + j), colour c) on
// the last. `valid` (y0, y1, x0, x1) per image zeroes the input and every hidden activation outside that rectangle,
// exactly as espcn_jax.inference.forward does (exact bucket padding and tiles).
//
// Schedule: work items of (image, band of output rows), claimed in turn by the calling thread and tasks on XLA's
// intra-op thread pool; an item computes its band alone. A layer's output row is computed when the next
// layer first needs it (demand-driven), into a ring of k_next rows, so each activation row is computed once per
// band and all live data is a few rows per layer (in cache, though the 64-plane ring of a 640-wide frame is ~2 MB:
// L2 plus L3 on most CPUs). Rows are channel-planar; a row is computed in
// blocks of NO output channels x NP vectors of VL pixels held in registers (direct convolution, HWIO weights
// broadcast), so every vector lane does useful work whatever the channel counts (9 outputs at x3 included).
//
// Plain C++ with GCC vector extensions (no intrinsics): the same source vectorises for each -march; the blocks are
// in espcn_cpu_blocks.h.

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <utility>
#include <vector>

#include "espcn_cpu_blocks.h"
#include "espcn_cpu_kernel.h"
#include "espcn_cpu_tasks.h"

namespace {

struct Layer {
  int k, rad, cin, cout;
  const float* w;     // [k][k][cin][cout] (HWIO)
  const float* bias;  // [cout]
  std::vector<int> chunks;
  int wino_m = 0;           // 4: computed by Winograd F(4x4, 3x3), 4 output rows at a time; 0: direct
  std::vector<float> wino;  // its weights [36][cin][cout]
};

constexpr int kRingExtra = 6;
constexpr int kHrBlock = 4 * kWinoTB;  // pixels of a block of Winograd tiles

#if ESPCN_HAVE_SHUFFLE
// Interleaving K streams of floats (out[K*p + s] = stream s [p], the depth-to-space of one HR row): output vector v
// of K (pixels p0 .. p0+VL-1 of every stream) = a chain of K - 1 two-vector shuffles of the K stream vectors; idx[v]
// holds its masks. Step k (1 .. K-1) takes lane m from stream k where output lane m belongs to it, keeps the lanes
// chosen before (stream 0 in step 1), and takes anything for lanes of later streams.
constexpr int kMaxHrK = 4;  // up to 4 streams: luma nets at x2, x3, x4 (RGB nets keep one store per value)
struct HrShuffle {
  std::vector<vi> idx;  // [K][kMaxHrK - 1]
  HrShuffle() = default;
  explicit HrShuffle(int K) : idx((std::size_t)K * (kMaxHrK - 1)) {
    for (int v = 0; v < K; ++v)
      for (int k = 1; k < K; ++k) {
        vi& mask = idx[(std::size_t)v * (kMaxHrK - 1) + k - 1];
        for (int m = 0; m < VL; ++m) {
          const int g = v * VL + m, p = g / K, s = g % K;
          mask[m] = s == k ? VL + p : (s < k ? (k == 1 ? p : m) : 0);
        }
      }
  }
};
#else
constexpr int kMaxHrK = 0;
struct HrShuffle {
  std::vector<int> idx;
  HrShuffle() = default;
  explicit HrShuffle(int) {}
};
#endif
constexpr int kSlack = 4 * kMaxNP * VL + 16;  // a block may read/compute past the row's end

// One thread's work: output rows [ys, ye) of one image.
class Band {
 public:
  Band(const NetDesc& net, const std::vector<Layer>& layers, const float* img, const int32_t* valid, float* out)
      : net_(net), layers_(layers), img_(img), out_(out), L_((int)layers.size()) {
    vy0_ = valid[0], vy1_ = valid[1], vx0_ = valid[2], vx1_ = valid[3];
    // ring l holds the input rows of layer l (ring 0: the image): k_l rows of cin planes
    for (int l = 0; l < L_; ++l) {
      pad_.push_back(layers[l].rad);
      plane_.push_back((std::size_t)net.width + 2 * layers[l].rad + kSlack);
      // k + 6 rows: a Winograd layer writes 4 output rows at a time (up to 3 ahead of the need) and a Winograd
      // consumer reads k + 3 rows
      rings_.emplace_back((std::size_t)(layers[l].k + kRingExtra) * layers[l].cin * plane_[l], 0.0f);
    }
    done_.assign(L_, 0);
    pre_.assign(L_, -(1 << 30));
    tmp_.resize((std::size_t)kMaxNO * kMaxNP * VL * 2);
    int wcin = 0;
    for (const Layer& ly : layers) wcin = std::max(wcin, ly.wino.empty() ? 0 : ly.cin);
    vbuf_.resize((std::size_t)36 * vstride(wcin));
    mbuf_.resize((std::size_t)36 * kWinoNO * kWinoTB);
    const int r = net.scale, C = net.in_channels;
    if (layers[L_ - 1].wino_m == 4 && r * C <= kMaxHrK && r * C >= 2) {
      hr_ = HrShuffle(r * C);
      hbuf_.resize((std::size_t)layers[L_ - 1].cout * 4 * kHrBlock);
    }
    for (int ch = 0; ch < layers[L_ - 1].cout; ++ch) {  // depth-to-space offsets of the last layer's channels
      int c = ch % C, ij = ch / C, i = ij / r, j = ij % r;
      shuffle_.push_back(((std::size_t)i * r * net.width + j) * C + c);
    }
  }

  void run(int ys, int ye) {
    int reach = 0;
    for (int l = L_ - 1; l >= 0; --l) {
      reach += layers_[l].rad;
      done_[l] = ys - reach;  // the first input row of layer l this band needs
    }
    ye_ = ye;
    const Layer& last = layers_[L_ - 1];
    for (int y = ys; y < ye; ++y) {
      if (last.wino_m == 4) {  // 4 rows at a time (rows >= ye are left to the next band)
        if (y > pre_[L_ - 1]) {
          ensure(L_ - 1, y + 4);
          compute_quad(L_ - 1, y);
          pre_[L_ - 1] = y + 3;
        }
      } else {
        ensure(L_ - 1, y + last.rad);
        compute_row(L_ - 1, y);
      }
    }
  }

 private:
  float* slot(int l, int row) {
    int k = layers_[l].k + kRingExtra;
    return rings_[l].data() + (std::size_t)(((row % k) + k) % k) * layers_[l].cin * plane_[l];
  }

  // Ring l (the input of layer l) holds rows through `row`, computing them in order.
  void ensure(int l, int row) {
    while (done_[l] <= row) {
      const int j = done_[l], W = net_.width, cin = layers_[l].cin;
      float* dst = slot(l, j);
      const bool inside = j >= vy0_ && j < vy1_;
      if (l > 0 && inside && !layers_[l - 1].wino.empty()) {
        if (j > pre_[l - 1]) {  // rows j .. j+3 together; the others are then ready when asked for
          ensure(l - 1, j + 4);
          compute_quad(l - 1, j);
          pre_[l - 1] = j + 3;
        }
      } else if (l > 0 && inside) {
        ensure(l - 1, j + layers_[l - 1].rad);
        compute_row(l - 1, j);
      } else {
        for (int c = 0; c < cin; ++c) std::memset(dst + c * plane_[l] + pad_[l], 0, (std::size_t)W * sizeof(float));
        if (l == 0 && inside) {  // deinterleave the image row (H, W, C) into planes, zero outside [vx0, vx1)
          const float* src = img_ + (std::size_t)j * W * cin;
          for (int c = 0; c < cin; ++c) {
            float* d = dst + c * plane_[l] + pad_[l];
            for (int x = vx0_; x < vx1_; ++x) d[x] = src[(std::size_t)x * cin + c];
          }
        }
      }
      ++done_[l];
    }
  }

#if ESPCN_HAVE_SHUFFLE
  // 3x3 layer l by Winograd F(4x4, 3x3): output rows j .. j+3 from input rows j-1 .. j+4, into ring l+1 or (last
  // layer) shuffled into the HR output. Tile t: input columns 4t .. 4t+5 (padded), outputs 4t .. 4t+3; lanes are
  // tiles (phases of 4 loads).
  void compute_quad(int l, int j) {
    const Layer& ly = layers_[l];
    const int W = net_.width, cin = ly.cin, cout = ly.cout, T = (W + 3) / 4;
    const std::size_t plane = plane_[l];
    const float* rows[6];
    for (int i = 0; i < 6; ++i) rows[i] = slot(l, j - 1 + i);
    const bool last = l == L_ - 1;
    const std::size_t dplane = last ? 0 : plane_[l + 1];
    float* dst[4] = {};
    for (int dy = 0; dy < 4 && !last; ++dy) dst[dy] = slot(l + 1, j + dy) + pad_[l + 1];
    float* V = vbuf_.data();
    float* M = mbuf_.data();
    const std::size_t xs = vstride(cin);
    for (int t0 = 0; t0 < T; t0 += kWinoTB) {
      // The last block of a row may need fewer tile vectors (nq < kWinoNP): narrow pictures and tiles waste less.
      const int nq = std::min(kWinoNP, (T - t0 + VL - 1) / VL);
      const std::size_t ms = (std::size_t)nq * VL;  // floats per output channel in M
      // V[a*6+b][ic][t] = (B^T d B)[a][b] of tile t0 + t
      for (int ic = 0; ic < cin; ++ic) {
        for (int q = 0; q < nq; ++q) {
          vf u[6][6];
          for (int i = 0; i < 6; ++i) {
            vf d[6];
            tile_columns(rows[i] + ic * plane + 4 * (t0 + q * VL), d);
            bt6(d, u[i]);
          }
          float* v = V + (std::size_t)ic * kWinoTB + q * VL;
          for (int b = 0; b < 6; ++b) {
            vf col[6] = {u[0][b], u[1][b], u[2][b], u[3][b], u[4][b], u[5][b]}, r[6];
            bt6(col, r);
            for (int a = 0; a < 6; ++a) storeu(v + (a * 6 + b) * xs, r[a]);
          }
        }
      }
      int o0 = 0;
      for (int no : ly.chunks) {
        BlockFn fn = wino_block_fn(no, nq);
        for (int xi = 0; xi < 36; ++xi) {
          const float* vr = V + (std::size_t)xi * xs;
          fn(&vr, kWinoTB, 1, cin, 0, ly.wino.data() + (std::size_t)xi * cin * cout + o0, cout, zeros_, kActLinear,
             M + (std::size_t)xi * no * ms, ms);
        }
        // Y = A^T M A per tile, + bias, activation; lanes are tiles: zip the 4 column phases into pixels
        for (int o = 0; o < no; ++o) {
          const vf bias = splat(ly.bias[o0 + o]);
          for (int q = 0; q < nq; ++q) {
            const int x = 4 * (t0 + q * VL);
            if (x >= W) break;
            vf s[6][4];
            for (int a = 0; a < 6; ++a) {
              vf m[6];
              for (int b = 0; b < 6; ++b) m[b] = loadu(M + ((std::size_t)(a * 6 + b) * no + o) * ms + q * VL);
              at6(m, s[a]);
            }
            vf y[4][4];  // y[row][column phase]
            for (int c = 0; c < 4; ++c) {
              vf col[6] = {s[0][c], s[1][c], s[2][c], s[3][c], s[4][c], s[5][c]}, r[4];
              at6(col, r);
              for (int rr = 0; rr < 4; ++rr) y[rr][c] = activate(r[rr] + bias, last ? kActLinear : net_.activation);
            }
            const int n = std::min(4 * VL, W - x);
            if (last && !hr_.idx.empty()) {  // pixel order into hbuf_, interleaved into the HR rows below
              for (int rr = 0; rr < 4; ++rr)
                zip_phases(y[rr], hbuf_.data() + ((std::size_t)(o0 + o) * 4 + rr) * kHrBlock + q * 4 * VL);
              continue;
            }
            if (last) {  // depth-to-space: channel (i*r + jj)*C + cc of LR pixel (row, 4t + c) -> HR, one by one
              const int r = net_.scale, C = net_.in_channels;
              for (int rr = 0; rr < 4 && j + rr < ye_; ++rr) {
                float* base = out_ + (std::size_t)r * (j + rr) * r * W * C + shuffle_[o0 + o];
                for (int c = 0; c < 4; ++c) {
                  float v[VL];
                  storeu(v, y[rr][c]);
                  for (int ti = 0; ti < VL && x + 4 * ti + c < W; ++ti) base[(std::size_t)r * (x + 4 * ti + c) * C] = v[ti];
                }
              }
              continue;
            }
            for (int rr = 0; rr < 4; ++rr) {
              float* d = dst[rr] + (o0 + o) * dplane + x;
              float t[4 * VL];
              zip_phases(y[rr], n == 4 * VL ? d : t);
              if (n < 4 * VL) std::memcpy(d, t, n * sizeof(float));
            }
          }
        }
        o0 += no;
      }
      if (last && !hr_.idx.empty()) write_hr(j, 4 * t0, std::min(nq * 4 * VL, W - 4 * t0));
    }
    if (!last) zero_outside(dst, 4, j, cout, dplane);
  }

  // Depth-to-space of the last layer's output rows j .. j+3, pixels x0 .. x0+n-1, from hbuf_ (channel-planar, pixel
  // order): HR row r*(j+rr) + i is K = r*C streams (channels i*K + s) interleaved, out[K*p + s] = stream s [p]; K
  // vectors of a stream give K output vectors, each by a chain of K - 1 two-vector shuffles (hr_.idx).
  void write_hr(int j, int x0, int n) {
    const int r = net_.scale, C = net_.in_channels, K = r * C, W = net_.width;
    for (int rr = 0; rr < 4 && j + rr < ye_; ++rr) {
      for (int i = 0; i < r; ++i) {
        float* row = out_ + ((std::size_t)(r * (j + rr) + i) * r * W + (std::size_t)r * x0) * C;
        const float* src[kMaxHrK];
        for (int s = 0; s < K; ++s) src[s] = hbuf_.data() + ((std::size_t)(i * K + s) * 4 + rr) * kHrBlock;
        int p = 0;
        for (; p + VL <= n; p += VL) {
          vf st[kMaxHrK];
          for (int s = 0; s < K; ++s) st[s] = loadu(src[s] + p);
          for (int v = 0; v < K; ++v) {
            const vi* idx = hr_.idx.data() + v * (kMaxHrK - 1);
            vf acc = __builtin_shuffle(st[0], st[1], idx[0]);
            for (int s = 2; s < K; ++s) acc = __builtin_shuffle(acc, st[s], idx[s - 1]);
            storeu(row + (std::size_t)K * p + v * VL, acc);
          }
        }
        for (; p < n; ++p)
          for (int s = 0; s < K; ++s) row[(std::size_t)K * p + s] = src[s][p];
      }
    }
  }

  // Rows of a Winograd group outside [vy0, vy1) become zero rows, and columns outside [vx0, vx1) zeros.
  void zero_outside(float* const* dst, int m, int j, int cout, std::size_t dplane) {
    const int W = net_.width;
    for (int dy = 0; dy < m; ++dy) {
      const int jj = j + dy;
      const bool row_in = jj >= vy0_ && jj < vy1_;
      for (int o = 0; o < cout; ++o) {
        float* d = dst[dy] + o * dplane;
        if (!row_in) {
          std::memset(d, 0, (std::size_t)W * sizeof(float));
        } else if (vx0_ > 0 || vx1_ < W) {
          std::memset(d, 0, (std::size_t)vx0_ * sizeof(float));
          std::memset(d + vx1_, 0, (std::size_t)(W - vx1_) * sizeof(float));
        }
      }
    }
  }

#else
  void compute_quad(int, int) {}
#endif

  // Layer l's output row j: into ring l+1 (activated, zero outside [vx0, vx1)), or shuffled into the HR output.
  void compute_row(int l, int j) {
    const Layer& ly = layers_[l];
    const float* rows[16];
    for (int ky = 0; ky < ly.k; ++ky) rows[ky] = slot(l, j - ly.rad + ky);
    const bool last = l == L_ - 1;
    const int W = net_.width, r = net_.scale, C = net_.in_channels;
    const int act = last ? kActLinear : net_.activation;
    float* dst = last ? nullptr : slot(l + 1, j);
    const std::size_t dplane = last ? 0 : plane_[l + 1];
    const int dpad = last ? 0 : pad_[l + 1];
    int o0 = 0;
    for (int no : ly.chunks) {
      const int np = block_vectors(no), bw = np * VL;
      BlockFn fn = block_fn(no);
      for (int x = 0; x < W; x += bw) {
        const int n = std::min(bw, W - x);
        if (last) {
          fn(rows, plane_[l], ly.k, ly.cin, x, ly.w + o0, ly.cout, ly.bias + o0, act, tmp_.data(), bw);
          float* base = out_ + ((std::size_t)r * j * r * W + (std::size_t)r * x) * C;
          const std::size_t step = (std::size_t)r * C;
          for (int o = 0; o < no; ++o) {
            const float* t = tmp_.data() + (std::size_t)o * bw;
            float* d = base + shuffle_[o0 + o];
            for (int p = 0; p < n; ++p) d[p * step] = t[p];
          }
        } else {  // straight into the planes; a block past the row's end writes into the plane's slack, which the
                  // next layer reads as its zero padding: zeroed again
          float* d = dst + o0 * dplane + dpad;
          fn(rows, plane_[l], ly.k, ly.cin, x, ly.w + o0, ly.cout, ly.bias + o0, act, d + x, dplane);
          if (n < bw)
            for (int o = 0; o < no; ++o) std::memset(d + o * dplane + W, 0, (std::size_t)(bw - n) * sizeof(float));
        }
      }
      o0 += no;
    }
    if (!last && (vx0_ > 0 || vx1_ < W)) {
      for (int o = 0; o < ly.cout; ++o) {
        float* d = dst + o * dplane + dpad;
        std::memset(d, 0, (std::size_t)vx0_ * sizeof(float));
        std::memset(d + vx1_, 0, (std::size_t)(W - vx1_) * sizeof(float));
      }
    }
  }

  const NetDesc& net_;
  const std::vector<Layer>& layers_;
  const float* img_;
  float* out_;
  int L_;
  int vy0_, vy1_, vx0_, vx1_;
  int ye_ = 0;  // the band's end row (the last layer writes no row at or past it)
  std::vector<std::vector<float>> rings_;
  std::vector<std::size_t> plane_;
  std::vector<int> pad_;
  std::vector<int> done_;
  std::vector<int> pre_;    // per layer: the last output row a Winograd group computed (ahead of the need)
  std::vector<float> tmp_;
  std::vector<float> vbuf_;  // Winograd: transformed input tiles [36][cin][TB]
  std::vector<float> mbuf_;  // Winograd: products [36][NO][TB]
  const float zeros_[kMaxNO] = {};
  std::vector<std::size_t> shuffle_;
  HrShuffle hr_;              // the last layer's depth-to-space by shuffles (empty: one store per value)
  std::vector<float> hbuf_;  // its input: [cout][4 rows][kHrBlock] pixels of the tile block
};

}  // namespace

extern "C" const char* espcn_isa() { return ESPCN_ISA; }

// 1 when the Winograd F(4x4, 3x3) path is compiled in (it needs GCC's vector shuffles: a clang build has 0 and runs
// every 3x3 layer as a direct convolution; Python says so once when it loads the library).
extern "C" int espcn_has_winograd() { return ESPCN_HAVE_SHUFFLE; }

int espcn_forward(const NetDesc* net, const float* packed, const float* x, const int32_t* valid, float* out,
                  const Schedule& schedule) {
  std::vector<Layer> layers;
  const float* p = packed;
  for (int l = 0; l < net->num_layers; ++l) {
    Layer ly;
    ly.k = net->kernel_sizes[l];
    ly.rad = ly.k / 2;
    ly.cin = net->channels[l];
    ly.cout = net->channels[l + 1];
    if (ly.k > 15) return 1;
    ly.w = p;
    p += (std::size_t)ly.k * ly.k * ly.cin * ly.cout;
    ly.bias = p;
    p += ly.cout;
    ly.chunks = chunks(ly.cout);
    if (ESPCN_HAVE_SHUFFLE && net->winograd && ly.k == 3 && ly.cin >= 8) {
      ly.wino_m = 4;
      ly.wino = winograd_weights(ly.w, ly.cin, ly.cout);
      ly.chunks = chunks(ly.cout, kWinoNO);
    }
    layers.push_back(std::move(ly));
  }
  const int B = net->batch, H = net->height, W = net->width, C = net->in_channels, r = net->scale;
  int T = std::max(1, net->num_threads);
  // Work items: (image, band of rows). Few images: split each into bands of >= 16 rows, one per thread.
  int bands = B >= T ? 1 : std::max(1, std::min((T + B - 1) / B, H / 16));
  std::vector<std::pair<int, int>> items;
  for (int b = 0; b < B; ++b)
    for (int s = 0; s < bands; ++s) items.emplace_back(b, s);
  // Items claimed in turn by the calling thread and tasks on XLA's pool (threads that live between calls).
  run_tasks((int)items.size(), T, schedule, [&](int i) {
    int b = items[i].first, s = items[i].second;
    int ys = (int)((long)H * s / bands), ye = (int)((long)H * (s + 1) / bands);
    Band band(*net, layers, x + (std::size_t)b * H * W * C, valid + 4 * b, out + (std::size_t)b * H * W * C * r * r);
    band.run(ys, ye);
  });
  return 0;
}
