"""A tiny run to check an installation: x3 on T91, 3 epochs of 4 steps of 8 patches; seconds on a CPU.

    python -m espcn_jax.train --config configs/smoke.py --workdir /tmp/espcn_smoke
"""

from espcn_jax.configs import base


def get_config():
  c = base.get_config()
  c.model.features = (16, 8)
  c.batch_size = 8
  c.steps_per_epoch = 4
  c.num_epochs = 3
  c.tensorboard = False
  c.workdir = "workdirs/smoke"
  return c
