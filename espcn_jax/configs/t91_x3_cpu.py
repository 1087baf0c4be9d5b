"""x3 tanh on T91 for a small CPU: batch 16, cosine lr decay over a ~10-minute step budget; the default recipe of
`python -m espcn_jax.train` on a CPU without AVX512_BF16.

    python -m espcn_jax.train --config configs/t91_x3_cpu.py --workdir workdirs/espcn_x3_t91_cpu [--config.seed=S]

Runtime: 9.0-9.7 min on 2 cores of an AMD EPYC (Zen 5, AVX-512) with the native training kernels (`native_kernels`
auto: the forward / backward pass in C++, espcn_jax/native/training.py), ~7,000-7,400 patches/s per epoch. Set5,
seeds 0-4 (bicubic 30.39, paper 32.55): seed 0 (this config) 32.548 dB at 9.5 min; seeds 1-4 pass 32.55 at 6.2-7.3
min and end at 32.58-32.64 (Set14 29.11-29.15; BENCHMARKS.md, "Training speed"; curves in
docs/runs/x3_t91_cpu_seed*.metrics.jsonl). The same net and protocol as configs/t91_x3_tanh.py; what
differs: batch 16 instead of 128 (8x the optimizer steps per patch), the last layer at the full lr, and a cosine from
1e-3 to 1e-5 over the whole run instead of the plateau schedule (which never triggers here). `max_minutes` caps a
slower machine at 10 minutes (without the native kernels, e.g. no C++ compiler, XLA's step is ~1.7x slower: ~70 of
the 120 epochs, ~32.50 dB); the best epoch's weights are kept either way. On a CPU with AVX512_BF16 (AMD Zen 4+,
Intel Sapphire Rapids+) configs/t91_x3_cpu_bf16.py fits 190 epochs in the same time (bf16 dot products).

Model selection: the best epoch is chosen on 5 T91 images held out of training (`data.holdout`, 3% of the patch
positions), and Set5 / Set14 are scored once with the chosen weights at the end (test_results.json). The results
above were measured when this config trained on all 91 images and selected on Set5 (`--config.data.val=set5` does
that again).
"""

from espcn_jax.configs import base


def get_config():
  c = base.get_config()
  c.scale = 3
  c.model.activation = "tanh"
  c.workdir = "workdirs/espcn_x3_t91_cpu"
  c.batch_size = 16
  c.steps_per_call = 8  # unrolled: 1.1x the patches/s of 1 step per call at batch 16 on the CPU
  c.steps_per_epoch = 2000
  c.num_epochs = 120  # 240,000 steps, 3.8 M patches
  c.data.augment = True
  c.optim.learning_rate = 1e-3
  c.optim.min_learning_rate = 1e-5
  c.optim.last_layer_lr_scale = 1.0
  c.optim.decay_steps = c.num_epochs * c.steps_per_epoch  # change with num_epochs
  c.optim.plateau_patience = 1000
  c.early_stop_patience = 0
  c.max_minutes = 10.0  # with the measured step rate, fits the epochs (and the cosine) into 10 min if needed
  c.data.val = "holdout"
  c.data.holdout = "t5.png+t15.png+t25.png+t35.png+t45.png"
  c.data.test = "set5+set14"
  return c
