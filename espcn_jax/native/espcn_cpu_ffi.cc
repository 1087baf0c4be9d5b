// XLA FFI handlers for the CPU: "espcn_forward" (inference) and "espcn_train_forward" / "espcn_train_backward" (the
// two halves of the training VJP). Each checks the shapes and attributes, then runs its kernel. Called from JAX
// through jax.ffi.ffi_call (espcn_jax/native/__init__.py, training.py), so they live inside jitted programs.

#include <algorithm>
#include <cstdint>
#include <functional>
#include <string>
#include <utility>

#include "espcn_cpu_infer_amx.h"
#include "espcn_cpu_kernel.h"
#include "espcn_cpu_train.h"
#include "xla/ffi/api/ffi.h"

namespace ffi = xla::ffi;

namespace {

// NetDesc for an inference call from x (B, H, W, C) and the attributes; checks valid, out and the packed weights.
ffi::Error describe_forward(const char* name, ffi::Buffer<ffi::F32>& x, ffi::Buffer<ffi::S32>& valid,
                            ffi::Buffer<ffi::F32>& packed, ffi::ResultBuffer<ffi::F32>& out,
                            ffi::Span<const int64_t> kernel_sizes, ffi::Span<const int64_t> channels,
                            int64_t activation, int64_t scale, int64_t num_threads, NetDesc* net_out) {
  const std::string n = name;
  auto xd = x.dimensions();
  if (xd.size() != 4) return ffi::Error::InvalidArgument(n + ": x must be (B, H, W, C)");
  NetDesc net{};
  net.batch = (int)xd[0], net.height = (int)xd[1], net.width = (int)xd[2], net.in_channels = (int)xd[3];
  net.scale = (int)scale;
  net.num_layers = (int)kernel_sizes.size();
  net.activation = (int)activation;
  net.num_threads = (int)num_threads;
  if (net.num_layers < 1 || net.num_layers > 16 || (int)channels.size() != net.num_layers + 1)
    return ffi::Error::InvalidArgument(n + ": need 1-16 layers and one channel count per activation");
  if (channels[0] != net.in_channels || channels[net.num_layers] != net.in_channels * scale * scale)
    return ffi::Error::InvalidArgument(n + ": channels do not match the input / scale");
  int64_t expect = 0;
  for (int l = 0; l < net.num_layers; ++l) {
    net.kernel_sizes[l] = (int)kernel_sizes[l];
    if (kernel_sizes[l] % 2 == 0 || kernel_sizes[l] > 15)
      return ffi::Error::InvalidArgument(n + ": kernel sizes must be odd and <= 15");
    expect += kernel_sizes[l] * kernel_sizes[l] * channels[l] * channels[l + 1] + channels[l + 1];
  }
  for (int l = 0; l <= net.num_layers; ++l) net.channels[l] = (int)channels[l];
  if ((int64_t)packed.element_count() != expect)
    return ffi::Error::InvalidArgument(n + ": packed weights have " + std::to_string(packed.element_count()) +
                                       " floats, expected " + std::to_string(expect));
  auto vd = valid.dimensions();
  if (vd.size() != 2 || vd[0] != xd[0] || vd[1] != 4) return ffi::Error::InvalidArgument(n + ": valid must be (B, 4)");
  auto od = out->dimensions();
  if (od.size() != 4 || od[0] != xd[0] || od[1] != xd[1] * scale || od[2] != xd[2] * scale || od[3] != xd[3])
    return ffi::Error::InvalidArgument(n + ": output must be (B, rH, rW, C)");
  *net_out = net;
  return ffi::Error::Success();
}

// Tasks for the kernels' extra threads go to XLA's intra-op thread pool, which then has that many fewer free threads.
Schedule pool_schedule(ffi::ThreadPool& pool, NetDesc* net) {
  net->num_threads = std::max(1, std::min(net->num_threads, (int)pool.num_threads()));
  return [&pool](std::function<void()> f) { pool.Schedule(std::move(f)); };
}

// The float32 forward pass; threads from XLA's pool.
ffi::Error Forward(ffi::ThreadPool pool, ffi::Buffer<ffi::F32> x, ffi::Buffer<ffi::S32> valid,
                   ffi::Buffer<ffi::F32> packed, ffi::ResultBuffer<ffi::F32> out, ffi::Span<const int64_t> kernel_sizes,
                   ffi::Span<const int64_t> channels, int64_t activation, int64_t scale, int64_t num_threads,
                   int64_t winograd) {
  NetDesc net;
  ffi::Error e = describe_forward("espcn_forward", x, valid, packed, out, kernel_sizes, channels, activation, scale,
                                  num_threads, &net);
  if (e.failure()) return e;
  net.winograd = (int)winograd;
  if (espcn_forward(&net, packed.typed_data(), x.typed_data(), valid.typed_data(), out->typed_data(),
                    pool_schedule(pool, &net)) != 0)
    return ffi::Error::Internal("espcn_forward: unsupported layer configuration");
  return ffi::Error::Success();
}

// The bindings' common parts. The net's attributes, which every handler takes after its buffers:
template <class B>
auto net_attrs(B&& binding) {
  return std::forward<B>(binding)
      .template Attr<ffi::Span<const int64_t>>("kernel_sizes")
      .template Attr<ffi::Span<const int64_t>>("channels")
      .template Attr<int64_t>("activation");
}

// An inference handler's: x, valid, packed -> out, then the net's attributes, the scale and the thread count.
template <class B>
auto forward_binding(B&& binding) {
  return net_attrs(std::forward<B>(binding)
                       .template Arg<ffi::Buffer<ffi::F32>>()
                       .template Arg<ffi::Buffer<ffi::S32>>()
                       .template Arg<ffi::Buffer<ffi::F32>>()
                       .template Ret<ffi::Buffer<ffi::F32>>())
      .template Attr<int64_t>("scale")
      .template Attr<int64_t>("num_threads");
}

// A training handler's tail: the net's attributes, the thread count and bf16.
template <class B>
auto train_attrs(B&& binding) {
  return net_attrs(std::forward<B>(binding)).template Attr<int64_t>("num_threads").template Attr<int64_t>("bf16");
}

}  // namespace

XLA_FFI_DEFINE_HANDLER_SYMBOL(EspcnForward, Forward,
                              forward_binding(ffi::Ffi::Bind().Ctx<ffi::ThreadPool>()).Attr<int64_t>("winograd"));



namespace {

// NetDesc for a training call from x (B, H, W, C) and the attributes; checks the packed weights' size.
ffi::Error describe(const char* name, ffi::Buffer<ffi::F32>& x, ffi::Buffer<ffi::F32>& packed,
                    ffi::Span<const int64_t> kernel_sizes, ffi::Span<const int64_t> channels, int64_t activation,
                    int64_t num_threads, int64_t bf16, NetDesc* net) {
  auto xd = x.dimensions();
  const std::string n = name;
  if (xd.size() != 4) return ffi::Error::InvalidArgument(n + ": x must be (B, H, W, C)");
  *net = NetDesc{};
  net->batch = (int)xd[0], net->height = (int)xd[1], net->width = (int)xd[2], net->in_channels = (int)xd[3];
  net->num_layers = (int)kernel_sizes.size();
  net->activation = (int)activation;
  net->num_threads = (int)num_threads;
  net->bf16 = (int)bf16;
  if (net->num_layers < 1 || net->num_layers > 16 || (int)channels.size() != net->num_layers + 1 ||
      channels[0] != xd[3])
    return ffi::Error::InvalidArgument(n + ": need 1-16 layers, one channel count per activation, C inputs");
  int64_t expect = 0;
  for (int l = 0; l < net->num_layers; ++l) {
    net->kernel_sizes[l] = (int)kernel_sizes[l];
    expect += kernel_sizes[l] * kernel_sizes[l] * channels[l] * channels[l + 1] + channels[l + 1];
  }
  for (int l = 0; l <= net->num_layers; ++l) net->channels[l] = (int)channels[l];
  if ((int64_t)packed.element_count() != expect)
    return ffi::Error::InvalidArgument(n + ": packed weights have " + std::to_string(packed.element_count()) +
                                       " floats, expected " + std::to_string(expect));
  if (espcn_train_acts_size(net) < 0) return ffi::Error::InvalidArgument(n + ": unsupported layer configuration");
  return ffi::Error::Success();
}

bool is_pre_ps(ffi::Span<const int64_t> d, const NetDesc& net) {  // (B, H, W, channels[L])
  return d.size() == 4 && d[0] == net.batch && d[1] == net.height && d[2] == net.width &&
         d[3] == net.channels[net.num_layers];
}

ffi::Error TrainForward(ffi::ThreadPool pool, ffi::Buffer<ffi::F32> x, ffi::Buffer<ffi::F32> packed, ffi::ResultBuffer<ffi::F32> y,
                        ffi::ResultBuffer<ffi::F32> acts, ffi::Span<const int64_t> kernel_sizes,
                        ffi::Span<const int64_t> channels, int64_t activation, int64_t num_threads, int64_t bf16) {
  NetDesc net;
  ffi::Error e =
      describe("espcn_train_forward", x, packed, kernel_sizes, channels, activation, num_threads, bf16, &net);
  if (e.failure()) return e;
  if (!is_pre_ps(y->dimensions(), net))
    return ffi::Error::InvalidArgument("espcn_train_forward: y must be (B, H, W, channels[-1])");
  if ((int64_t)acts->element_count() != espcn_train_acts_size(&net))
    return ffi::Error::InvalidArgument("espcn_train_forward: wrong size of the activations buffer");
  if (espcn_train_forward(&net, packed.typed_data(), x.typed_data(), y->typed_data(), acts->typed_data(),
                          pool_schedule(pool, &net)) != 0)
    return ffi::Error::Internal("espcn_train_forward: failed");
  return ffi::Error::Success();
}

ffi::Error TrainBackward(ffi::ThreadPool pool, ffi::Buffer<ffi::F32> x, ffi::Buffer<ffi::F32> packed, ffi::Buffer<ffi::F32> acts,
                         ffi::Buffer<ffi::F32> dy, ffi::ResultBuffer<ffi::F32> grads,
                         ffi::Span<const int64_t> kernel_sizes, ffi::Span<const int64_t> channels, int64_t activation,
                         int64_t num_threads, int64_t bf16) {
  NetDesc net;
  ffi::Error e =
      describe("espcn_train_backward", x, packed, kernel_sizes, channels, activation, num_threads, bf16, &net);
  if (e.failure()) return e;
  if (!is_pre_ps(dy.dimensions(), net))
    return ffi::Error::InvalidArgument("espcn_train_backward: dy must be (B, H, W, channels[-1])");
  if ((int64_t)acts.element_count() != espcn_train_acts_size(&net))
    return ffi::Error::InvalidArgument("espcn_train_backward: wrong size of the activations buffer");
  if (grads->element_count() != packed.element_count())
    return ffi::Error::InvalidArgument("espcn_train_backward: grads must have the packed weights' size");
  if (espcn_train_backward(&net, packed.typed_data(), x.typed_data(), acts.typed_data(), dy.typed_data(),
                           grads->typed_data(), pool_schedule(pool, &net)) != 0)
    return ffi::Error::Internal("espcn_train_backward: failed");
  return ffi::Error::Success();
}

// The forward pass with the layers of >= 8 inputs on AMX tiles (bf16 operands); threads from XLA's pool.
ffi::Error ForwardBf16(ffi::ThreadPool pool, ffi::Buffer<ffi::F32> x, ffi::Buffer<ffi::S32> valid,
                       ffi::Buffer<ffi::F32> packed, ffi::ResultBuffer<ffi::F32> out,
                       ffi::Span<const int64_t> kernel_sizes, ffi::Span<const int64_t> channels, int64_t activation,
                       int64_t scale, int64_t num_threads) {
  NetDesc net;
  ffi::Error e = describe_forward("espcn_forward_bf16", x, valid, packed, out, kernel_sizes, channels, activation,
                                  scale, num_threads, &net);
  if (e.failure()) return e;
  net.bf16 = 1;
  const int rc = espcn_forward_bf16(&net, packed.typed_data(), x.typed_data(), valid.typed_data(), out->typed_data(),
                                    pool_schedule(pool, &net));
  if (rc == 2) return ffi::Error::Internal("espcn_forward_bf16: this build or CPU has no AMX tiles");
  if (rc != 0) return ffi::Error::Internal("espcn_forward_bf16: unsupported layer configuration");
  return ffi::Error::Success();
}

}  // namespace

XLA_FFI_DEFINE_HANDLER_SYMBOL(EspcnTrainForward, TrainForward,
                              train_attrs(ffi::Ffi::Bind()
                                              .Ctx<ffi::ThreadPool>()
                                              .Arg<ffi::Buffer<ffi::F32>>()
                                              .Arg<ffi::Buffer<ffi::F32>>()
                                              .Ret<ffi::Buffer<ffi::F32>>()
                                              .Ret<ffi::Buffer<ffi::F32>>()));

XLA_FFI_DEFINE_HANDLER_SYMBOL(EspcnTrainBackward, TrainBackward,
                              train_attrs(ffi::Ffi::Bind()
                                              .Ctx<ffi::ThreadPool>()
                                              .Arg<ffi::Buffer<ffi::F32>>()
                                              .Arg<ffi::Buffer<ffi::F32>>()
                                              .Arg<ffi::Buffer<ffi::F32>>()
                                              .Arg<ffi::Buffer<ffi::F32>>()
                                              .Ret<ffi::Buffer<ffi::F32>>()));

XLA_FFI_DEFINE_HANDLER_SYMBOL(EspcnForwardBf16, ForwardBf16, forward_binding(ffi::Ffi::Bind().Ctx<ffi::ThreadPool>()));
