"""The training command line's configs: config files (`ml_collections.ConfigDict`), absl flags, the default recipe.

    cfg, workdir, chosen = train_config.parse(["--config", "configs/t91_x2.py", "--config.batch_size=64"])

`--config PATH` names a config file whose `get_config()` returns a ConfigDict (espcn_jax/configs/*.py; a bare name or
"configs/NAME.py" is found in the installed package from any directory). `--config.a.b=VALUE` overrides one field,
typed like its default (`ml_collections.config_flags`); the config is locked, so an unknown field is an error that
names the close matches. Without `--config` the recipe is chosen for the hardware (`choose_recipe`). Only the command
line reads configs: `espcn_jax.train` turns one into the plain arguments of the library modules.
"""

from __future__ import annotations

import difflib
import importlib.util
import pathlib
import warnings

import ml_collections

CONFIG_DIR = pathlib.Path(__file__).resolve().parent / "configs"  # installed with the package
FLAGS_HELP = "--config PATH, --workdir DIR, --config.FIELD=VALUE, --help"


class ConfigError(ValueError):
  """A usage error on the command line or in a config file (exit code 2); the message is one line."""


# ----------------------------------------------------------------------------------------------------------------
# The default recipe for the hardware.


def choose_recipe(*, backend: str, native_available: bool, has_bf16: bool, has_amx: bool = False,
                  native_reason: str | None = None) -> tuple[str, str]:
  """The config file (a name in espcn_jax/configs) that trains the best x3 T91 model on this hardware, and why.

  backend: jax.default_backend(); native_available: espcn_jax.native.available(); has_bf16:
  espcn_jax.native.train_has_bf16(); has_amx: espcn_jax.native.train_has_amx(); native_reason:
  espcn_jax.native.unavailable_reason(), for the message.
  """
  if backend != "cpu":
    return "t91_x3_tanh.py", f"the {backend} recipe (Table 1's x3 T91 run, batch 128)"
  if native_available and has_bf16 and has_amx:
    return "t91_x3_cpu_bf16.py", "a CPU with AMX: the native kernels' bf16 convolutions on AMX tiles, ~10 min"
  if native_available and has_bf16:
    return "t91_x3_cpu_bf16.py", "a CPU with AVX512_BF16: the native kernels with bf16 dot products, ~10 min"
  if native_available:
    return "t91_x3_cpu.py", "a CPU without AVX512_BF16: the native float32 kernels, ~10 min"
  return "t91_x3_cpu.py", (f"a CPU without the native kernels ({native_reason or 'they do not load'}): "
                           "that recipe on XLA, its cosine fitted to 10 min")


def hardware_recipe() -> tuple[str, str]:
  """`choose_recipe` for this machine (imports JAX, and loads the native kernels on the CPU)."""
  import jax
  backend = jax.default_backend()
  if backend != "cpu":
    return choose_recipe(backend=backend, native_available=False, has_bf16=False)
  from espcn_jax import native
  ok = native.available()
  return choose_recipe(backend=backend, native_available=ok, has_bf16=ok and native.train_has_bf16(),
                       has_amx=ok and native.train_has_amx(), native_reason=native.unavailable_reason())


# ----------------------------------------------------------------------------------------------------------------
# Config files.


def resolve(path) -> pathlib.Path:
  """A config file path; "NAME.py" or "configs/NAME.py" that does not exist here is looked up in the package."""
  path = pathlib.Path(path)
  if path.is_file():
    return path.resolve()
  alt = CONFIG_DIR / path.name
  if path.parent.name in ("", "configs") and alt.is_file():
    return alt
  raise ConfigError(f"{path}: no such config file (the shipped ones: {', '.join(shipped())})")


def shipped() -> list[str]:
  return sorted(p.name for p in CONFIG_DIR.glob("*.py") if p.name != "__init__.py")


def load(path) -> ml_collections.ConfigDict:
  """Runs a config file's `get_config()`; the result is a ConfigDict."""
  path = resolve(path)
  spec = importlib.util.spec_from_file_location(f"espcn_config_{path.stem}", path)
  mod = importlib.util.module_from_spec(spec)
  try:
    spec.loader.exec_module(mod)
    cfg = mod.get_config()
  except Exception as e:
    raise ConfigError(f"{path}: cannot load config ({type(e).__name__}: {e})".splitlines()[0]) from e
  if not isinstance(cfg, ml_collections.ConfigDict):
    raise ConfigError(f"{path}: get_config() must return an ml_collections.ConfigDict, got {type(cfg).__name__}")
  return cfg


def fields(cfg, prefix: str = "") -> dict:
  """{"a.b": value} for every leaf field of a ConfigDict (or nested dict)."""
  out = {}
  for key in sorted(cfg.keys()):
    value = cfg[key]
    if isinstance(value, (ml_collections.ConfigDict, dict)):
      out.update(fields(value, f"{prefix}{key}."))
    else:
      out[prefix + key] = value
  return out


def help_text(cfg, path, doc: str) -> str:
  """`doc`, then every field of `cfg` with its value (the defaults of the config file at `path`)."""
  rows = [f"  --config.{k}={v!r}" for k, v in fields(cfg).items()]
  return (f"{doc.rstrip()}\n\nFlags: {FLAGS_HELP}.\nShipped configs: {', '.join(shipped())}\n\n"
          f"Fields and their defaults in {path}:\n" + "\n".join(rows))


# ----------------------------------------------------------------------------------------------------------------
# The command line.


def _scan(argv) -> tuple[str | None, bool, list[str]]:
  """(the --config value, whether help was asked, the --config.FIELD names) without parsing values."""
  config, wants_help, names = None, False, []
  for i, arg in enumerate(argv):
    name, eq, value = arg.partition("=")
    if name in ("-h", "--help", "--helpfull", "-help"):
      wants_help = True
    elif name in ("--config", "-config"):
      if not eq and i + 1 >= len(argv):
        raise ConfigError(f"{name}: missing value (a config file)")
      config = value if eq else argv[i + 1]
    elif name.startswith(("--config.", "-config.")):
      names.append(name.split("config.", 1)[1])
    elif name in ("--workdir", "-workdir"):
      if not eq and i + 1 >= len(argv):
        raise ConfigError(f"{name}: missing value (a folder)")
    elif not (i and argv[i - 1] in ("--config", "-config", "--workdir", "-workdir")) and not (
        i and argv[i - 1].startswith(("--config.", "-config.")) and "=" not in argv[i - 1]):
      raise ConfigError(f"{arg}: unknown argument (use {FLAGS_HELP})")
  return config, wants_help, names


def check_fields(cfg, names) -> None:
  """An unknown --config.FIELD is an error naming the close matches (the config is locked: no new fields)."""
  known = fields(cfg)
  groups = {k.rsplit(".", i)[0] for k in known for i in range(1, k.count(".") + 1)}
  for name in names:
    if name in known or name in groups:
      continue
    close = difflib.get_close_matches(name, list(known), n=4, cutoff=0.6)
    hint = f"; did you mean {', '.join(close)}?" if close else f"; --help lists the {len(known)} fields"
    raise ConfigError(f"--config.{name}: unknown config field{hint}")


def parse(argv, *, doc: str = "", recipe=hardware_recipe) -> tuple[ml_collections.ConfigDict, str | None, str]:
  """--config PATH, --workdir DIR, --config.FIELD=VALUE -> (locked ConfigDict, workdir or None, what was chosen).

  Without --config, `recipe()` names the config file and why (the third value is then a one-line note, else "").
  --help prints `doc` and every field with its default, then exits (SystemExit 0).
  """
  from absl import flags
  from ml_collections import config_flags
  argv = list(argv)
  config, wants_help, names = _scan(argv)
  note = ""
  if config is None:
    if wants_help:
      config = CONFIG_DIR / "base.py"
    else:
      name, why = recipe()
      config, note = CONFIG_DIR / name, f"recipe: configs/{name}, for {why} (--config PATH picks another)"
  path = resolve(config)
  cfg = load(path)
  if wants_help:
    print(help_text(cfg, path, doc))
    raise SystemExit(0)
  check_fields(cfg, names)
  argv = [a for i, a in enumerate(argv)  # --config PATH -> --config=RESOLVED (found from any directory)
          if not (a in ("--config", "-config") or a.startswith(("--config=", "-config=")) or
                  (i and argv[i - 1] in ("--config", "-config")))]
  prog_argv = ["train", f"--config={path}", *argv]
  fv = flags.FlagValues()
  try:
    with warnings.catch_warnings():  # config_flags loads the file with the deprecated load_module()
      warnings.simplefilter("ignore", DeprecationWarning)
      config_flags.DEFINE_config_file("config", str(path), "config file", flag_values=fv, lock_config=True,
                                      sys_argv=prog_argv)
      flags.DEFINE_string("workdir", None, "training directory (default: the config's workdir)", flag_values=fv)
      rest = fv(prog_argv)
  except (flags.Error, AttributeError, KeyError, TypeError, ValueError) as e:
    raise ConfigError(" ".join(str(e).replace("\n", " ").split())) from None
  if len(rest) > 1:
    raise ConfigError(f"{rest[1]}: unexpected argument (use {FLAGS_HELP})")
  return fv.config, fv.workdir, note
