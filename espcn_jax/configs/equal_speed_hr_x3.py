"""The equal-speed experiment's HR net at x3 (configs/equal_speed.py; scripts/run_equal_speed.sh runs all four):

    nice -n 19 python -m espcn_jax.train --config configs/equal_speed_hr_x3.py --workdir W --config.seed=S
"""

from espcn_jax.configs import equal_speed


def get_config():
  return equal_speed.make("hr", 3)
