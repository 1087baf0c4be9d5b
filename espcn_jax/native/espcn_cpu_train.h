// The interface between the FFI handlers (espcn_cpu_ffi.cc) and the training kernels (espcn_cpu_train.cc).
#pragma once
#include <cstdint>
#include <functional>

#include "espcn_cpu_kernel.h"

// Runs a task on another thread (XLA's intra-op thread pool, from the FFI handler); may run it later or never
// (the caller does whatever work no task has claimed). Empty: everything runs on the calling thread.
using Schedule = std::function<void(std::function<void()>)>;

// Floats of the saved hidden activations for `net` (NetDesc's batch/height/width/channels/kernel_sizes): per hidden
// layer l, B images of (H + 2p) x (W + 2p) pixels of round_up(channels[l + 1], 16) floats, p = kernel_sizes[l + 1] / 2.
extern "C" int64_t espcn_train_acts_size(const NetDesc* net);

// 1 when this build has the bf16 convolutions (AVX512_BF16), else 0 (then NetDesc::bf16 is ignored).
extern "C" int espcn_train_has_bf16();

// Forward pass before the periodic shuffle: y (B, H, W, C r^2) NHWC and the hidden activations for the backward
// pass. Packed weights as espcn_forward's; up to net->num_threads threads. Returns 0 on success.
int espcn_train_forward(const NetDesc* net, const float* packed, const float* x, float* y, float* acts,
                        const Schedule& schedule);

// Backward pass: from dL/dy (B, H, W, C r^2), the gradients of all weights, packed as the weights are. The batch is
// cut into a fixed number of chunks, each summed on its own, so the result does not depend on the thread count.
int espcn_train_backward(const NetDesc* net, const float* packed, const float* x, const float* acts, const float* dy,
                         float* grads, const Schedule& schedule);
