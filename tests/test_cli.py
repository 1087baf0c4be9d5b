"""One command-line style (espcn_jax.cli): --weights (and the deprecated --checkpoint), --variant, --batch / --dtype,
defaults in --help, and exit code 130 with one line on Ctrl-C, in each command that has them."""

import pytest

from espcn_jax import benchmark, cli, evaluate, export, upscale

PARSERS = {  # the command's argument parser, and the arguments it needs besides the ones tested
    "evaluate": (evaluate.parse_args, ["--data", "set5"]),
    "upscale": (upscale._parse, ["in.png", "-o", "out.png"]),
    "benchmark": (benchmark._parse, []),
    "export": (export._parse, ["-o", "m.onnx"]),
}


@pytest.mark.parametrize("name", sorted(PARSERS))
def test_weights_variant_and_the_deprecated_checkpoint_alias(name, capsys):
  parse, needed = PARSERS[name]
  args = parse(needed + ["--weights", "w.safetensors", "--variant", "t91_relu"])
  assert args.weights == "w.safetensors" and args.variant == "t91_relu"
  assert capsys.readouterr().err == ""
  args = parse(needed + ["--checkpoint", "old.safetensors"])
  assert args.weights == "old.safetensors" and args.variant == "best"
  err = capsys.readouterr().err
  assert err.count("\n") == 1 and "--checkpoint is deprecated" in err and "--weights" in err


@pytest.mark.parametrize("name", sorted(PARSERS))
def test_help_shows_the_defaults(name, capsys):
  parse, _ = PARSERS[name]
  with pytest.raises(SystemExit) as e:
    parse(["--help"])
  assert e.value.code == 0
  out = " ".join(capsys.readouterr().out.split())  # argparse wraps lines
  assert ("--variant VARIANT shipped weights: espcn_jax/pretrained/espcn_x{scale}_{variant} (best: the best-trained "
          "ESPCN of the scale; t91: the paper's Table 1 reproduction) (default: best)") in out
  if name in ("upscale", "benchmark"):
    assert "(default: float32)" in out or "(default: ['float32'])" in out


def test_batch_and_dtype_take_the_same_form():
  up = upscale._parse(["in.png", "-o", "o.png", "--batch", "4", "--dtype", "bfloat16"])
  bench = benchmark._parse(["--batch", "4", "--dtype", "bfloat16"])
  assert (up.batch, up.dtype) == (4, "bfloat16") and (bench.batch, bench.dtype) == ([4], ["bfloat16"])
  for parse, needed in (PARSERS["upscale"], PARSERS["benchmark"]):
    for bad in (["--batch", "0"], ["--batch", "two"], ["--dtype", "fp16"]):
      with pytest.raises(SystemExit) as e:
        parse(needed + bad)
      assert e.value.code == cli.USAGE


def test_upscale_crf_is_a_rate_factor(capsys):
  assert upscale._parse(["in.mp4", "-o", "o.mp4", "--crf", "23"]).crf == 23
  assert upscale._parse(["in.mp4", "-o", "o.mp4"]).crf is None  # imageio-ffmpeg's quality 8: CRF 10
  for bad in ("52", "-1", "high"):
    with pytest.raises(SystemExit) as e:
      upscale._parse(["in.mp4", "-o", "o.mp4", "--crf", bad])
    assert e.value.code == cli.USAGE
  assert "--crf must be in 0-51, got 52" in capsys.readouterr().err


def _interrupt(*args, **kwargs):
  raise KeyboardInterrupt


@pytest.mark.parametrize("name,patch,argv", [
    ("upscale", "plan_jobs", ["in.png", "-o", "out.png"]),
    ("evaluate", "_load_model", ["--data", "set5"]),
    ("export", "_plan", ["-o", "m.onnx"]),
    ("benchmark", "load_params", ["--peers", "none"]),
])
def test_ctrl_c_exits_130_with_one_line(name, patch, argv, monkeypatch, capsys):
  module = {"upscale": upscale, "evaluate": evaluate, "export": export, "benchmark": benchmark}[name]
  monkeypatch.setattr(module, patch, _interrupt)
  assert module.main(argv) == cli.INTERRUPTED == 130
  captured = capsys.readouterr()
  assert captured.err == "interrupted\n" and captured.out == ""
