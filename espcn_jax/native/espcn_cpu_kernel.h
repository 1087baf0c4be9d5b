// The interface between the FFI handler (espcn_cpu_ffi.cc) and the per-ISA kernels (espcn_cpu_kernel.cc).
#pragma once
#include <cstdint>
#include <functional>

enum { kActLinear = 0, kActTanh = 1, kActRelu = 2 };

struct NetDesc {
  int batch, height, width;  // LR canvases (B, H, W, in_channels), NHWC float32
  int in_channels;           // C: 1 (luma) or 3 (RGB); the last layer has C * scale^2 outputs
  int scale;
  int num_layers;
  int kernel_sizes[16];
  int channels[17];  // channels[0] = C, channels[l + 1] = outputs of layer l
  int activation;    // kAct*: after every layer but the last
  int num_threads;
  int winograd;  // 1: 3x3 layers with >= 8 inputs by Winograd F(4x4, 3x3); 0: direct convolution
  int bf16;      // training kernels: 1 = convolutions with >= 8 inputs take bf16 operands (float32 sums) where the
                 // CPU has AVX512_BF16 (espcn_train_has_bf16); 0 = float32
};

// Packed weights, layer after layer: kernel [k][k][cin][cout] (HWIO) then bias [cout]. Up to net->num_threads
// threads: the calling one and tasks given to `schedule` (XLA's intra-op pool, from the FFI handler; espcn_cpu_train.h
// says what it may do). Returns 0 on success.
int espcn_forward(const NetDesc* net, const float* packed, const float* x, const int32_t* valid, float* out,
                  const std::function<void(std::function<void()>)>& schedule);
extern "C" const char* espcn_isa();  // "avx512", "avx2" or "generic": the vector width it was built for
extern "C" int espcn_has_winograd();  // 1: Winograd compiled in (GCC); 0: direct convolution only (clang)
