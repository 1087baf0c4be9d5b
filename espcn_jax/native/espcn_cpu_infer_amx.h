// The interface between the FFI handler (espcn_cpu_ffi.cc) and the AMX bf16 inference kernel
// (espcn_cpu_infer_amx.cc).
#pragma once
#include <cstdint>

#include "espcn_cpu_kernel.h"
#include "espcn_cpu_train.h"  // Schedule

// 1: this build has the AMX bf16 inference kernel and the CPU and OS let this process use the tiles; else 0.
extern "C" int espcn_infer_has_amx();

// espcn_forward (same NetDesc, packed weights, `valid` rectangles and output) with the layers of >= 8 input channels
// on AMX tiles: bf16 operands, float32 sums, bias and activation in float32. The first layer (fewer than 8 inputs)
// stays float32. Returns 0 on success, 1 for a net it does not take (a first layer with >= 8 inputs, a later one with
// fewer, a single layer, k > 15), 2 when AMX is unavailable.
int espcn_forward_bf16(const NetDesc* net, const float* packed, const float* x, const int32_t* valid, float* out,
                       const Schedule& schedule);
