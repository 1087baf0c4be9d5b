"""The published numbers our results are compared with: Shi et al. 2016, Table 1 (x3), and the bicubic baselines.

    paper.reference("Set5", 3, train="t91", activation="tanh")   # ("ESPCN (91)", 32.55)
    paper.reference("Set5", 2, train="t91", activation="tanh")   # None: Table 1 is x3 only

Transcribed from the paper (mean PSNR in dB on Y). The paper trains on 91 images or on 50,000 ImageNet images; a
model trained on anything else (e.g. T91 + BSD200) has no paper column, so `reference` returns None for it.
"""

from __future__ import annotations

# Table 1 of Shi et al. 2016: mean PSNR (dB) on Y, upscaling factor 3.
TABLE1_X3 = {
    "SRCNN (91)": {"Set5": 32.39, "Set14": 29.00, "BSD300": 28.21, "BSD500": 28.28},
    "ESPCN (91 relu)": {"Set5": 32.39, "Set14": 28.97, "BSD300": 28.20, "BSD500": 28.27},
    "ESPCN (91)": {"Set5": 32.55, "Set14": 29.08, "BSD300": 28.26, "BSD500": 28.34},
    "SRCNN (ImageNet)": {"Set5": 32.52, "Set14": 29.14, "BSD300": 28.29, "BSD500": 28.37},
    "ESPCN (ImageNet relu)": {"Set5": 33.00, "Set14": 29.42, "BSD300": 28.52, "BSD500": 28.62},
    "ESPCN (ImageNet)": {"Set5": 33.13, "Set14": 29.49, "BSD300": 28.54, "BSD500": 28.64},
}
# The bicubic baselines the SR literature publishes (SRCNN, VDSR; PSNR dB on Y), which our protocol reproduces.
PUBLISHED_BICUBIC = {2: {"Set5": 33.66, "Set14": 30.23}, 3: {"Set5": 30.39, "Set14": 27.54, "BSD300": 27.21,
                                                             "BSD500": 27.26}, 4: {"Set5": 28.42, "Set14": 26.00}}
# Our data set names (images.BUILTIN_DATASETS values, download_test_sets folders) -> the paper's.
_DATASET = {"set5": "Set5", "set14": "Set14", "bsd300": "BSD300", "bsd300_test": "BSD300", "bsd500": "BSD500",
            "bsd500_test": "BSD500"}


def column(train: str | None, activation: str | None) -> str | None:
  """The Table 1 column of an ESPCN trained on `train` ("t91", "imagenet..."), or None if the paper has none."""
  if not train or activation not in ("tanh", "relu"):
    return None
  train = train.lower()
  if train in ("t91", "91"):
    source = "91"
  elif train.startswith("imagenet") or train.startswith("tfds:imagenet"):
    source = "ImageNet"
  else:
    return None
  return f"ESPCN ({source}{' relu' if activation == 'relu' else ''})"


def reference(dataset: str, scale: int, *, train: str | None, activation: str | None) -> tuple[str, float] | None:
  """(column, PSNR) of the paper for this data set, scale and training set / activation; None when not published."""
  col = column(train, activation)
  name = _DATASET.get(str(dataset).lower())
  if int(scale) != 3 or col is None or name is None:
    return None
  return col, TABLE1_X3[col][name]
