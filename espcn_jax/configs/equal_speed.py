"""The equal-speed LR-vs-HR experiment of Shi et al. 2016 ("Is the deconvolution layer the same as a convolutional
layer?"): `make(net, scale)` is the shared protocol, equal_speed_{lr,hr}_x{2,3}.py the four runs (this file's own
`get_config` is the LR net at x2, as equal_speed_lr_x2.py).

    nice -n 19 python -m espcn_jax.train --config configs/equal_speed_hr_x2.py --workdir workdirs/eq_hr_x2_s0 \\
        --config.seed=0

The nets (espcn_jax/baselines.py, EQUAL_SPEED): an LR net (an ESPCN: 3x3 kernels, 32 feature maps, then PS) and an
HR net (bicubic upsampling, then 3 convolutions with 8 feature maps: 6x6 kernels at r = 2, 4x4 at r = 3), the same
depth (3 convolutions), tanh, with the same multiply count per output pixel in the middle layer. Both train with the
same XLA step (native kernels off), the same data, sampler, batch, Adam + cosine schedule and a fixed budget of
optimizer steps (no wall-clock fit, so a slower net gets the same number of updates); the best epoch on the T91
holdout is scored on Set5 / Set14. Results: REPRODUCTION.md, "Equal speed: LR against HR".
"""

from espcn_jax import baselines
from espcn_jax.configs import base

STEPS = 6000  # 96,000 patches of 17x17 LR pixels per run


def make(net: str, scale: int):
  if net not in ("lr", "hr") or scale not in baselines.EQUAL_SPEED:
    raise ValueError(f"equal_speed.make: net must be lr or hr and scale in {sorted(baselines.EQUAL_SPEED)}")
  c = base.get_config()
  c.scale = scale
  fields = baselines.EQUAL_SPEED[scale][net]
  c.model.kind = "espcn" if net == "lr" else "hr"
  c.model.features = fields["features"]
  c.model.kernel_sizes = fields["kernel_sizes"]
  c.model.activation = "tanh"
  c.workdir = f"workdirs/equal_speed_{net}_x{scale}"
  c.native_kernels = "off"  # the same XLA step for both nets
  c.batch_size = 16
  c.steps_per_call = 8
  c.steps_per_epoch = 400
  c.num_epochs = STEPS // c.steps_per_epoch
  c.data.augment = True
  c.optim.learning_rate = 1e-3
  c.optim.min_learning_rate = 1e-5
  c.optim.last_layer_lr_scale = 1.0
  c.optim.decay_steps = STEPS
  c.optim.plateau_patience = 1000
  c.early_stop_patience = 0
  c.max_minutes = 0.0
  c.data.val = "holdout"
  c.data.holdout = "t5.png+t15.png+t25.png+t35.png+t45.png"
  c.data.test = "set5+set14"
  return c


def get_config():
  return make("lr", 2)
