"""ESPCN x4, tanh: a second cosine cycle from the weights of configs/best_x4.py (same data, same patches).

    python -m espcn_jax.train --config configs/best_x4.py --workdir workdirs/espcn_x4_best         # first
    python -m espcn_jax.train --config configs/best_x4_more.py --workdir workdirs/espcn_x4_best_more

Starts from workdirs/espcn_x4_best/best.safetensors (the first run's weights, selected on the 5 held-out T91 images)
with a lower peak lr (3e-4 -> 1e-5) for ~18 more minutes on 2 vCPUs of the Intel Xeon with AMX. The first run's
curve was still rising at its end (REPRODUCTION.md, "Better weights for the same network").
"""

from espcn_jax.configs import best_x4


def get_config():
  c = best_x4.get_config()
  c.workdir = "workdirs/espcn_x4_best_more"
  c.init_from = "workdirs/espcn_x4_best/best.safetensors"
  c.optim.learning_rate = 3e-4
  return c
