"""What the five commands (train, evaluate, upscale, benchmark, export) share on the command line.

- Exit codes: 0 ok, 1 some input failed (bad file, bad weights, a failed export), 2 usage error (argparse's own
  code), 130 interrupted (Ctrl-C: one line, no traceback; what was written so far is complete, never half a file).
- `--weights FILE`: a weight file (.safetensors from `espcn_jax.weights.save`) instead of the shipped weights;
  `--checkpoint` still works as a deprecated alias (one note line when used); `--variant` names the shipped weights.
- `--dtype` takes float32, bfloat16 or float16 and `--batch` a positive integer (N) everywhere (benchmark, which
  sweeps, takes several); `--help` shows every option's default.
"""

from __future__ import annotations

import argparse
import functools
import sys

OK, FAILED, USAGE, INTERRUPTED = 0, 1, 2, 130
DTYPES = ("float32", "bfloat16", "float16")


class UsageError(ValueError):
  """Flags that cannot work together (e.g. --scale 2 with x3 weights): exit code 2, one line."""


class _HelpFormatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
  """Every default in --help (not None or False: an option's help says what its absence means); the description
  keeps its line breaks (the module docstrings' examples)."""

  def _get_help_string(self, action):
    if action.default is None or action.default is False:
      return action.help
    return super()._get_help_string(action)


def parser(prog: str, description: str) -> argparse.ArgumentParser:
  return argparse.ArgumentParser(prog=prog, description=description, formatter_class=_HelpFormatter)


def positive_int(text: str) -> int:
  """argparse type of --batch, --iters, --tile: an integer >= 1."""
  try:
    value = int(text)
  except ValueError:
    raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {text!r}") from None
  if value < 1:
    raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {value}")
  return value


class _DeprecatedWeightsAlias(argparse.Action):
  def __call__(self, p, namespace, values, option_string=None):
    print(f"note: {option_string} is deprecated (it will be removed); use --weights", file=sys.stderr)
    setattr(namespace, self.dest, values)


def add_weights(p: argparse.ArgumentParser, *, variant: bool = True, group=None) -> None:
  """--weights FILE (with --checkpoint as a deprecated alias) and, with `variant`, --variant NAME. `group`: a
  mutually exclusive group to put --weights / --checkpoint in."""
  g = group if group is not None else p
  g.add_argument("--weights", metavar="FILE", default=None,
                 help="weight file (.safetensors from espcn_jax.weights.save) instead of the shipped weights")
  g.add_argument("--checkpoint", dest="weights", metavar="FILE", action=_DeprecatedWeightsAlias,
                 help="deprecated alias of --weights")
  if variant:
    p.add_argument("--variant", default="best", help="shipped weights: espcn_jax/pretrained/espcn_x{scale}_{variant} "
                   "(best: the best-trained ESPCN of the scale; t91: the paper's Table 1 reproduction)")


def exits_130_on_interrupt(main):
  """Wraps a command's `main(argv) -> int`: Ctrl-C (KeyboardInterrupt) prints one line and returns 130."""

  @functools.wraps(main)
  def wrapped(argv) -> int:
    try:
      return main(argv)
    except KeyboardInterrupt:
      print("interrupted", file=sys.stderr)
      return INTERRUPTED

  return wrapped
