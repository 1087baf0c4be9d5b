"""Every training field with its default: the paper's settings for x3 on T91 (the other configs start from this).

    python -m espcn_jax.train --config configs/base.py --workdir workdirs/espcn_x3_base
    python -m espcn_jax.train --help        # lists every field below with its default

Not a recipe of a shipped model: the paper's lr of 0.01 makes tanh diverge (REPRODUCTION.md); configs/t91_x3_tanh.py
is the x3 T91 recipe. Fields are typed: `--config.batch_size=1.5` is an error, and the config is locked, so a
misspelt `--config.FIELD` is an error naming the close matches instead of a new field.
"""

import ml_collections
from ml_collections import config_dict


def get_config() -> ml_collections.ConfigDict:
  c = ml_collections.ConfigDict()
  c.scale = 3
  # kind: "espcn" (convolutions in LR space, then PS), "srcnn" or "hr" (bicubic upsampling, then convolutions in HR
  # space: espcn_jax/baselines.py; configs/srcnn_t91_x3.py, configs/equal_speed.py)
  c.model = ml_collections.ConfigDict({"channels": 1, "features": (64, 32), "kernel_sizes": (5, 3, 3),
                                       "activation": "tanh", "kind": "espcn"})
  c.data = d = ml_collections.ConfigDict()
  d.train = "t91"  # built-in names / folders joined by "+", or "tfds:NAME[:SPLIT]", or "imagenet_subset"
  d.backend = "auto"  # "memory" (on-device sampler), "tfdata", or "auto" (memory unless tfds/imagenet)
  # What picks the best checkpoint: a folder or built-in name ("set5": a test set, as the paper's Table 1 runs did),
  # "holdout" (the training images named in `holdout`, left out of training), or "" (no validation: the last epoch)
  d.val = "set5"
  d.holdout = ""  # with val="holdout": file names in the training folders, joined by "+" (e.g. "t1.png+t40.png")
  d.test = ""  # sets scored with the best weights at the end (test results), joined by "+", e.g. "set5+set14"
  d.lr_patch = 17  # LR patch side; HR patches are lr_patch * scale
  d.augment = False  # random flips / transposes
  d.degradation = "bicubic"  # or "gaussian": the paper's blur (sigma, kernel_size) + decimation
  d.sigma = 1.6
  d.kernel_size = 7
  d.shuffle_buffer = 1024  # tf.data backend
  d.cache = True
  d.tfds_data_dir = ""
  d.manual_dir = ""
  d.subset_size = 50000  # imagenet_subset: images drawn with `seed`
  # memory backend: each training image is also added down-scaled by these factors in (0, 1) (FSRCNN's
  # augmentation, MATLAB bicubic), e.g. (0.9, 0.8, 0.7, 0.6); (): none
  d.scale_augment = ()
  c.batch_size = 64  # global, over all devices and processes
  c.steps_per_call = 0  # optimizer steps per jitted call (unrolled); 0: 8 on GPU/TPU, 1 on CPU (same math)
  c.steps_per_epoch = 200
  c.num_epochs = 300
  c.optim = o = ml_collections.ConfigDict()
  o.learning_rate = 0.01
  o.min_learning_rate = 1e-4
  o.plateau_factor = 0.1
  o.plateau_patience = 10
  o.plateau_rtol = 1e-3
  o.plateau_cooldown = 0
  o.last_layer_lr_scale = 0.1
  o.decay_steps = 0  # > 0: cosine lr decay to min_learning_rate over that many steps
  c.early_stop_patience = 100  # epochs without improvement of `early_stop_metric`; 0 disables
  c.early_stop_metric = "train_loss"  # "train_loss" (the paper) or "val_psnr"
  c.eval_every_epochs = 1
  c.checkpoint_every_epochs = 1
  # Wall-clock budget of this invocation in minutes, from the start of the command (0: none; start-up, data loading
  # and compilation count, so a Ctrl-C at N minutes after launch finds the fitted run complete). When the time per epoch measured
  # over epochs 2-3 says num_epochs will not fit, the run is shortened to the epochs that fit and the lr's cosine
  # decay (optim.decay_steps > 0) ends with them; a resumed run keeps that fit. The run stops at the budget in any
  # case, and the best weights are exported.
  c.max_minutes = 0.0
  c.loss = "mse"  # "mse" (the paper), "l1" or "charbonnier" (sqrt(d^2 + charbonnier_eps^2))
  c.charbonnier_eps = 1e-3
  # LR pixels at each edge of a patch whose HR outputs the loss leaves out: 0 (the whole patch) or e.g. 6 (2 of the
  # bicubic degradation's reflected edge + 4 of the 5-3-3 net's zero padding). 6 measured ~1 dB worse at x3: test
  # images have edges too, and the net no longer learns them (REPRODUCTION.md, the ablation's notes)
  c.loss_margin = 0
  # Training-only extra linear branches per convolution, merged into the one kernel of each layer for validation
  # and export (espcn_jax/reparam.py): "" or names joined by "+" from "1x1", "asym", "expand"
  c.reparam = ml_collections.ConfigDict({"branches": "", "expand": 2})
  # A new run's starting params: a weights file or a shipped variant's name ("t91": espcn_x<scale>_t91); "": fresh
  c.init_from = ""
  c.seed = 0
  c.compute_dtype = "float32"  # or "bfloat16"
  c.cpu_ynn_fusion = True  # XLA:CPU: YNNPACK fusions for dots, elementwise ops, reductions (same math, faster)
  # The net's forward/backward in C++ (espcn_jax.native.training): auto, on or off; auto = on the CPU in float32 on
  # one device when the kernels load (1.45-1.7x XLA's step on 2 cores)
  c.native_kernels = "auto"
  # The native kernels' convolutions with >= 8 inputs on bf16 operands (float32 sums): auto (when the CPU has
  # AVX512_BF16: 1.6-1.7x the float32 kernels' step), on (an error elsewhere) or off
  c.native_bf16 = "off"
  c.distributed = False  # jax.distributed.initialize() (multi-host); unset fields come from the environment
  c.coordinator_address = config_dict.placeholder(str)
  c.num_processes = config_dict.placeholder(int)
  c.process_id = config_dict.placeholder(int)
  c.tensorboard = True
  c.workdir = "workdirs/espcn_x3_t91"
  return c
