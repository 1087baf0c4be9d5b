"""SRCNN 9-5-5 (64-32 filters, ReLU; the ESPCN paper's Table 1 baseline) x3 on T91, under ESPCN's CPU protocol:
the same data, degradation (MATLAB bicubic), patch sampler, augmentation, batch, Adam with a cosine lr decay, holdout
model selection and test sets as configs/t91_x3_cpu.py; only the net differs (espcn_jax/baselines.py: bicubic x3,
then the convolutions in HR space).

    nice -n 19 python -m espcn_jax.train --config configs/srcnn_t91_x3.py --workdir workdirs/srcnn_x3_t91

SRCNN costs ~23x ESPCN's multiplies per output pixel (57,184 against 2,512) and trains with XLA (the native kernels
compute ESPCN only): ~150 patches/s on 2 cores against ESPCN's ~7,000, so it gets 12,000 steps (1/20 of ESPCN's
240,000), and `max_minutes` fits fewer epochs (and the cosine) into 25 minutes on a slower or busy CPU. The shipped
weights espcn_jax/pretrained/espcn_x3_srcnn_t91.safetensors came from this config (REPRODUCTION.md, "SRCNN").
"""

from espcn_jax.configs import base


def get_config():
  c = base.get_config()
  c.scale = 3
  c.model.kind = "srcnn"
  c.model.features = (64, 32)
  c.model.kernel_sizes = (9, 5, 5)
  c.model.activation = "relu"
  c.workdir = "workdirs/srcnn_x3_t91"
  c.batch_size = 16
  c.steps_per_call = 8
  c.steps_per_epoch = 400  # shorter epochs than ESPCN's 2000: more checkpoints to select from in the budget
  c.num_epochs = 30  # 12,000 steps (192,000 patches): ~23 min on 2 quiet cores
  c.data.augment = True
  c.optim.learning_rate = 1e-3
  c.optim.min_learning_rate = 1e-5
  c.optim.last_layer_lr_scale = 1.0
  c.optim.decay_steps = c.num_epochs * c.steps_per_epoch
  c.optim.plateau_patience = 1000
  c.early_stop_patience = 0
  c.max_minutes = 25.0
  c.data.val = "holdout"
  c.data.holdout = "t5.png+t15.png+t25.png+t35.png+t45.png"
  c.data.test = "set5+set14"
  return c
