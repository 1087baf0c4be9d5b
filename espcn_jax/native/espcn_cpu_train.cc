// ESPCN training on the CPU: the forward pass that keeps the hidden activations, and the backward pass to the weight
// gradients. Called from JAX as the two halves of a custom VJP (espcn_jax/native/training.py).
//
// Why: a training batch is small (e.g. 16 patches of 17x17 LR pixels), and XLA:CPU runs each layer's forward,
// input-gradient and weight-gradient convolution as separate library calls at ~100-190 GFLOP/s on 2 cores. Here each
// thread takes whole images of the batch and runs all layers for one image while its activations (a 19x19x64 image
// is 92 KB) stay in L2; the weight gradients are summed per thread, then over threads.
//
// Threads: the work is cut into chunks of images that the calling thread and tasks on XLA's intra-op thread pool
// claim in turn (so the kernels never compete with XLA's own threads for the cores).
//
// Layout: NHWC images with zero borders (pad = k/2 of the layer that reads them) and the channels padded to a
// multiple of 16 floats, so output channels are whole vectors. Two register-blocked microkernels:
//   conv_px:  NP pixels x NV vectors of output channels; per (tap, input channel) NV weight loads and NP broadcasts.
//             Used for the forward convolutions and for the input gradients (the flipped, transposed kernel).
//   wgrad_px: NI (tap, input channel) pairs x NV vectors of output channels, summed over all pixels of an image.
// Plain C++ with GCC vector extensions (espcn_cpu_blocks.h), built for the CPU at first use like the forward kernel.

#include "espcn_cpu_train.h"

#include <algorithm>
#include <array>
#include <atomic>
#include <cstdint>
#include <cstring>
#include <memory>
#include <thread>
#include <utility>
#include <vector>

#include "espcn_cpu_blocks.h"

namespace {

constexpr int kCS = 16;  // channel counts are padded to a multiple of this (any of the vector widths divides it)
inline int round_up(int c, int m) { return (c + m - 1) / m * m; }
constexpr int kMaxNV = 4;  // output vectors per block

// A padded NHWC image: pixel (y, x), -pad <= y < H + pad, starts at data + (y + pad) * pitch + (x + pad) * cs.
struct Img {
  float* data;
  int h, w, pad, cs;
  std::size_t pitch() const { return (std::size_t)(w + 2 * pad) * cs; }
  std::size_t size() const { return (std::size_t)(h + 2 * pad) * pitch(); }
  float* at(int y, int x) const { return data + (std::size_t)(y + pad) * pitch() + (std::size_t)(x + pad) * cs; }
};

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
          vf s = (vf){} + ip[(std::size_t)p * in_cs + ci];
#pragma GCC unroll 4
          for (int v = 0; v < NV; ++v) acc[p][v] += s * wv[v];
        }
      }
    }
#pragma GCC unroll 24
  for (int p = 0; p < NP; ++p)
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) {
      vf r = epi == 0 ? activate(acc[p][v], act) : deriv(acc[p][v], loadu(sav + (std::size_t)p * sav_cs + v * VL), act);
      int n = nstore - v * VL;
      if (n >= VL)
        storeu(out + (std::size_t)p * out_cs + v * VL, r);
      else if (n > 0)
        store_part(out + (std::size_t)p * out_cs + v * VL, r, n);
    }
}

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
        vf s = (vf){} + ip[j];
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
WgradFn wgrad_fn(int nv, int ni) {
  static const std::array<WgradFn, kTable> t[kMaxNV] = {
      wgrad_table<1>(std::make_integer_sequence<int, kTable>()),
      wgrad_table<2>(std::make_integer_sequence<int, kTable>()),
      wgrad_table<3>(std::make_integer_sequence<int, kTable>()),
      wgrad_table<4>(std::make_integer_sequence<int, kTable>())};
  return t[nv - 1][ni];
}

// out(y, x)[0 .. cout) for the whole image = epilogue(conv(in, w) + bias); w is [k][k][cin][wstride], wstride a
// multiple of VL >= cout, bias has wstride floats. `sav` (epi 1): the saved activation, same geometry as out.
void conv_image(const Img& in, int k, int cin, const float* w, int wstride, const float* bias, int cout, int epi,
                int act, const Img* sav, const Img& out) {
  const int nvec = (cout + VL - 1) / VL;
  for (int g0 = 0; g0 < nvec; g0 += kMaxNV) {
    const int nv = std::min(kMaxNV, nvec - g0), npmax = max_block(nv);
    const int nb = (out.w + npmax - 1) / npmax;
    const int nstore = std::min(cout - g0 * VL, nv * VL);
    ConvFn fns[2] = {conv_fn(nv, out.w / nb), conv_fn(nv, out.w / nb + 1)};
    for (int y = 0; y < out.h; ++y)
      for (int b = 0; b < nb; ++b) {
        const int x0 = out.w * b / nb, np = out.w * (b + 1) / nb - x0;
        fns[np - out.w / nb](in.at(y - k / 2, x0 - k / 2), in.pitch(), in.cs, k, cin, w + g0 * VL, wstride,
                             bias + g0 * VL, epi, act, sav ? sav->at(y, x0) + g0 * VL : nullptr, sav ? sav->cs : 0,
                             out.at(y, x0) + g0 * VL, out.cs, nstore);
      }
  }
}

// dw[ky][kx][ci][0 .. coutv) += sum over pixels of in(y + ky - k/2, x + kx - k/2)[ci] * dz(y, x)[...]; db += sum dz.
void wgrad_image(const Img& in, int k, int cin, const Img& dz, int coutv, float* dw, float* db) {
  const int nvec = coutv / VL;
  for (int g0 = 0; g0 < nvec; g0 += kMaxNV) {
    const int nv = std::min(kMaxNV, nvec - g0), nimax = max_block(nv);
    if (cin == 1 && in.cs == 1) {  // runs of taps along x
      for (int ky = 0; ky < k; ++ky)
        for (int kx = 0; kx < k; kx += nimax) {
          const int ni = std::min(nimax, k - kx);
          wgrad_fn(nv, ni)(in, k, (std::size_t)ky * in.pitch() + kx, dz, g0, dw + (std::size_t)(ky * k + kx) * coutv,
                           coutv);
        }
    } else {  // runs of input channels within a tap
      const int nb = (cin + nimax - 1) / nimax;
      for (int ky = 0; ky < k; ++ky)
        for (int kx = 0; kx < k; ++kx)
          for (int b = 0; b < nb; ++b) {
            const int c0 = cin * b / nb, ni = cin * (b + 1) / nb - c0;
            wgrad_fn(nv, ni)(in, k, (std::size_t)ky * in.pitch() + (std::size_t)kx * in.cs + c0, dz, g0,
                             dw + ((std::size_t)(ky * k + kx) * cin + c0) * coutv, coutv);
          }
    }
  }
  for (int y = 0; y < dz.h; ++y)
    for (int x = 0; x < dz.w; ++x) {
      const float* d = dz.at(y, x);
      for (int v = 0; v < nvec; ++v) storeu(db + v * VL, loadu(db + v * VL) + loadu(d + v * VL));
    }
}

struct Net {
  int L, B, H, W, act, threads;
  std::vector<int> k, c;               // kernel sizes; channels[0 .. L]
  std::vector<int> cv;                 // round_up(c, kCS)
  std::vector<std::vector<float>> w, b, wt;  // [k][k][cin][cv_out], [cv_out], flipped [k][k][cout][cv_in]
  std::vector<float> zero_bias;        // the input gradients' "bias"
  std::vector<std::size_t> act_off;    // offset of hidden layer l's activations in the acts buffer
  std::size_t acts_size = 0;

  // `packed` null: geometry only. The forward pass reads w and b, the backward pass only wt: each pass repacks just
  // what it reads (this runs on every call, i.e. twice per training step).
  enum Use { kForward, kBackward };
  Net(const NetDesc* d, const float* packed, Use use = kForward)
      : L(d->num_layers), B(d->batch), H(d->height), W(d->width) {
    act = d->activation;
    threads = std::max(1, d->num_threads);
    for (int l = 0; l < L; ++l) k.push_back(d->kernel_sizes[l]);
    for (int l = 0; l <= L; ++l) c.push_back(d->channels[l]), cv.push_back(round_up(d->channels[l], kCS));
    zero_bias.assign(*std::max_element(cv.begin(), cv.end()), 0.f);
    for (int l = 0; l + 1 < L; ++l) {
      act_off.push_back(acts_size);
      const int p = k[l + 1] / 2;
      acts_size += (std::size_t)B * (H + 2 * p) * (W + 2 * p) * cv[l + 1];
    }
    if (!packed) return;
    const float* src = packed;
    for (int l = 0; l < L; ++l) {
      const int kk = k[l], ci = c[l], co = c[l + 1];
      const bool fwd = use == kForward;
      std::vector<float> wl(fwd ? (std::size_t)kk * kk * ci * cv[l + 1] : 0, 0.f), bl(fwd ? cv[l + 1] : 0, 0.f),
          wtl(fwd ? 0 : (std::size_t)kk * kk * co * cv[l], 0.f);
      for (int t = 0; t < kk * kk; ++t)
        for (int i = 0; i < ci; ++i)
          for (int o = 0; o < co; ++o) {
            const float v = src[((std::size_t)t * ci + i) * co + o];
            if (fwd)
              wl[((std::size_t)t * ci + i) * cv[l + 1] + o] = v;
            else
              wtl[((std::size_t)(kk * kk - 1 - t) * co + o) * cv[l] + i] = v;  // (ky, kx) -> (k-1-ky, k-1-kx)
          }
      src += (std::size_t)kk * kk * ci * co;
      if (fwd) std::copy(src, src + co, bl.begin());
      src += co;
      w.push_back(std::move(wl)), b.push_back(std::move(bl)), wt.push_back(std::move(wtl));
    }
  }

  Img hidden(float* acts, int l, int img) const {  // saved activation of layer l (< L - 1) for image img
    const int p = k[l + 1] / 2;
    Img im{nullptr, H, W, p, cv[l + 1]};
    im.data = acts + act_off[l] + (std::size_t)img * im.size();
    return im;
  }

  // The input image, zero-padded for the first layer (cs = C).
  void load_input(const float* x, int img, std::vector<float>& buf, Img& im) const {
    im = Img{nullptr, H, W, k[0] / 2, c[0]};
    buf.assign(im.size(), 0.f);
    im.data = buf.data();
    for (int y = 0; y < H; ++y)
      std::memcpy(im.at(y, 0), x + ((std::size_t)img * H + y) * W * c[0], sizeof(float) * W * c[0]);
  }
};

constexpr int kChunks = 8;  // the batch is cut into at most this many chunks of images (independent of threads)

// work(c) for c < n: on the calling thread and on up to threads - 1 scheduled tasks, each claiming chunks in turn.
// Returns when all n are done. A task that starts late finds nothing left and touches nothing but `Shared`.
void run_chunks(int n, int threads, const Schedule& schedule, std::function<void(int)> work) {
  struct Shared {
    std::atomic<int> next{0}, done{0};
    int n;
    std::function<void(int)> work;
  };
  auto s = std::make_shared<Shared>();
  s->n = n, s->work = std::move(work);
  auto loop = [](Shared& st) {
    for (int c; (c = st.next.fetch_add(1)) < st.n;) {
      st.work(c);
      st.done.fetch_add(1);
    }
  };
  if (schedule)
    for (int t = 1; t < std::min(threads, n); ++t) schedule([s, loop] { loop(*s); });
  loop(*s);
  while (s->done.load() < n) std::this_thread::yield();
}

bool supported(const NetDesc* d) {
  if (d->num_layers < 1 || d->num_layers > 16 || d->batch < 1 || d->height < 1 || d->width < 1) return false;
  for (int l = 0; l < d->num_layers; ++l)
    if (d->kernel_sizes[l] % 2 == 0 || d->kernel_sizes[l] > 15) return false;
  return true;
}

}  // namespace

extern "C" int64_t espcn_train_acts_size(const NetDesc* d) {
  if (!supported(d)) return -1;
  return (int64_t)Net(d, nullptr).acts_size;
}

int espcn_train_forward(const NetDesc* d, const float* packed, const float* x, float* y, float* acts,
                        const Schedule& schedule) {
  if (!supported(d)) return 1;
  const Net net(d, packed);
  const int L = net.L, cout = net.c[L], n = std::min(net.B, kChunks);
  run_chunks(n, net.threads, schedule, [&](int chunk) {
    const int i0 = net.B * chunk / n, i1 = net.B * (chunk + 1) / n;
    std::vector<float> xbuf;
    for (int i = i0; i < i1; ++i) {
      Img in;
      net.load_input(x, i, xbuf, in);
      for (int l = 0; l < L; ++l) {
        if (l + 1 < L) {
          Img out = net.hidden(acts, l, i);
          std::memset(out.data, 0, sizeof(float) * out.size());
          conv_image(in, net.k[l], net.c[l], net.w[l].data(), net.cv[l + 1], net.b[l].data(), net.cv[l + 1], 0,
                     net.act, nullptr, out);
          in = out;
        } else {
          Img out{y + (std::size_t)i * net.H * net.W * cout, net.H, net.W, 0, cout};
          conv_image(in, net.k[l], net.c[l], net.w[l].data(), net.cv[l + 1], net.b[l].data(), cout, 0, kActLinear,
                     nullptr, out);
        }
      }
    }
  });
  return 0;
}

int espcn_train_backward(const NetDesc* d, const float* packed, const float* x, const float* acts_c, const float* dy,
                         float* grads, const Schedule& schedule) {
  if (!supported(d)) return 1;
  const Net net(d, packed, Net::kBackward);
  const int L = net.L, n = std::min(net.B, kChunks);
  float* acts = const_cast<float*>(acts_c);  // only read
  // Per chunk: the weight / bias gradients of every layer ([k][k][cin][cv_out] and [cv_out]).
  std::vector<std::vector<std::vector<float>>> dw(n), db(n);
  run_chunks(n, net.threads, schedule, [&](int t) {
    const int i0 = net.B * t / n, i1 = net.B * (t + 1) / n;
    for (int l = 0; l < L; ++l) {
      dw[t].emplace_back((std::size_t)net.k[l] * net.k[l] * net.c[l] * net.cv[l + 1], 0.f);
      db[t].emplace_back(net.cv[l + 1], 0.f);
    }
    std::vector<float> xbuf, dzbuf[2];
    for (int i = i0; i < i1; ++i) {
      Img xin;
      net.load_input(x, i, xbuf, xin);
      // dz of the last layer: dy, zero-padded by k/2 for its input gradient
      Img dz{nullptr, net.H, net.W, net.k[L - 1] / 2, net.cv[L]};
      dzbuf[0].assign(dz.size(), 0.f);
      dz.data = dzbuf[0].data();
      const int cout = net.c[L];
      for (int y = 0; y < net.H; ++y)
        for (int xx = 0; xx < net.W; ++xx)
          std::memcpy(dz.at(y, xx), dy + (((std::size_t)i * net.H + y) * net.W + xx) * cout, sizeof(float) * cout);
      for (int l = L - 1; l >= 0; --l) {
        const Img in = l == 0 ? xin : net.hidden(acts, l - 1, i);
        wgrad_image(in, net.k[l], net.c[l], dz, net.cv[l + 1], dw[t][l].data(), db[t][l].data());
        if (l == 0) break;
        Img prev{nullptr, net.H, net.W, net.k[l - 1] / 2, net.cv[l]};  // dL/dz of layer l - 1
        std::vector<float>& buf = dzbuf[(L - l) % 2];
        buf.assign(prev.size(), 0.f);
        prev.data = buf.data();
        const Img sav = net.hidden(acts, l - 1, i);
        conv_image(dz, net.k[l], net.c[l + 1], net.wt[l].data(), net.cv[l], net.zero_bias.data(), net.c[l], 1,
                   net.act, &sav, prev);
        dz = prev;
      }
    }
  });
  // Sum over chunks in order; drop the channel padding: grads packed as the weights are (HWIO kernel, then bias, per layer).
  float* g = grads;
  for (int l = 0; l < L; ++l) {
    const int kk = net.k[l], ci = net.c[l], co = net.c[l + 1], cvo = net.cv[l + 1];
    for (std::size_t r = 0; r < (std::size_t)kk * kk * ci; ++r)
      for (int o = 0; o < co; ++o) {
        float s = 0.f;
        for (int t = 0; t < n; ++t) s += dw[t][l][r * cvo + o];
        *g++ = s;
      }
    for (int o = 0; o < co; ++o) {
      float s = 0.f;
      for (int t = 0; t < n; ++t) s += db[t][l][o];
      *g++ = s;
    }
  }
  return 0;
}
