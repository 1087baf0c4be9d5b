"""x3 tanh on T91 for a small CPU with AVX512_BF16: `t91_x3_cpu.py` with bf16 dot products in the native training
kernels and the 1.6x more epochs they fit in ~10 minutes; the default recipe of `python -m espcn_jax.train` there.

    python -m espcn_jax.train --config configs/t91_x3_cpu_bf16.py --workdir workdirs/espcn_x3_t91_cpu_bf16 [--config.seed=S]

For a CPU with AVX512_BF16 (AMD Zen 4 and later, Intel Sapphire Rapids / Cooper Lake and later); `native_bf16` is
"auto", so elsewhere it trains with the float32 kernels and says so (its epochs are then cut to the 10 minutes of
`max_minutes`; configs/t91_x3_cpu.py is the recipe for that speed; `--config.native_bf16=on` stops at once instead).

What differs from t91_x3_cpu.py: the native kernels' convolutions with >= 8 inputs (every layer's forward pass but
the first, the input gradients and the weight gradients of layers 2-3) multiply bf16-rounded operands and sum in
float32 (`vdpbf16ps`, twice the float32 FMA rate); weights, Adam, loss and the validation stay float32. On 2 cores of
an AMD EPYC (Zen 5) the step runs at ~11,000-12,000 patches/s instead of ~7,000-7,600, so the cosine schedule spans
190 epochs (6.1 M patches) instead of 120. On an Intel Xeon with AMX (Sapphire Rapids class), where vdpbf16ps is no
faster than float32 FMAs, the same bf16 convolutions run on AMX tiles (the "avx512_amx" kernels): ~7,000-8,600
patches/s on 2 vCPUs, so `max_minutes` fits 124-144 of the 190 epochs there. Runtime and Set5 / Set14 results:
BENCHMARKS.md ("Training speed", time to PSNR; "The default command on the 2-core Intel Xeon VM with AMX tiles");
curves in docs/runs/x3_t91_cpu_bf16_seed*.metrics.jsonl (Zen 5, measured with all 91 T91 images and Set5 selection;
this config selects on 5 held-out T91 images and reports Set5 / Set14 as test results, as t91_x3_cpu.py) and
docs/runs/default_cmd_amx_seed*.metrics.jsonl (the Xeon with AMX, this config as it is).
"""

from espcn_jax.configs import t91_x3_cpu


def get_config():
  c = t91_x3_cpu.get_config()
  c.workdir = "workdirs/espcn_x3_t91_cpu_bf16"
  c.native_kernels = "on"
  c.native_bf16 = "auto"  # as trained: "on" (the same kernels on a CPU with AVX512_BF16)
  c.num_epochs = 190  # 380,000 steps, 6.1 M patches
  c.optim.decay_steps = c.num_epochs * c.steps_per_epoch  # change with num_epochs
  return c
