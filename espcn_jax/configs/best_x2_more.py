"""ESPCN x2, tanh: a second cosine cycle from the weights of configs/best_x2.py (same data, same patches).

    python -m espcn_jax.train --config configs/best_x2.py --workdir workdirs/espcn_x2_best         # first
    python -m espcn_jax.train --config configs/best_x2_more.py --workdir workdirs/espcn_x2_best_more

Starts from workdirs/espcn_x2_best/best.safetensors (the first run's weights, selected on the 5 held-out T91 images)
with a lower peak lr (3e-4 -> 1e-5) for ~20 more minutes on 2 vCPUs of the Intel Xeon with AMX, as
configs/best_x4_more.py did for x4 (REPRODUCTION.md, "Better weights for the same network").
"""

from espcn_jax.configs import best_x2


def get_config():
  c = best_x2.get_config()
  c.workdir = "workdirs/espcn_x2_best_more"
  c.init_from = "workdirs/espcn_x2_best/best.safetensors"
  c.optim.learning_rate = 3e-4
  c.max_minutes = 21.0
  return c
