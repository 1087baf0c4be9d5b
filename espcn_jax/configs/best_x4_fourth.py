"""ESPCN x4, tanh: a fourth cosine cycle, from the third cycle's weights (configs/best_x4_third.py).

    python -m espcn_jax.train --config configs/best_x4_third.py --workdir workdirs/espcn_x4_best_third    # third
    python -m espcn_jax.train --config configs/best_x4_fourth.py --workdir workdirs/espcn_x4_best_fourth  # this

Same data and patches as configs/best_x4.py, half the third cycle's peak lr (7.5e-5 -> ~0), as many of the 300
epochs as fit in 72 minutes on 2 vCPUs of the AMD EPYC Zen 3 VM (AVX2, float32 training kernels: the schedule is
fitted to the budget). From a clone, `--config.init_from=espcn_jax/pretrained/espcn_x4_best.safetensors` is the
same start (the third cycle's best.safetensors is that file). Decided before the run: it replaces the shipped file
only if val10 (held-out training-set images, never Set5 / Set14) improves on 28.490 dB (REPRODUCTION.md, "Better
weights for the same network").
"""

from espcn_jax.configs import best_x4


def get_config():
  c = best_x4.get_config()
  c.workdir = "workdirs/espcn_x4_best_fourth"
  c.init_from = "workdirs/espcn_x4_best_third/best.safetensors"
  c.optim.learning_rate = 7.5e-5
  c.max_minutes = 72.0
  return c
