"""ESPCN x4, tanh: the best weights we train for the paper's net at x4 on T91 (configs/best_x3.py's recipe).

    python -m espcn_jax.train --config configs/best_x4.py --workdir workdirs/espcn_x4_best

Shipped as espcn_x4_best.safetensors, the default x4 weights (espcn_x4_t91 stays). As best_x3.py, but 24x24 LR patches
in batches of 8 (96x96 HR patches: 90 of the 91 T91 images are that large; 34x34 would drop 13) and a shorter run.
"""

from espcn_jax.configs import best_x3


def get_config():
  c = best_x3.get_config()
  c.scale = 4
  c.workdir = "workdirs/espcn_x4_best"
  c.data.lr_patch = 24
  c.batch_size = 8
  c.num_epochs = 300  # ~18 min on 2 vCPUs of the Intel Xeon with AMX
  c.optim.decay_steps = c.num_epochs * c.steps_per_epoch
  c.max_minutes = 19.0
  return c
