"""ESPCN x2, tanh: the best weights we train for the paper's net at x2 on T91 (configs/best_x3.py's recipe).

    python -m espcn_jax.train --config configs/best_x2.py --workdir workdirs/espcn_x2_best

Shipped as espcn_x2_best.safetensors, the default x2 weights (espcn_x2_t91 stays). As best_x3.py, with a shorter run.
"""

from espcn_jax.configs import best_x3


def get_config():
  c = best_x3.get_config()
  c.scale = 2
  c.workdir = "workdirs/espcn_x2_best"
  c.num_epochs = 320  # ~17 min on 2 vCPUs of the Intel Xeon with AMX
  c.optim.decay_steps = c.num_epochs * c.steps_per_epoch
  c.max_minutes = 19.0
  return c
