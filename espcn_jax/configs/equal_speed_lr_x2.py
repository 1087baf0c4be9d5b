"""The equal-speed experiment's LR net at x2 (configs/equal_speed.py; scripts/run_equal_speed.sh runs all four):

    nice -n 19 python -m espcn_jax.train --config configs/equal_speed_lr_x2.py --workdir W --config.seed=S
"""

from espcn_jax.configs import equal_speed


def get_config():
  return equal_speed.make("lr", 2)
