"""The equal-speed experiment's HR net at x3 (configs/equal_speed.py)."""

from espcn_jax.configs import equal_speed


def get_config():
  return equal_speed.make("hr", 3)
