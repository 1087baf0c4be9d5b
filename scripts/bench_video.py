"""Video end to end against ffmpeg's own bicubic upscale, paired, plus the streaming latency; writes one JSON.

    python scripts/bench_video.py --json docs/bench/video_e2e.json                 # 30 s clip, medium + veryfast
    python scripts/bench_video.py --seconds 5 --rounds 1 --presets veryfast --no-stream   # a quick look
    python scripts/bench_video.py --method native-bf16 --json docs/bench/video_e2e_native_bf16.json  # AMX CPUs
    python scripts/bench_video.py --crf 23 --rounds 1 --json docs/bench/video_e2e_crf23.json  # ffmpeg's default CRF

For each libx264 preset P and each round: `python -m espcn_jax.upscale clip.mp4 -o ours.mp4 --preset P --verbose`
and `ffmpeg -i clip.mp4 -vf scale=W:H:flags=bicubic -c:v libx264 -preset P ff.mp4` (imageio-ffmpeg's binary), one
right after the other (the order alternates between rounds, so a machine that gets busier or quieter favours
neither), wall time of each process. ffmpeg runs twice: as written (libx264's default CRF 23) and with our CRF
(`-crf 10`, what `upscale` asks libx264 for by default: imageio-ffmpeg's quality 8; or `--crf N`, given to both), so
the encoders do the same work; the ratio at the same CRF is the fair one. CPU seconds (user + sys of each command and the ffmpeg it waits for) are
recorded too: on a shared machine they depend less on the other load than wall time, and on an idle one where
both keep every core busy, their ratio is about the wall-time ratio. The JSON keeps every time, our per-stage table, the file sizes, and the quality of
each encoded output: PSNR of sampled decoded frames against the frames before encoding (ours: the net's Y'CbCr
planes, recomputed; ffmpeg's: its bicubic frames). The clip comes from scripts/make_demo_clip.py.
Streaming: the first `--stream-seconds` of the clip as y4m, fed to `upscale - -o -` at the clip's frame rate;
latency of each frame = when its upscaled frame was read back - when it was written.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import pathlib
import platform
import resource
import subprocess
import sys
import threading
import time

import numpy as np

REPO = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from espcn_jax import atomic_io, plane_net, video, y4m  # noqa: E402  (the checkout's copy)

DEFAULT_CRF = 10  # imageio-ffmpeg's quality 8 (video.upscale_video's default) is libx264's -crf int((1 - 0.8) * 51)
ENV = dict(os.environ, JAX_PLATFORMS="cpu", TF_CPP_MIN_LOG_LEVEL="2")


def _ffmpeg():
  import imageio_ffmpeg  # pylint: disable=import-outside-toplevel
  return imageio_ffmpeg.get_ffmpeg_exe()


def _timed(cmd) -> tuple[float, float, str]:
  """(wall s, CPU s of the process and the ones it waited for (its ffmpeg), stderr)."""
  ru = resource.getrusage(resource.RUSAGE_CHILDREN)
  t = time.perf_counter()
  res = subprocess.run(cmd, capture_output=True, text=True, env=ENV, cwd=REPO)
  wall = time.perf_counter() - t
  ru2 = resource.getrusage(resource.RUSAGE_CHILDREN)
  if res.returncode != 0:
    raise RuntimeError(f"{' '.join(map(str, cmd))} failed: {res.stderr.strip()[-2000:]}")
  return wall, (ru2.ru_utime - ru.ru_utime) + (ru2.ru_stime - ru.ru_stime), res.stderr


def _stage_table(stderr: str) -> dict:
  """The `--verbose` table of `upscale` -> {stage: seconds}."""
  out, on = {}, False
  for line in stderr.splitlines():
    if line.startswith("stage ") and "ms/frame" in line:
      on = True
    elif on and line[:22].strip() and not line.startswith("wall"):
      parts = line[22:].split()
      out[line[:22].strip()] = float(parts[0])
    elif on and line.startswith("wall"):
      out["wall (overlapped)"] = float(line[22:].split()[0])
      on = False
  return out


def _planes(path, w, h, every: int):
  """Every `every`-th frame of `path` as yuv420p planes (Y (h, w), CbCr (2, h/2, w/2))."""
  cmd = [_ffmpeg(), "-v", "error", "-i", str(path), "-vf", f"select=not(mod(n\\,{every}))", "-fps_mode", "passthrough",
         "-f", "rawvideo", "-pix_fmt", "yuv420p", "-"]
  raw = np.frombuffer(subprocess.run(cmd, capture_output=True, check=True).stdout, np.uint8)
  n = w * h * 3 // 2
  return [(f[:w * h].reshape(h, w), f[w * h:].reshape(2, h // 2, w // 2)) for f in raw.reshape(-1, n)]


def _psnr(a_list, b_list) -> dict:
  se_y = np.mean([np.mean((a[0].astype(float) - b[0].astype(float)) ** 2) for a, b in zip(a_list, b_list)])
  se_c = np.mean([np.mean((a[1].astype(float) - b[1].astype(float)) ** 2) for a, b in zip(a_list, b_list)])
  db = lambda mse: round(float(10 * np.log10(255.0 ** 2 / max(mse, 1e-12))), 2)
  return {"frames": len(a_list), "psnr_y_db": db(se_y), "psnr_cbcr_db": db(se_c)}


def _quality(clip, ours, ff, ff_crf, w, h, r, every) -> dict:
  from espcn_jax import weights  # pylint: disable=import-outside-toplevel
  params, spec = weights.pretrained(r)
  net = plane_net.PlaneNet(params, spec)
  lr = _planes(clip, w, h, every)
  siting = video.chroma_siting(clip) or "center"  # as `upscale` resizes the clip's chroma
  want = [plane_net.upscale_planes(net, y[None], c[None], (2, 2), (r * h, r * w), siting=siting) for y, c in lr]
  want = [(y[0], c[0]) for y, c in want]
  out = {"ours_vs_net_frames": _psnr(_planes(ours, r * w, r * h, every), want)}
  cmd = [_ffmpeg(), "-v", "error", "-i", str(clip), "-vf", f"scale={r * w}:{r * h}:flags=bicubic", "-c:v", "ffv1",
         "-y", str(ff.with_suffix(".ref.mkv"))]
  subprocess.run(cmd, check=True)
  ref = _planes(ff.with_suffix(".ref.mkv"), r * w, r * h, every)
  out["ffmpeg_vs_its_bicubic_frames"] = _psnr(_planes(ff, r * w, r * h, every), ref)
  out["ffmpeg_same_crf_vs_its_bicubic_frames"] = _psnr(_planes(ff_crf, r * w, r * h, every), ref)
  ff.with_suffix(".ref.mkv").unlink()
  return out


def _stream_latency(clip, seconds: float, fps: float, method: str = "auto") -> dict:
  y4m_in = subprocess.run([_ffmpeg(), "-v", "error", "-i", str(clip), "-t", str(seconds), "-f", "yuv4mpegpipe", "-"],
                          capture_output=True, check=True).stdout
  header_end = y4m_in.index(b"\n") + 1
  hdr = y4m.parse_header(y4m_in[:header_end], "clip")
  size = hdr.frame_bytes() + len(b"FRAME\n")
  n = (len(y4m_in) - header_end) // size
  frames = [y4m_in[header_end + i * size:header_end + (i + 1) * size] for i in range(n)]
  t_start = time.perf_counter()
  proc = subprocess.Popen([sys.executable, "-m", "espcn_jax.upscale", "-", "-o", "-", "--quiet", "--verbose",
                           "--method", method],
                          stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=ENV, cwd=REPO)
  sent, got = [], []

  def feed():
    proc.stdin.write(y4m_in[:header_end])
    for i, f in enumerate(frames):
      delay = t_start + i / fps - time.perf_counter()  # real time: frame i is due at i / fps
      if delay > 0:
        time.sleep(delay)
      proc.stdin.write(f)
      proc.stdin.flush()
      sent.append(time.perf_counter())
    proc.stdin.close()

  feeder = threading.Thread(target=feed, daemon=True)
  feeder.start()
  out_hdr = y4m.read_header(proc.stdout, "upscale stdout")
  for _ in y4m.read_frames(proc.stdout, out_hdr, "upscale stdout"):
    got.append(time.perf_counter())
  err = proc.stderr.read().decode()
  proc.wait()
  feeder.join()
  lat = np.array(got) - np.array(sent[:len(got)])
  steady = lat[len(lat) // 4:]
  return {"frames_in": len(frames), "frames_out": len(got), "fed_at_fps": fps,
          "out_size": [out_hdr.width, out_hdr.height],
          "first_frame_s_after_start": round(got[0] - t_start, 3), "first_frame_latency_s": round(float(lat[0]), 3),
          "latency_s_steady": {"median": round(float(np.median(steady)), 3),
                               "p95": round(float(np.percentile(steady, 95)), 3), "max": round(float(steady.max()), 3)},
          "output_fps": round((len(got) - 1) / (got[-1] - got[0]), 2) if len(got) > 1 else None,
          "input_late_s_max": round(max(s - (t_start + i / fps) for i, s in enumerate(sent)), 3),
          "stages": _stage_table(err)}


def _machine() -> dict:
  lscpu = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
  get = lambda k: next((l.split(":", 1)[1].strip() for l in lscpu.splitlines() if l.startswith(k)), None)
  return {"cpu": get("Model name"), "cpus": os.cpu_count(), "python": platform.python_version(),
          "load_avg_at_start": os.getloadavg()}


def main(argv=None) -> int:
  p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  p.add_argument("--json", type=pathlib.Path, default=REPO / "docs" / "bench" / "video_e2e.json")
  p.add_argument("--workdir", type=pathlib.Path, default=pathlib.Path("/tmp/espcn_bench_video"))
  p.add_argument("--seconds", type=float, default=30.0, help="clip length (make_demo_clip.py --seconds)")
  p.add_argument("--presets", default="medium,veryfast")
  p.add_argument("--rounds", type=int, default=2)
  p.add_argument("--every", type=int, default=90, help="PSNR on every N-th frame")
  p.add_argument("--no-stream", action="store_true")
  p.add_argument("--stream-seconds", type=float, default=10.0)
  p.add_argument("--method", default="auto", help="upscale's --method (e.g. native-bf16 on an AMX CPU)")
  p.add_argument("--crf", type=int, default=None, help="upscale's --crf, and the same-CRF ffmpeg run's (None: 10)")
  args = p.parse_args(argv)
  args.workdir.mkdir(parents=True, exist_ok=True)
  clip = args.workdir / f"clip_{args.seconds:g}s.mp4"
  if not clip.exists():
    subprocess.run([sys.executable, str(REPO / "scripts" / "make_demo_clip.py"), str(clip), "--seconds",
                    str(args.seconds)], check=True)
  w, h, r, fps = 640, 360, 3, 30.0
  crf = DEFAULT_CRF if args.crf is None else args.crf
  result = {"date_utc": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "machine": _machine(), "clip": {"make": f"scripts/make_demo_clip.py --seconds {args.seconds:g}",
                                            "size": [w, h], "fps": fps, "frames": round(args.seconds * fps)},
            "commands": {"ours": f"python -m espcn_jax.upscale CLIP -o OUT.mp4 --preset P --quiet --verbose "
                                 f"--method {args.method}",
                         "ffmpeg": f"ffmpeg -i CLIP -vf scale={r * w}:{r * h}:flags=bicubic -c:v libx264 -preset P"
                                   f" [-crf {crf}] OUT.mp4"},
            "our_crf": crf,
            "presets": {}}
  for preset in args.presets.split(","):
    ours, ff, ff_crf = (args.workdir / f"{k}_{preset}.mp4" for k in ("ours", "ff", "ff_same_crf"))
    runs = []
    for rnd in range(args.rounds):
      cmd_ours = [sys.executable, "-m", "espcn_jax.upscale", str(clip), "-o", str(ours), "--preset", preset, "--quiet",
                  "--verbose", "--method", args.method] + (["--crf", str(args.crf)] if args.crf is not None else [])
      base = [_ffmpeg(), "-v", "error", "-y", "-i", str(clip), "-vf", f"scale={r * w}:{r * h}:flags=bicubic",
              "-c:v", "libx264", "-preset", preset]
      jobs = [("ours", cmd_ours), ("ffmpeg", base + [str(ff)]),
              ("ffmpeg_same_crf", base + ["-crf", str(crf), str(ff_crf)])]
      row = {"order": [], "load_avg": os.getloadavg()[0]}
      for name, cmd in (jobs if rnd % 2 == 0 else jobs[::-1]):
        wall, cpu, err = _timed(cmd)
        row[f"{name}_s"] = round(wall, 2)
        row[f"{name}_cpu_s"] = round(cpu, 2)
        row["order"].append(name)
        if name == "ours":
          row["stages_s"] = _stage_table(err)
        print(f"{preset} round {rnd}: {name} {wall:.1f} s", file=sys.stderr)
      row["ratio_vs_ffmpeg"] = round(row["ours_s"] / row["ffmpeg_s"], 2)
      row["ratio_vs_ffmpeg_same_crf"] = round(row["ours_s"] / row["ffmpeg_same_crf_s"], 2)
      row["cpu_ratio_vs_ffmpeg"] = round(row["ours_cpu_s"] / row["ffmpeg_cpu_s"], 2)
      row["cpu_ratio_vs_ffmpeg_same_crf"] = round(row["ours_cpu_s"] / row["ffmpeg_same_crf_cpu_s"], 2)
      runs.append(row)
    result["presets"][preset] = {
        "rounds": runs,
        "ratio_median": float(np.median([x["ratio_vs_ffmpeg"] for x in runs])),
        "ratio_same_crf_median": float(np.median([x["ratio_vs_ffmpeg_same_crf"] for x in runs])),
        "cpu_ratio_median": float(np.median([x["cpu_ratio_vs_ffmpeg"] for x in runs])),
        "cpu_ratio_same_crf_median": float(np.median([x["cpu_ratio_vs_ffmpeg_same_crf"] for x in runs])),
        "bytes": {"ours": ours.stat().st_size, "ffmpeg": ff.stat().st_size, "ffmpeg_same_crf": ff_crf.stat().st_size},
        "quality": _quality(clip, ours, ff, ff_crf, w, h, r, args.every)}
    print(json.dumps(result["presets"][preset], indent=1), file=sys.stderr)
  if not args.no_stream:
    result["stream"] = _stream_latency(clip, args.stream_seconds, fps, args.method)
    print(json.dumps(result["stream"], indent=1), file=sys.stderr)
  atomic_io.write_text(args.json, json.dumps(result, indent=1) + "\n")
  print(f"wrote {args.json}", file=sys.stderr)
  return 0


if __name__ == "__main__":
  sys.exit(main())
