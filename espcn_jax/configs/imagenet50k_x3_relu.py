"""The paper's ImageNet model: x3, ReLU, 50,000 random ImageNet training images (tf.data backend).

    python -m espcn_jax.train --config configs/imagenet50k_x3_relu.py --workdir workdirs/espcn_x3_imagenet \
        --config.data.manual_dir=/path/to/imagenet_tars --config.data.tfds_data_dir=/path/to/tfds
    # x2 / x4: add --config.scale=2 (or 4)

tfds builds `imagenet2012` from the two ILSVRC2012 tar files in manual_dir (a one-off, hours); the 50k ids are drawn
with `seed` and recorded in <workdir>/imagenet_subset_ids.txt (the first run reads all file names once). Decoded Y
images are cached in memory (~12 GB for 50k images; set data.cache to a file path to cache on disk).
Runtime: hours on one GPU; needs TensorFlow and tensorflow-datasets.
"""

from espcn_jax.configs import base


def get_config():
  c = base.get_config()
  c.model.activation = "relu"
  c.data.train = "imagenet_subset"
  c.data.backend = "tfdata"
  c.data.subset_size = 50000
  c.data.shuffle_buffer = 4096
  c.batch_size = 128
  c.steps_per_epoch = 1000
  c.num_epochs = 500
  c.optim.plateau_patience = 5
  c.early_stop_patience = 30
  c.workdir = "workdirs/espcn_x3_imagenet50k"
  return c
