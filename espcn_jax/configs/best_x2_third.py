"""ESPCN x2, tanh: a third cosine cycle, from the second cycle's weights (configs/best_x2_more.py).

    python -m espcn_jax.train --config configs/best_x2.py --workdir workdirs/espcn_x2_best              # first
    python -m espcn_jax.train --config configs/best_x2_more.py --workdir workdirs/espcn_x2_best_more    # second
    python -m espcn_jax.train --config configs/best_x2_third.py --workdir workdirs/espcn_x2_best_third  # this

As configs/best_x4_third.py did for x4: same data and patches as configs/best_x2.py, half the second cycle's peak lr
(1.5e-4 -> 1e-5), 320 epochs on 2 vCPUs of the AMD EPYC (Zen 5; bf16 training convolutions by AVX512_BF16, no AMX).
It starts from the second cycle's best.safetensors, which is the file shipped as espcn_x2_best before this run
(`--config.init_from=espcn_jax/pretrained/espcn_x2_best.safetensors` from a clone). Decided before the run: it
replaces the shipped file only if val10 (held-out training-set images, never Set5 / Set14) improves
(REPRODUCTION.md, "Better weights for the same network").
"""

from espcn_jax.configs import best_x2


def get_config():
  c = best_x2.get_config()
  c.workdir = "workdirs/espcn_x2_best_third"
  c.init_from = "workdirs/espcn_x2_best_more/best.safetensors"
  c.optim.learning_rate = 1.5e-4
  c.max_minutes = 32.0
  return c
