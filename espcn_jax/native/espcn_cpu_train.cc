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
// bf16 mode (NetDesc::bf16, AVX512_BF16 builds): the convolutions with >= 8 inputs multiply bf16 operands, summed in
// float32 (vdpbf16ps: two products per lane per instruction); the weight gradients take pairs of images at once.
// AMX builds ("avx512_amx", on a CPU and OS that allow the tiles): the bf16 convolutions and weight gradients run on
// AMX tiles instead (espcn_cpu_train_amx.h; the same bf16 operands and float32 sums, 2.4-2.9x the float32 step on 2
// cores of a Sapphire-Rapids-class Xeon, where vdpbf16ps is no faster than float32 FMAs).
// The microkernels are in espcn_cpu_train_blocks.h. Plain C++ with GCC vector extensions (espcn_cpu_blocks.h), built
// once per instruction set when the package is built (setup.py).

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

#include "espcn_cpu_train_blocks.h"
#include "espcn_cpu_train_amx.h"
#include "espcn_cpu_tasks.h"

extern "C" int espcn_train_has_bf16() { return ESPCN_HAVE_BF16; }

// 1: the bf16 convolutions run on AMX tiles (an "avx512_amx" build on a CPU and OS that allow them).
extern "C" int espcn_train_has_amx() {
#if ESPCN_HAVE_AMX
  return amx_ready();
#else
  return 0;
#endif
}

namespace {

// out(y, x)[0 .. cout) for the whole image = epilogue(conv(in, w) + bias), row by row in blocks of pixels; `fn(nv, np)`
// is the microkernel for nv output vectors and np pixels, `nin` its input count (channels, or bf16 channel pairs).
// `sav` (epi 1): the saved activation, same geometry as out.
template <class T, class WT, class GetFn>
void conv_rows(const ImgT<T>& in, int k, int nin, const WT* w, int wstride, const float* bias, int cout, int epi,
               int act, const Img* sav, const Img& out, GetFn fn) {
  const int nvec = (cout + VL - 1) / VL;
  for (int g0 = 0; g0 < nvec; g0 += kMaxNV) {
    const int nv = std::min(kMaxNV, nvec - g0), npmax = max_block(nv);
    const int nb = (out.w + npmax - 1) / npmax;
    const int nstore = std::min(cout - g0 * VL, nv * VL);
    const decltype(fn(1, 1)) fns[2] = {fn(nv, out.w / nb), fn(nv, out.w / nb + 1)};
    for (int y = 0; y < out.h; ++y)
      for (int b = 0; b < nb; ++b) {
        const int x0 = out.w * b / nb, np = out.w * (b + 1) / nb - x0;
        fns[np - out.w / nb](in.at(y - k / 2, x0 - k / 2), in.pitch(), in.cs, k, nin, w + g0 * VL, wstride,
                             bias + g0 * VL, epi, act, sav ? sav->at(y, x0) + g0 * VL : nullptr, sav ? sav->cs : 0,
                             out.at(y, x0) + g0 * VL, out.cs, nstore);
      }
  }
}

// w is [k][k][cin][wstride], wstride a multiple of VL >= cout; bias has wstride floats.
void conv_image(const Img& in, int k, int cin, const float* w, int wstride, const float* bias, int cout, int epi,
                int act, const Img* sav, const Img& out) {
  conv_rows(in, k, cin, w, wstride, bias, cout, epi, act, sav, out, conv_fn);
}

#if ESPCN_HAVE_BF16
// conv_image on a bf16 image with bf16 weight pairs ([k][k][cpairs][wstride], cpairs = ceil(cin / 2)).
void conv_image_bf16(const BImg& in, int k, int cpairs, const uint32_t* w, int wstride, const float* bias, int cout,
                     int epi, int act, const Img* sav, const Img& out) {
  conv_rows(in, k, cpairs, w, wstride, bias, cout, epi, act, sav, out, conv_bf16_fn);
}
#endif

// db[0 .. coutv) += sum over the pixels of dz.
void bias_grad(const Img& dz, int coutv, float* db) {
  const int nvec = coutv / VL;
  for (int y = 0; y < dz.h; ++y)
    for (int x = 0; x < dz.w; ++x) {
      const float* d = dz.at(y, x);
      for (int v = 0; v < nvec; ++v) storeu(db + v * VL, loadu(db + v * VL) + loadu(d + v * VL));
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
  bias_grad(dz, coutv, db);
}

#if ESPCN_HAVE_BF16
// wgrad_image's weight part for a pair of images (cin >= 2 channels of a padded, 16-aligned layout).
void wgrad_image_bf16(const PImg& in, int k, int cin, const PImg& dz, int coutv, float* dw) {
  const int nvec = coutv / VL;
  for (int g0 = 0; g0 < nvec; g0 += kMaxNV) {
    const int nv = std::min(kMaxNV, nvec - g0), nimax = max_block(nv);
    const int nb = (cin + nimax - 1) / nimax;
    for (int ky = 0; ky < k; ++ky)
      for (int kx = 0; kx < k; ++kx)
        for (int b = 0; b < nb; ++b) {
          const int c0 = cin * b / nb, ni = cin * (b + 1) / nb - c0;
          wgrad_bf16_fn(nv, ni)(in, k, (std::size_t)ky * in.pitch() + (std::size_t)kx * in.cs + c0, dz, g0,
                                dw + ((std::size_t)(ky * k + kx) * cin + c0) * coutv, coutv);
        }
  }
}
#endif

struct Net {
  int L, B, H, W, act, threads;
  bool bf16;                           // convolutions with >= kBf16MinIn inputs in bf16 (ESPCN_HAVE_BF16 only)
  bool amx;                            // ... on AMX tiles (ESPCN_HAVE_AMX; weight pairs padded to cv / 2 rows)
  std::vector<int> k, c;               // kernel sizes; channels[0 .. L]
  std::vector<int> cv;                 // round_up(c, kCS)
  std::vector<std::vector<float>> w, b, wt;  // [k][k][cin][cv_out], [cv_out], flipped [k][k][cout][cv_in]
  std::vector<AlignedVector<uint32_t>> wp, wtp;  // bf16 pairs of w / wt over the input channels (bf16 layers only)
  std::vector<float> zero_bias;        // the input gradients' "bias"
  std::vector<std::size_t> act_off;    // offset of hidden layer l's activations in the acts buffer
  std::size_t acts_size = 0;

  // `packed` null: geometry only. The forward pass reads w and b, the backward pass only wt: each pass repacks just
  // what it reads (this runs on every call, i.e. twice per training step).
  enum Use { kForward, kBackward };
  Net(const NetDesc* d, const float* packed, Use use = kForward)
      : L(d->num_layers), B(d->batch), H(d->height), W(d->width) {
    act = d->activation;
    bf16 = ESPCN_HAVE_BF16 && d->bf16;
#if ESPCN_HAVE_AMX
    amx = bf16 && amx_ready();
#else
    amx = false;
#endif
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
      AlignedVector<uint32_t> wpl, wtpl;
      if (fwd && bf16_in(l, false)) {  // [t][ci / 2][cv_out]: (w[t][2p][o], w[t][2p + 1][o])
        const int cp = amx ? cv[l] / 2 : (ci + 1) / 2, cvo = cv[l + 1];
        wpl.assign((std::size_t)kk * kk * cp * cvo, 0u);
        for (int t = 0; t < kk * kk; ++t)
          for (int p = 0; p < cp; ++p)
            for (int o = 0; o < co; ++o) {
              const float* w0 = src + ((std::size_t)t * ci + 2 * p) * co + o;  // w[t][2p][o]; w[t][2p + 1][o] at + co
              wpl[((std::size_t)t * cp + p) * cvo + o] =
                  bf16_pair(2 * p < ci ? *w0 : 0.f, 2 * p + 1 < ci ? w0[co] : 0.f);
            }
      }
      if (!fwd && bf16_in(l, true)) {  // flipped: [k*k-1-t][co / 2][cv_in]: (w[t][i][2p], w[t][i][2p + 1])
        const int cp = amx ? cv[l + 1] / 2 : (co + 1) / 2, cvi = cv[l];
        wtpl.assign((std::size_t)kk * kk * cp * cvi, 0u);
        for (int t = 0; t < kk * kk; ++t)
          for (int p = 0; p < cp; ++p)
            for (int i = 0; i < ci; ++i) {
              const float* wr = src + ((std::size_t)t * ci + i) * co;
              wtpl[((std::size_t)(kk * kk - 1 - t) * cp + p) * cvi + i] =
                  bf16_pair(2 * p < co ? wr[2 * p] : 0.f, 2 * p + 1 < co ? wr[2 * p + 1] : 0.f);
            }
      }
      src += (std::size_t)kk * kk * ci * co;
      if (fwd) std::copy(src, src + co, bl.begin());
      src += co;
      w.push_back(std::move(wl)), b.push_back(std::move(bl)), wt.push_back(std::move(wtl));
      wp.push_back(std::move(wpl)), wtp.push_back(std::move(wtpl));
    }
  }

  // Whether layer l's forward convolution (or, `input_grad`, its input gradient, a convolution over its outputs)
  // runs in bf16: bf16 on and >= kBf16MinIn channels in (the 1-channel first layer stays float32).
  bool bf16_in(int l, bool input_grad) const { return bf16 && (input_grad ? c[l + 1] : c[l]) >= kBf16MinIn; }
  // Whether layer l's weight gradient runs in bf16 (pairs of images; its input is a hidden activation).
  bool bf16_wgrad(int l) const { return bf16 && l >= 1 && c[l] >= kBf16MinIn; }
  // Whether that weight gradient runs on AMX tiles (input channels in whole tiles of 16 rows).
  bool amx_wgrad(int l) const { return amx && bf16_wgrad(l) && c[l] % 16 == 0; }

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
  run_tasks(n, net.threads, schedule, [&](int chunk) {
    const int i0 = net.B * chunk / n, i1 = net.B * (chunk + 1) / n;
    // scratch kept per thread across calls (no allocation, page faults or zeroing of fresh pages per step)
    static thread_local std::vector<float> xbuf;
    static thread_local AlignedVector<uint16_t> bbuf;
    for (int i = i0; i < i1; ++i) {
      Img in;
      net.load_input(x, i, xbuf, in);
      for (int l = 0; l < L; ++l) {
        const bool last = l + 1 == L;
        Img out = last ? Img{y + (std::size_t)i * net.H * net.W * cout, net.H, net.W, 0, cout} : net.hidden(acts, l, i);
        if (!last) std::memset(out.data, 0, sizeof(float) * out.size());
        const int nout = last ? cout : net.cv[l + 1], a = last ? kActLinear : net.act;
#if ESPCN_HAVE_AMX
        if (net.amx && net.bf16_in(l, false)) {
          BImg bin;
          convert_bf16_slack(in, bbuf, bin);
          conv_image_amx(bin, net.k[l], net.wp[l].data(), net.cv[l + 1], net.b[l].data(), nout, 0, a, nullptr, out);
        } else
#endif
#if ESPCN_HAVE_BF16
        if (net.bf16_in(l, false)) {
          BImg bin;
          convert_bf16(in, bbuf, bin);
          conv_image_bf16(bin, net.k[l], (net.c[l] + 1) / 2, net.wp[l].data(), net.cv[l + 1], net.b[l].data(), nout,
                          0, a, nullptr, out);
        } else
#endif
          conv_image(in, net.k[l], net.c[l], net.w[l].data(), net.cv[l + 1], net.b[l].data(), nout, 0, a, nullptr,
                     out);
        in = out;
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
  // Per chunk: the weight / bias gradients of every layer ([k][k][cin][cv_out] and [cv_out]), at dw(t, l) and
  // db(t, l) in one zeroed block of the calling thread's (kept across calls).
  std::vector<std::size_t> woff(L + 1, 0), boff(L + 1, 0);
  for (int l = 0; l < L; ++l) {
    woff[l + 1] = woff[l] + (std::size_t)net.k[l] * net.k[l] * net.c[l] * net.cv[l + 1];
    boff[l + 1] = boff[l] + net.cv[l + 1];
  }
  const std::size_t per_chunk = woff[L] + boff[L];
  static thread_local std::vector<float> arena;
  arena.assign(per_chunk * n, 0.f);
  float* const base = arena.data();
  auto dw = [&](int t, int l) { return base + per_chunk * t + woff[l]; };
  auto db = [&](int t, int l) { return base + per_chunk * t + woff[L] + boff[l]; };
  run_tasks(n, net.threads, schedule, [&](int t) {
    const int i0 = net.B * t / n, i1 = net.B * (t + 1) / n;
    static thread_local std::vector<float> xbuf, dzbuf[2][2];
    static thread_local AlignedVector<uint16_t> bbuf;
    static thread_local AlignedVector<uint32_t> pin, pdz;
    // bf16: the images go in pairs, whose weight gradients are one pass of pair dot products
    const int group = net.bf16 ? 2 : 1, cout = net.c[L];
    for (int i = i0; i < i1; i += group) {
      const int m = std::min(group, i1 - i);
      Img dz[2];
      for (int e = 0; e < m; ++e) {  // dz of the last layer: dy, zero-padded by k/2 for its input gradient
        dz[e] = Img{nullptr, net.H, net.W, net.k[L - 1] / 2, net.cv[L]};
        dzbuf[e][0].assign(dz[e].size(), 0.f);
        dz[e].data = dzbuf[e][0].data();
        for (int y = 0; y < net.H; ++y)
          for (int xx = 0; xx < net.W; ++xx)
            std::memcpy(dz[e].at(y, xx), dy + (((std::size_t)(i + e) * net.H + y) * net.W + xx) * cout,
                        sizeof(float) * cout);
      }
      for (int l = L - 1; l >= 0; --l) {
#if ESPCN_HAVE_AMX
        if (net.amx_wgrad(l)) {
          for (int e = 0; e < m; ++e) {
            wgrad_image_amx(net.hidden(acts, l - 1, i + e), net.k[l], dz[e], dw(t, l), bbuf, pin);
            bias_grad(dz[e], net.cv[l + 1], db(t, l));
          }
        } else
#endif
#if ESPCN_HAVE_BF16
        if (net.bf16_wgrad(l)) {
          const Img a = net.hidden(acts, l - 1, i), b = m > 1 ? net.hidden(acts, l - 1, i + 1) : a;
          PImg pa, pd;
          convert_pair(a, m > 1 ? &b : nullptr, pin, pa);
          convert_pair(dz[0], m > 1 ? &dz[1] : nullptr, pdz, pd);
          wgrad_image_bf16(pa, net.k[l], net.c[l], pd, net.cv[l + 1], dw(t, l));
          for (int e = 0; e < m; ++e) bias_grad(dz[e], net.cv[l + 1], db(t, l));
        } else
#endif
          for (int e = 0; e < m; ++e) {
            Img in;
            if (l == 0)
              net.load_input(x, i + e, xbuf, in);
            else
              in = net.hidden(acts, l - 1, i + e);
            wgrad_image(in, net.k[l], net.c[l], dz[e], net.cv[l + 1], dw(t, l), db(t, l));
          }
        if (l == 0) break;
        for (int e = 0; e < m; ++e) {
          Img prev{nullptr, net.H, net.W, net.k[l - 1] / 2, net.cv[l]};  // dL/dz of layer l - 1
          std::vector<float>& buf = dzbuf[e][(L - l) % 2];
          buf.assign(prev.size(), 0.f);
          prev.data = buf.data();
          const Img sav = net.hidden(acts, l - 1, i + e);
#if ESPCN_HAVE_AMX
          if (net.amx && net.bf16_in(l, true)) {
            BImg bdz;
            convert_bf16_slack(dz[e], bbuf, bdz);
            conv_image_amx(bdz, net.k[l], net.wtp[l].data(), net.cv[l], net.zero_bias.data(), net.c[l], 1, net.act,
                           &sav, prev);
          } else
#endif
#if ESPCN_HAVE_BF16
          if (net.bf16_in(l, true)) {
            BImg bdz;
            convert_bf16(dz[e], bbuf, bdz);
            conv_image_bf16(bdz, net.k[l], (net.c[l + 1] + 1) / 2, net.wtp[l].data(), net.cv[l],
                            net.zero_bias.data(), net.c[l], 1, net.act, &sav, prev);
          } else
#endif
            conv_image(dz[e], net.k[l], net.c[l + 1], net.wt[l].data(), net.cv[l], net.zero_bias.data(), net.c[l], 1,
                       net.act, &sav, prev);
          dz[e] = prev;
        }
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
        for (int t = 0; t < n; ++t) s += dw(t, l)[r * cvo + o];
        *g++ = s;
      }
    for (int o = 0; o < co; ++o) {
      float s = 0.f;
      for (int t = 0; t < n; ++t) s += db(t, l)[o];
      *g++ = s;
    }
  }
  return 0;
}
