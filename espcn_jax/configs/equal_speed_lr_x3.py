"""The equal-speed experiment's LR net at x3 (configs/equal_speed.py)."""

from espcn_jax.configs import equal_speed


def get_config():
  return equal_speed.make("lr", 3)
