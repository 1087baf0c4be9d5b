"""ESPCN x3, ReLU, trained on T91, validated on Set5 (Table 1's "ESPCN (91 relu)").

    python -m espcn_jax.train --config configs/t91_x3_relu.py --workdir workdirs/espcn_x3_t91_relu

Shipped as espcn_x3_t91_relu.safetensors: Set5 32.57 / Set14 29.11 dB (paper 32.39 / 28.97).
Runtime: 6 min on one H100 shared by five runs (130 epochs).
"""

from espcn_jax.configs import base


def get_config():
  c = base.get_config()
  c.scale = 3
  c.model.activation = "relu"
  c.workdir = "workdirs/espcn_x3_t91_relu"
  # The recipe of the shipped weights (REPRODUCTION.md): Adam lr 1e-3 -> 1e-5 on plateaus (the paper's 0.01 made
  # tanh diverge: see REPRODUCTION.md), last layer 0.1x, 17x17 LR patches, flips/transposes, batch 128,
  # epochs of 400 steps with Set5 validation after each.
  c.batch_size = 128
  c.steps_per_call = 0  # auto: 8 on GPU/TPU (as trained), 1 on CPU; the math is the same
  c.steps_per_epoch = 400
  c.num_epochs = 130
  c.data.augment = True
  c.optim.learning_rate = 1e-3
  c.optim.min_learning_rate = 1e-5
  c.optim.plateau_patience = 20
  c.early_stop_patience = 0  # the epoch budget ends the run
  return c
