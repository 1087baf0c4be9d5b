"""Exporting the net for deployment: ONNX (onnxruntime, OpenCV dnn), TF SavedModel, TFLite, OpenCV dnn_superres .pb,
each checked against `model.apply` by the runners below. The command line is `python -m espcn_jax.export`.

    export_formats.export(params, spec, "onnx", "espcn_x3.onnx")        # atomic write; returns the path
    err = export_formats.max_error(params, spec, "onnx", "espcn_x3.onnx", lr_NxHxWxC)

Graphs take any batch, height and width (docs/DEPLOY.md has the details and the pre/post-processing):
- ONNX: "lr" float32 NCHW (N, C, H, W) in [0, 1] -> "hr" (N, C, rH, rW): Conv, Tanh/Relu, then PS as DepthToSpace
  (ONNX "DCR" = our order, see ps.py) or as an exact one-hot stride-r ConvTranspose (for OpenCV <= 4.10).
- SavedModel / TFLite: signature "serving_default", "lr" NHWC -> {"hr": NHWC}; `model.apply` through jax2tf with
  symbolic shapes, or (`tf_builder="tfnn"`) tf.nn.conv2d + tf.nn.depth_to_space rebuilt from the weights.
- pb: the tfnn graph as a frozen TF1 GraphDef, which OpenCV's `dnn_superres.DnnSuperResImpl` reads (luma only).
Files are written atomically (espcn_jax.atomic_io: temp file or folder next to the target, then rename).
"""

from __future__ import annotations

import json
import pathlib

import numpy as np

from espcn_jax import atomic_io, model

FORMATS = ("onnx", "savedmodel", "tflite", "pb")
# What each format needs beyond the core install: (module, the extra that installs it).
REQUIRES = {"onnx": ("onnx", "onnx"), "savedmodel": ("tensorflow", "tf"), "tflite": ("tensorflow", "tf"),
            "pb": ("tensorflow", "tf")}


def check_requirements(fmt: str) -> None:
  """Raises ExportError (one line: what to install) when the package that writes `fmt` is missing."""
  module, extra = REQUIRES[fmt]
  try:
    __import__(module)
  except ImportError:
    raise ExportError(f"exporting to {fmt} needs {module}, which is not installed: "
                      f"pip install 'espcn-jax[{extra}]'") from None
PIXEL_SHUFFLES = ("depth_to_space", "conv_transpose")
TF_BUILDERS = ("jax2tf", "tfnn")
# Conv-1, Tanh-6, Relu-6, DepthToSpace-1 (DCR), ConvTranspose-1: opset 7 is the lowest onnxruntime supports.
DEFAULT_OPSET = 7
INPUT, OUTPUT = "lr", "hr"
SUFFIXES = {".onnx": "onnx", ".tflite": "tflite", ".pb": "pb"}


class ExportError(ValueError):
  """A problem with the export request or the output path; the message is one line naming the file."""


def _layers(params, spec: model.Spec):
  """[(kernel HWIO float32, bias float32)] for conv1..convL, checked against the spec."""
  out = []
  for name, (kernel_shape, bias_shape) in model.layer_shapes(spec).items():
    kernel = np.asarray(params[name]["kernel"], np.float32)
    bias = np.asarray(params[name]["bias"], np.float32)
    if kernel.shape != kernel_shape or bias.shape != bias_shape:
      raise ExportError(f"{name}: kernel {kernel.shape} / bias {bias.shape} do not match {spec}")
    out.append((kernel, bias))
  return out


def _describe(spec: model.Spec, layout: str) -> str:
  what = "luma Y (MATLAB BT.601, 16/255..235/255; pixel values for grayscale)" if spec.channels == 1 else "RGB"
  return (f"ESPCN x{spec.scale} (espcn-jax): input '{INPUT}' float32 {layout} {what} in [0, 1]; "
          f"output '{OUTPUT}' {layout} x{spec.scale}, not clipped")


# ---------------------------------------------------------------------------------------------------------- ONNX


def one_hot_shuffle_kernel(channels: int, r: int) -> np.ndarray:
  """ConvTranspose weight (C*r*r, C, r, r) that performs our PS: input channel (i*r + j)*C + c -> pixel (i, j) of c."""
  n = channels * r * r  # row k of the identity, read as [i, j, c], is 1 where (i*r + j)*C + c == k
  return np.eye(n, dtype=np.float32).reshape(n, r, r, channels).transpose(0, 3, 1, 2).copy()


def onnx_model(params, spec: model.Spec, *, opset: int = DEFAULT_OPSET, pixel_shuffle: str = "depth_to_space",
               meta: dict | None = None):
  """The network as an `onnx.ModelProto` (checked), NCHW with symbolic N, H, W."""
  import onnx
  from onnx import helper, numpy_helper

  if pixel_shuffle not in PIXEL_SHUFFLES:
    raise ExportError(f"unknown pixel_shuffle {pixel_shuffle!r}; choose from {', '.join(PIXEL_SHUFFLES)}")
  if not 7 <= opset <= onnx.defs.onnx_opset_version():
    raise ExportError(f"opset {opset} is not supported: use 7 .. {onnx.defs.onnx_opset_version()}")
  c, r = spec.channels, spec.scale
  act = {"tanh": "Tanh", "relu": "Relu"}[spec.activation]
  inits, nodes, x = [], [], INPUT
  layers = _layers(params, spec)
  for i, (kernel, bias) in enumerate(layers):
    name, k = f"conv{i + 1}", kernel.shape[0]
    inits.append(numpy_helper.from_array(np.ascontiguousarray(kernel.transpose(3, 2, 0, 1)), f"{name}.weight"))
    inits.append(numpy_helper.from_array(bias, f"{name}.bias"))
    nodes.append(helper.make_node("Conv", [x, f"{name}.weight", f"{name}.bias"], [name], name=name,
                                  kernel_shape=[k, k], pads=[k // 2] * 4, strides=[1, 1]))
    x = name
    if i < len(layers) - 1:
      nodes.append(helper.make_node(act, [x], [f"{name}.act"], name=f"{name}.act"))
      x = f"{name}.act"
  if pixel_shuffle == "depth_to_space":
    mode = {"mode": "DCR"} if opset >= 11 else {}  # before opset 11 DepthToSpace is always DCR
    nodes.append(helper.make_node("DepthToSpace", [x], [OUTPUT], name="ps", blocksize=r, **mode))
  else:
    inits.append(numpy_helper.from_array(one_hot_shuffle_kernel(c, r), "ps.weight"))
    nodes.append(helper.make_node("ConvTranspose", [x, "ps.weight"], [OUTPUT], name="ps",
                                  kernel_shape=[r, r], strides=[r, r]))
  graph = helper.make_graph(
      nodes, f"espcn_x{r}",
      [helper.make_tensor_value_info(INPUT, onnx.TensorProto.FLOAT, ["N", c, "H", "W"])],
      [helper.make_tensor_value_info(OUTPUT, onnx.TensorProto.FLOAT, ["N", c, f"{r}*H", f"{r}*W"])],
      initializer=inits)
  opsets = [helper.make_opsetid("", opset)]
  # IR 4 is the first that lets initializers stay out of the graph inputs (so runtimes treat them as constants).
  m = helper.make_model(graph, opset_imports=opsets, producer_name="espcn-jax",
                        ir_version=max(4, helper.find_min_ir_version_for(opsets)),
                        doc_string=_describe(spec, "NCHW"))
  props = {"espcn.spec": json.dumps(spec.to_dict()), "espcn.pixel_shuffle": pixel_shuffle,
           "espcn.layout": "NCHW", "espcn.meta": json.dumps(meta or {})}
  helper.set_model_props(m, props)
  onnx.checker.check_model(m, full_check=True)
  return m


# ------------------------------------------------------------------------------------------------------ TensorFlow


def tf_module(params, spec: model.Spec, *, tf_builder: str = "jax2tf", platforms=("cpu", "cuda")):
  """A `tf.Module` whose `serve` tf.function maps {"lr": (N, H, W, C)} to {"hr": (N, rH, rW, C)}."""
  import tensorflow as tf

  c = spec.channels
  sig = [tf.TensorSpec([None, None, None, c], tf.float32, name=INPUT)]
  if tf_builder == "jax2tf":
    from jax.experimental import jax2tf
    fn = jax2tf.convert(lambda lr: model.apply(params, lr, spec), polymorphic_shapes=[f"(b, h, w, {c})"],
                        native_serialization_platforms=tuple(platforms), with_gradient=False)
  elif tf_builder == "tfnn":
    layers = [(tf.constant(k), tf.constant(b)) for k, b in _layers(params, spec)]
    act = {"tanh": tf.math.tanh, "relu": tf.nn.relu}[spec.activation]

    def fn(lr):
      x = lr
      for i, (k, b) in enumerate(layers):
        x = tf.nn.bias_add(tf.nn.conv2d(x, k, strides=1, padding="SAME"), b)
        x = act(x) if i < len(layers) - 1 else x
      return tf.nn.depth_to_space(x, spec.scale)  # NHWC depth_to_space is our PS order
  else:
    raise ExportError(f"unknown tf_builder {tf_builder!r}; choose from {', '.join(TF_BUILDERS)}")

  module = tf.Module()
  module.serve = tf.function(lambda lr: {OUTPUT: tf.identity(fn(lr), name=OUTPUT)}, input_signature=sig,
                             autograph=False)
  module.spec_json = tf.Variable(json.dumps(spec.to_dict()), trainable=False, name="spec_json")
  return module


def tflite_bytes(params, spec: model.Spec, *, tf_builder: str = "jax2tf") -> bytes:
  """A float32 TFLite flatbuffer with dynamic N, H, W (builtin ops only)."""
  import tensorflow as tf
  module = tf_module(params, spec, tf_builder=tf_builder, platforms=("cpu",))
  converter = tf.lite.TFLiteConverter.from_concrete_functions([module.serve.get_concrete_function()], module)
  converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
  return converter.convert()


def frozen_graph_bytes(params, spec: model.Spec) -> bytes:
  """The tfnn graph as a frozen TF1 GraphDef (constants inline), for OpenCV's TensorFlow importer / DnnSuperResImpl."""
  import tensorflow as tf
  from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2
  if spec.channels != 1:
    raise ExportError(f"pb: OpenCV's DnnSuperResImpl upscales luma only; this model has {spec.channels} channels")
  module = tf_module(params, spec, tf_builder="tfnn")
  graph_def = convert_variables_to_constants_v2(module.serve.get_concrete_function()).graph.as_graph_def()
  for node in graph_def.node:  # OpenCV cannot read TF's compressed constants (e.g. all-zero biases): store them in full
    if node.op == "Const":
      node.attr["value"].tensor.CopyFrom(tf.make_tensor_proto(tf.make_ndarray(node.attr["value"].tensor)))
  return graph_def.SerializeToString()


# ------------------------------------------------------------------------------------------------- atomic writing


def check_output(path: pathlib.Path, fmt: str) -> None:
  """Fails early, with one line, when `path` cannot receive a `fmt` export."""
  if fmt == "savedmodel":
    if path.is_file():
      raise ExportError(f"{path}: exists and is a file; a SavedModel is a folder")
    if path.is_dir() and any(path.iterdir()) and not (path / "saved_model.pb").is_file():
      raise ExportError(f"{path}: exists and is not a SavedModel folder; refusing to replace it")
  elif path.is_dir():
    raise ExportError(f"{path}: is a folder; give a file name for the {fmt} export")
  existing = next(p for p in (path.parent, *path.parent.parents) if p.exists())
  if not existing.is_dir():
    raise ExportError(f"{path}: cannot write there ({existing} is a file, not a folder)")
  try:
    atomic_io.check_writable(path)
  except OSError as e:
    raise ExportError(f"{path}: cannot write there ({e.strerror or e})") from e


def export(params, spec: model.Spec, fmt: str, path, *, opset: int = DEFAULT_OPSET,
           pixel_shuffle: str = "depth_to_space", tf_builder: str = "jax2tf", meta: dict | None = None) -> pathlib.Path:
  """Writes `params` as `fmt` (one of FORMATS) to `path`, atomically. Returns the path."""
  if fmt not in FORMATS:
    raise ExportError(f"{path}: unknown format {fmt!r}; choose from {', '.join(FORMATS)}")
  path = pathlib.Path(path)
  check_output(path, fmt)
  try:
    check_requirements(fmt)
    if fmt == "onnx":
      proto = onnx_model(params, spec, opset=opset, pixel_shuffle=pixel_shuffle, meta=meta)
      atomic_io.write_bytes(path, proto.SerializeToString())
    elif fmt == "tflite":
      atomic_io.write_bytes(path, tflite_bytes(params, spec, tf_builder=tf_builder))
    elif fmt == "pb":
      atomic_io.write_bytes(path, frozen_graph_bytes(params, spec))
    else:
      import tensorflow as tf
      module = tf_module(params, spec, tf_builder=tf_builder)
      with atomic_io.replacing_dir(path) as tmp:
        tf.saved_model.save(module, str(tmp), signatures={"serving_default": module.serve.get_concrete_function()})
  except ExportError as e:  # name the file in the one-line message
    raise ExportError(f"{path}: {e}") from e
  return path


# --------------------------------------------------------------------------------------------- running the exports


def run_onnxruntime(path, lr_NxCxHxW, session=None):
  import onnxruntime as ort
  session = session or ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
  return session.run([OUTPUT], {INPUT: np.ascontiguousarray(lr_NxCxHxW, np.float32)})[0]


def run_opencv(path, lr_NxCxHxW, net=None):
  import cv2
  net = net if net is not None else cv2.dnn.readNet(str(path))
  net.setInput(np.ascontiguousarray(lr_NxCxHxW, np.float32))
  return net.forward()


def run_savedmodel(path, lr_NxHxWxC):
  import tensorflow as tf
  serve = tf.saved_model.load(str(path)).signatures["serving_default"]
  return serve(**{INPUT: tf.constant(lr_NxHxWxC, tf.float32)})[OUTPUT].numpy()


def run_frozen_graph(path, lr_NxHxWxC):
  import tensorflow as tf
  graph_def = tf.compat.v1.GraphDef.FromString(pathlib.Path(path).read_bytes())
  fn = tf.compat.v1.wrap_function(lambda: tf.compat.v1.import_graph_def(graph_def, name=""), [])
  fn = fn.prune(fn.graph.get_tensor_by_name(f"{INPUT}:0"), fn.graph.get_tensor_by_name(f"{OUTPUT}:0"))
  return fn(tf.constant(lr_NxHxWxC, tf.float32)).numpy()


def tflite_interpreter(path=None, content: bytes | None = None):
  """LiteRT's interpreter (`ai-edge-litert`) when installed, else TensorFlow's `tf.lite.Interpreter`."""
  kw = {"model_content": content} if content is not None else {"model_path": str(path)}
  try:
    from ai_edge_litert.interpreter import Interpreter
  except ImportError:
    import warnings
    import tensorflow as tf
    with warnings.catch_warnings():
      warnings.simplefilter("ignore")
      return tf.lite.Interpreter(**kw)
  return Interpreter(**kw)


def run_tflite(path, lr_NxHxWxC, interpreter=None):
  it = interpreter or tflite_interpreter(path)
  runner = it.get_signature_runner("serving_default")
  return runner(**{INPUT: np.ascontiguousarray(lr_NxHxWxC, np.float32)})[OUTPUT]


def max_error(params, spec: model.Spec, fmt: str, path, lr_NxHxWxC) -> float:
  """max |export(lr) - model.apply(lr)| for an exported file, run by its runtime (onnxruntime for ONNX)."""
  import jax
  with jax.default_matmul_precision("highest"):  # full float32 on GPUs too (no TF32), like the exported runtimes
    want = np.asarray(model.apply(params, lr_NxHxWxC, spec))
  if fmt == "onnx":
    got = run_onnxruntime(path, lr_NxHxWxC.transpose(0, 3, 1, 2)).transpose(0, 2, 3, 1)
  elif fmt == "savedmodel":
    got = run_savedmodel(path, lr_NxHxWxC)
  elif fmt == "pb":
    got = run_frozen_graph(path, lr_NxHxWxC)
  else:
    got = run_tflite(path, lr_NxHxWxC)
  if got.shape != want.shape:
    raise ExportError(f"{path}: output shape {got.shape}, expected {want.shape}")
  return float(np.abs(got - want).max())
