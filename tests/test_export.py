"""Deployment export: ONNX (onnxruntime, OpenCV dnn), SavedModel and TFLite reproduce `model.apply` on real images."""

import json
import pathlib

import jax
import numpy as np
import pytest
from PIL import Image

from espcn_jax import export, export_formats, model, weights

DATA = pathlib.Path(__file__).resolve().parents[1] / "data"
onnx = pytest.importorskip("onnx", reason="onnx is not installed (pip install onnx)")


def _luma(rgb_u8):
  """MATLAB rgb2ycbcr Y in [0, 1] (16/255 .. 235/255)."""
  rgb = rgb_u8.astype(np.float64) / 255.0
  return ((16.0 + 65.481 * rgb[..., 0] + 128.553 * rgb[..., 1] + 24.966 * rgb[..., 2]) / 255.0).astype(np.float32)


def _crops(img_HxWxC, sizes):
  """Batches (2, h, w, C) of two different crops of a real image, one batch per (h, w)."""
  return [np.stack([img_HxWxC[10:10 + h, 20:20 + w], img_HxWxC[-h - 5:-5, -w - 7:-7]]) for h, w in sizes]


SIZES = [(36, 44), (53, 29)]  # two (H, W) through one exported file


@pytest.fixture(scope="module")
def images():
  bird = np.asarray(Image.open(DATA / "Set5" / "butterfly.png").convert("RGB"))
  head = np.asarray(Image.open(DATA / "Set5" / "head.png").convert("RGB"))
  return {1: _crops(_luma(bird)[..., None], SIZES), 3: _crops(head.astype(np.float32) / 255.0, SIZES)}


def _params(channels, seed):
  spec = model.Spec(scale=3, channels=channels)
  params = model.init(jax.random.PRNGKey(seed), spec)
  rng = np.random.default_rng(seed)  # nonzero biases, so that their channel order is checked too
  params = {k: {"kernel": np.asarray(v["kernel"]), "bias": rng.normal(0, 0.1, v["bias"].shape).astype(np.float32)}
            for k, v in params.items()}
  return params, spec


@pytest.fixture(scope="module")
def nets():
  return {1: _params(1, 0), 3: _params(3, 1)}


@pytest.fixture(scope="module")
def onnx_files(nets, tmp_path_factory):
  d = tmp_path_factory.mktemp("onnx")
  return {(c, ps): export_formats.export(*nets[c], "onnx", d / f"x3_c{c}_{ps}.onnx", pixel_shuffle=ps)
          for c in (1, 3) for ps in export_formats.PIXEL_SHUFFLES}


def _want(nets, c, lr_NxHxWxC):
  params, spec = nets[c]
  return np.asarray(model.apply(params, lr_NxHxWxC, spec))


def _nchw(x):
  return np.ascontiguousarray(x.transpose(0, 3, 1, 2))


# ---------------------------------------------------------------------------------------------------------- ONNX


def test_onnx_graph_is_conv_act_depth_to_space(nets, onnx_files):
  m = onnx.load(str(onnx_files[(3, "depth_to_space")]))
  assert [n.op_type for n in m.graph.node] == ["Conv", "Tanh", "Conv", "Tanh", "Conv", "DepthToSpace"]
  assert m.opset_import[0].version == export_formats.DEFAULT_OPSET == 7
  dims = [d.dim_param or d.dim_value for d in m.graph.input[0].type.tensor_type.shape.dim]
  assert dims == ["N", 3, "H", "W"]
  props = {p.key: p.value for p in m.metadata_props}
  assert model.Spec.from_dict(json.loads(props["espcn.spec"])) == nets[3][1]
  relu = export_formats.onnx_model(nets[1][0], model.Spec(scale=3, activation="relu"), opset=11)
  assert [n.op_type for n in relu.graph.node][1] == "Relu"
  assert [a.s for a in relu.graph.node[-1].attribute if a.name == "mode"] == [b"DCR"]


@pytest.mark.parametrize("pixel_shuffle", export_formats.PIXEL_SHUFFLES)
@pytest.mark.parametrize("c", [1, 3])
def test_onnxruntime_matches_apply_on_real_images(nets, onnx_files, images, c, pixel_shuffle):
  ort = pytest.importorskip("onnxruntime", reason="onnxruntime is not installed")
  sess = ort.InferenceSession(str(onnx_files[(c, pixel_shuffle)]), providers=["CPUExecutionProvider"])
  for lr in images[c]:  # two sizes, one session
    got = sess.run(None, {"lr": _nchw(lr)})[0]
    want = _nchw(_want(nets, c, lr))
    assert got.shape == want.shape == (2, c, 3 * lr.shape[1], 3 * lr.shape[2])
    np.testing.assert_allclose(got, want, atol=1e-5, rtol=0)


def test_wrong_depth_to_space_mode_is_caught(nets, images):
  """PyTorch's CRD order instead of our DCR gives a different RGB image (so the tests above check the order)."""
  ort = pytest.importorskip("onnxruntime", reason="onnxruntime is not installed")
  for c in (1, 3):
    m = export_formats.onnx_model(*nets[c], opset=11)
    [mode] = [a for a in m.graph.node[-1].attribute if a.name == "mode"]
    mode.s = b"CRD"
    lr = images[c][0]
    sess = ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"])
    got = sess.run(None, {"lr": _nchw(lr)})[0]
    err = np.abs(got - _nchw(_want(nets, c, lr))).max()
    assert (err > 0.05) if c == 3 else (err < 1e-5)  # the orders agree for one channel only


def _cv2_net(path):
  cv2 = pytest.importorskip("cv2", reason="opencv-python-headless is not installed")
  if "depth_to_space" in path.name and tuple(int(v) for v in cv2.__version__.split(".")[:2]) < (4, 11):
    pytest.skip(f"OpenCV {cv2.__version__} imports DepthToSpace only for a fixed input size (use conv_transpose)")
  return cv2, cv2.dnn.readNet(str(path))


@pytest.mark.parametrize("pixel_shuffle", export_formats.PIXEL_SHUFFLES)
@pytest.mark.parametrize("c", [1, 3])
def test_opencv_dnn_matches_apply_on_real_images(nets, onnx_files, images, c, pixel_shuffle):
  _, net = _cv2_net(onnx_files[(c, pixel_shuffle)])
  for lr in images[c]:  # two sizes, one net
    net.setInput(_nchw(lr))
    got = net.forward()
    np.testing.assert_allclose(got, _nchw(_want(nets, c, lr)), atol=1e-5, rtol=0)


def test_opencv_dnn_grayscale_image(nets, onnx_files):
  """A grayscale file read by OpenCV, blobFromImage(1/255) -> net: the pixel values themselves are the luma."""
  cv2, net = _cv2_net(onnx_files[(1, "depth_to_space")])
  gray_u8 = cv2.imread(str(DATA / "Set14" / "bridge.png"), cv2.IMREAD_GRAYSCALE)[100:150, 200:262]
  net.setInput(cv2.dnn.blobFromImage(gray_u8, scalefactor=1.0 / 255.0))
  got = net.forward()[0, 0]
  want = _want(nets, 1, gray_u8[None, :, :, None].astype(np.float32) / 255.0)[0, :, :, 0]
  assert got.shape == (150, 186)
  np.testing.assert_allclose(got, want, atol=1e-5, rtol=0)


# ------------------------------------------------------------------------------------------------------ TF / TFLite


@pytest.fixture(scope="module")
def tf():
  return pytest.importorskip("tensorflow", reason="tensorflow is not installed")


@pytest.mark.parametrize("c", [1, 3])
def test_savedmodel_matches_apply_on_real_images(nets, images, tmp_path, tf, c):
  path = export_formats.export(*nets[c], "savedmodel", tmp_path / "sm")
  serve = tf.saved_model.load(str(path)).signatures["serving_default"]
  for lr in images[c]:
    got = serve(lr=tf.constant(lr))["hr"].numpy()
    np.testing.assert_allclose(got, _want(nets, c, lr), atol=1e-5, rtol=0)
  # Re-exporting over an existing SavedModel replaces it (atomically), nothing else is left next to it.
  export_formats.export(*nets[c], "savedmodel", path, tf_builder="tfnn")
  assert sorted(p.name for p in tmp_path.iterdir()) == ["sm"]
  got = export_formats.run_savedmodel(path, images[c][1])
  np.testing.assert_allclose(got, _want(nets, c, images[c][1]), atol=1e-5, rtol=0)


@pytest.mark.parametrize("tf_builder", export_formats.TF_BUILDERS)
@pytest.mark.parametrize("c", [1, 3])
def test_tflite_matches_apply_on_real_images(nets, images, tmp_path, tf, c, tf_builder):
  path = export_formats.export(*nets[c], "tflite", tmp_path / "m.tflite", tf_builder=tf_builder)
  interpreter = export_formats.tflite_interpreter(path)
  for lr in images[c]:  # two sizes, one interpreter
    got = export_formats.run_tflite(path, lr, interpreter)
    np.testing.assert_allclose(got, _want(nets, c, lr), atol=1e-5, rtol=0)
  ops = {d["op_name"] for d in interpreter._get_ops_details()}
  assert ("DEPTH_TO_SPACE" in ops) == (tf_builder == "tfnn") and "FLEX" not in str(ops)


def test_frozen_pb_for_opencv_dnn_superres(nets, images, tmp_path, tf):
  """Zero biases (as after model.init) must be stored in full: OpenCV's TF importer rejects compressed constants."""
  params, spec = nets[1]
  params = dict(params, conv3={"kernel": params["conv3"]["kernel"], "bias": np.zeros(9, np.float32)})
  path = export_formats.export(params, spec, "pb", tmp_path / "ESPCN_x3.pb")
  graph_def = tf.compat.v1.GraphDef.FromString(path.read_bytes())
  consts = [n.attr["value"].tensor for n in graph_def.node if n.op == "Const"]
  assert len(consts) == 6 and all(len(t.tensor_content) == 4 * np.prod([d.size for d in t.tensor_shape.dim])
                                  for t in consts)
  assert [n.op for n in graph_def.node if n.op not in ("Const", "Identity")] == \
      ["Placeholder", "Conv2D", "BiasAdd", "Tanh", "Conv2D", "BiasAdd", "Tanh", "Conv2D", "BiasAdd", "DepthToSpace"]
  for lr in images[1]:
    got = export_formats.run_frozen_graph(path, lr)
    np.testing.assert_allclose(got, np.asarray(model.apply(params, lr, spec)), atol=1e-5, rtol=0)
  with pytest.raises(export_formats.ExportError, match="luma only"):
    export_formats.frozen_graph_bytes(*nets[3])


def test_opencv_dnn_superres_runs_the_pb(nets, onnx_files, tmp_path):
  """DnnSuperResImpl (opencv-contrib) = OpenCV-YCrCb Y -> our net -> merge with bilinear CrCb, to the uint8 level."""
  cv2 = pytest.importorskip("cv2", reason="opencv is not installed")
  if not hasattr(cv2, "dnn_superres"):
    pytest.skip("cv2.dnn_superres needs opencv-contrib-python(-headless)")
  path = export_formats.export(*nets[1], "pb", tmp_path / "ESPCN_x3.pb")
  img = cv2.imread(str(DATA / "Set5" / "bird.png"))[40:100, 30:110]
  sr = cv2.dnn_superres.DnnSuperResImpl_create()
  sr.readModel(str(path))
  sr.setModel("espcn", 3)
  got = sr.upsample(img)
  ycc = cv2.cvtColor(img, cv2.COLOR_BGR2YCrCb).astype(np.float32) / 255.0
  y = np.asarray(model.apply(nets[1][0], ycc[None, :, :, :1], nets[1][1]))[0, :, :, 0]
  crcb = [cv2.resize(ycc[..., i], None, fx=3, fy=3) for i in (1, 2)]
  want = cv2.cvtColor(np.clip(np.rint(np.stack([y, *crcb], -1) * 255), 0, 255).astype(np.uint8), cv2.COLOR_YCrCb2BGR)
  assert np.abs(got.astype(int) - want).max() <= 1


# ------------------------------------------------------------------------------------------------------------- CLI


@pytest.fixture
def weight_file(nets, tmp_path):
  return weights.save(tmp_path / "w.safetensors", *nets[1], {"note": "test"})


def test_cli_exports_and_verifies(weight_file, tmp_path, capsys):
  out = tmp_path / "sub" / "x3.onnx"
  assert export.main(["--weights", str(weight_file), "-o", str(out)]) == 0  # format from the suffix
  text = capsys.readouterr().out
  assert f"wrote {out} (onnx, x3" in text and "verified: max |onnx - model.apply|" in text
  assert sorted(p.name for p in out.parent.iterdir()) == ["x3.onnx"]  # no temp files left
  assert onnx.load(str(out)).graph.node[-1].op_type == "DepthToSpace"


def test_cli_benchmark_times_the_runtimes_side_by_side(weight_file, tmp_path, capsys):
  assert export.main(["--weights", str(weight_file), "-o", str(tmp_path / "x3.onnx"), "--no-verify",
                      "--benchmark", "24x16"]) == 0
  text = capsys.readouterr().out
  assert "LR 24x16 -> 72x48" in text and "verified" not in text
  rows = {line.split()[0]: float(line.split()[-1]) for line in text.splitlines()[2:]}
  assert rows["espcn-jax"] > 0 and (rows.get("onnxruntime", 1) > 0)


def _one_line_error(capsys, argv, *needles, code=2):
  assert export.main(argv) == code
  err = capsys.readouterr().err.strip()
  assert len(err.splitlines()) == 1 and err.startswith("error: "), err
  for n in needles:
    assert n in err, err


def test_cli_bad_input_gives_one_line_errors(weight_file, tmp_path, capsys):
  w = str(weight_file)
  _one_line_error(capsys, ["--weights", w, "--format", "caffe", "-o", str(tmp_path / "m.caffemodel")],
                  "m.caffemodel", "unknown format")
  _one_line_error(capsys, ["--weights", str(tmp_path / "nope.safetensors"), "-o", str(tmp_path / "m.onnx")],
                  "nope.safetensors", "no such weight file", code=1)
  blocker = tmp_path / "a_file"
  blocker.write_text("x")
  _one_line_error(capsys, ["--weights", w, "-o", str(blocker / "sub" / "m.onnx")], "m.onnx", "a_file is a file")
  _one_line_error(capsys, ["--variant", "no_such_variant", "-o", str(tmp_path / "m.onnx")], "no shipped weights", code=1)
  (tmp_path / "photos").mkdir()
  (tmp_path / "photos" / "keep.jpg").write_text("x")
  _one_line_error(capsys, ["--weights", w, "--format", "savedmodel", "-o", str(tmp_path / "photos")],
                  "photos", "not a SavedModel")
  assert (tmp_path / "photos" / "keep.jpg").is_file()
  _one_line_error(capsys, ["--weights", w, "--scale", "2", "-o", str(tmp_path / "m.onnx")], "x3", "--scale 2")
  _one_line_error(capsys, ["--weights", w, "--opset", "5", "-o", str(tmp_path / "m.onnx")], "m.onnx", "opset 5", code=1)
  rgb = weights.save(tmp_path / "rgb.safetensors", *_params(3, 2))
  _one_line_error(capsys, ["--weights", str(rgb), "-o", str(tmp_path / "m.pb")], "m.pb", "luma only", code=1)
  _one_line_error(capsys, ["--weights", w, "--benchmark", "640", "-o", str(tmp_path / "m.onnx")], "640")
  assert not (tmp_path / "m.onnx").exists()


def test_one_hot_shuffle_kernel_is_our_depth_to_space():
  from espcn_jax import ps
  c, r = 3, 2
  x = np.random.default_rng(0).random((1, 4, 5, c * r * r), dtype=np.float32)
  w = export_formats.one_hot_shuffle_kernel(c, r)  # (C*r*r, C, r, r):
  # out[r*h+i, r*w+j, c] = sum_k x[h, w, k] w[k, c, i, j]
  got = np.einsum("nhwk,kcij->nhiwjc", x, w).reshape(1, 4 * r, 5 * r, c)
  np.testing.assert_array_equal(got, np.asarray(ps.depth_to_space(x, r)))


def test_hr_space_nets_are_refused_in_one_line(tmp_path, capsys):
  """The exporters write ESPCN's graph (convs + depth-to-space); a SRCNN weight file is refused, nothing written."""
  spec = model.Spec(scale=3, kind="srcnn", features=(4, 4), kernel_sizes=(9, 5, 5), activation="relu")
  w = weights.save(tmp_path / "srcnn.safetensors", model.init(jax.random.PRNGKey(0), spec), spec)
  out = tmp_path / "srcnn.onnx"
  assert export.main(["--weights", str(w), "-o", str(out)]) == 1
  err = capsys.readouterr().err
  assert err.count("\n") == 1 and "holds a srcnn net" in err and not out.exists()


def test_best_x3_export_has_the_graph_of_the_table1_export_and_runs_in_opencv(tmp_path, images):
  """Issue #17: the default (better-trained) x3 weights deploy as exactly the same ONNX graph as the T91 weights."""
  assert weights.default_variant(3) == "best"
  files = {v: export_formats.export(*weights.pretrained(3, v), "onnx", tmp_path / f"{v}.onnx")
           for v in ("best", "t91")}
  graphs = {v: onnx.load(str(p)).graph for v, p in files.items()}

  def shape(g):
    return ([(n.op_type, list(n.input), list(n.output), [(a.name, onnx.helper.get_attribute_value(a))
                                                         for a in n.attribute]) for n in g.node],
            [(i.name, tuple(i.dims)) for i in g.initializer],
            [str(x.type) for x in list(g.input) + list(g.output)])

  assert shape(graphs["best"]) == shape(graphs["t91"])
  best_w = {i.name: onnx.numpy_helper.to_array(i) for i in graphs["best"].initializer}
  t91_w = {i.name: onnx.numpy_helper.to_array(i) for i in graphs["t91"].initializer}
  assert any(not np.array_equal(best_w[k], t91_w[k]) for k in best_w)  # other weights, same graph
  _, net = _cv2_net(files["best"])
  lr = images[1][0]
  net.setInput(_nchw(lr))
  params, spec = weights.pretrained(3)
  np.testing.assert_allclose(net.forward(), _nchw(np.asarray(model.apply(params, lr, spec))), atol=1e-5, rtol=0)
