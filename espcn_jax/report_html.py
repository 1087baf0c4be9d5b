"""The report's HTML: one self-contained page (inline CSS, JS and SVG; no network), charts drawn as SVG here.

`espcn_jax.report` computes what is shown and calls `page`; notebooks call `tiles_html` to show a comparison inline.
Plain data in (dicts, lists, numpy arrays), strings out.
"""

from __future__ import annotations

import base64
import html
import io
import itertools
import math

import numpy as np

COLOURS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#17becf", "#8c564b", "#e377c2")
ERROR_GRADIENT = "linear-gradient(to right, #000004, #57106e, #bc3754, #f98e09, #fcffa4)"
_ids = itertools.count()

CSS = """
body { font: 14px/1.4 system-ui, sans-serif; margin: 1.5em auto; max-width: 1500px; padding: 0 1em; color: #222; }
h1 { font-size: 1.6em; } h2 { border-bottom: 1px solid #ccc; margin-top: 2em; } h3 { margin: 1.4em 0 .4em; }
table { border-collapse: collapse; margin: .5em 0; } td, th { padding: 3px 9px; border-bottom: 1px solid #e3e3e3; }
td.n, th.n { text-align: right; font-variant-numeric: tabular-nums; } th { background: #f4f4f4; }
table.sortable th { cursor: pointer; user-select: none; } table.sortable th:hover { background: #e6eefa; }
th[aria-sort=ascending]::after { content: " \\25B2"; } th[aria-sort=descending]::after { content: " \\25BC"; }
.errors { background: #fdecea; border: 1px solid #e0a19a; padding: .5em 1em; color: #8a1c12; }
.note { color: #555; } .better { color: #1a7f37; } .worse { color: #b42318; }
.ov { position: relative; display: inline-block; } .ov img { display: block; }
.box { position: absolute; border: 2px solid #ff2; outline: 1px solid #000; pointer-events: none; }
.charts { display: flex; flex-wrap: wrap; gap: 12px; } svg text { font: 11px system-ui, sans-serif; }
.key span { display: inline-block; margin-right: 1.2em; } .key i { display: inline-block; width: 18px; height: 3px;
  vertical-align: middle; margin-right: 4px; }
"""
# The comparison view's own rules (all under .tiles): a notebook gets only these with `tiles_html`.
TILES_CSS = """
.tiles { display: flex; flex-wrap: wrap; gap: 8px; align-items: flex-start; }
.tiles figure { margin: 0; } .tiles figcaption { font-size: 12px; text-align: center; max-width: 300px; }
.tiles img.px { image-rendering: pixelated; display: block; border: 1px solid #999; }
.tiles .legend { display: inline-block; width: 160px; height: 10px; vertical-align: middle; border: 1px solid #999; }
"""

JS = """
document.querySelectorAll("table.sortable").forEach(function (t) {
  var heads = t.tHead.rows[0].cells;
  Array.prototype.forEach.call(heads, function (th, i) {
    th.addEventListener("click", function () {
      var asc = th.getAttribute("aria-sort") !== "ascending";
      Array.prototype.forEach.call(heads, function (h) { h.removeAttribute("aria-sort"); });
      th.setAttribute("aria-sort", asc ? "ascending" : "descending");
      var key = function (r) {
        var c = r.cells[i], v = c.getAttribute("data-v"), n = parseFloat(v === null ? c.textContent : v);
        return isNaN(n) ? (v === null ? c.textContent : v) : n;
      };
      var body = t.tBodies[0], rows = Array.prototype.slice.call(body.rows);
      rows.sort(function (a, b) {
        var x = key(a), y = key(b);
        var c = (typeof x === "number" && typeof y === "number") ? (x < y ? -1 : x > y ? 1 : 0)
                                                                 : String(x).localeCompare(String(y));
        return asc ? c : -c;
      });
      rows.forEach(function (r) { body.appendChild(r); });
    });
  });
});
"""


def esc(x) -> str:
  return html.escape(str(x), quote=True)


def _num(v, digits: int) -> str:
  return "inf" if v == math.inf else f"{v:.{digits}f}"


def png_data_uri(arr) -> str:
  from PIL import Image
  buf = io.BytesIO()
  Image.fromarray(np.asarray(arr, np.uint8)).save(buf, format="PNG")
  return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _figures(tiles: dict, captions: dict) -> str:
  parts = []
  for label, src in tiles.items():
    lazy = ' loading="lazy"' if isinstance(src, str) else ""  # files: fetched when scrolled to (long pages)
    src = src if isinstance(src, str) else png_data_uri(src)
    cap = esc(label) + (f"<br>{esc(captions[label])}" if label in captions else "")
    parts.append(f'<figure><img class="px" src="{esc(src)}" alt="{esc(label)}"{lazy}><figcaption>{cap}</figcaption>'
                 f"</figure>")
  return "".join(parts)


def tiles_html(tiles: dict, captions: dict | None = None, error_scale: float | None = None) -> str:
  """The comparison view: {label: uint8 array (inlined as PNG) or an image path} -> HTML: the pictures in a row, the
  error maps ("error: <method>") under their methods. Carries its own CSS (only .tiles rules), so that it shows the
  same in a notebook (IPython.display.HTML)."""
  pics = {k: v for k, v in tiles.items() if not k.startswith("error: ")}
  errs = {k: v for k, v in tiles.items() if k.startswith("error: ")}
  out = f'<style>{TILES_CSS}</style><div class="tiles">{_figures(pics, captions or {})}</div>'
  if errs:
    width = next((v.shape[1] + 2 for v in pics.values() if not isinstance(v, str)), 240)
    cells = []
    for label in pics:
      key = f"error: {label}"
      cells.append(_figures({key: errs[key]}, {}) if key in errs else f'<figure style="width:{width}px"></figure>')
    if error_scale and not cells[0].startswith("<figure><img"):
      cells[0] = (f'<figure style="width:{width}px"><figcaption>error maps |Y - HR Y|:<br>0 <span class="legend" '
                  f'style="background:{ERROR_GRADIENT}"></span> &ge; {error_scale:g}<br>(levels of 255)'
                  f"</figcaption></figure>")
    out += f'<div class="tiles">{"".join(cells)}</div>'
  return out


# ----------------------------------------------------------------------------------------------------------------
# Tables.


def summary_table(datasets: list) -> str:
  """One row per data set and scale: images, PSNR / SSIM of every method, the paper's value and the difference."""
  methods = list(dict.fromkeys(m for d in datasets for m in d.methods))
  refs = [m for m in methods if any(m in d.references for d in datasets)]
  head = "<tr><th>data set</th><th class=n>scale</th><th class=n>images</th>" + "".join(
      f"<th class=n>{esc(m)}<br>PSNR</th><th class=n>SSIM</th>" for m in methods) + "".join(
      f"<th>paper, Table 1{f'<br>({esc(m)})' if len(refs) > 1 else ''}</th><th class=n>&Delta; paper</th>"
      for m in refs) + "</tr>"
  rows = []
  for d in datasets:
    cells = [f"<td>{esc(d.dataset)}</td><td class=n>x{d.scale}</td><td class=n>{len(d.rows)}</td>"]
    for m in methods:
      vals = [r["scores"][m] for r in d.rows if m in r["scores"]]
      if vals:
        cells.append(f"<td class=n>{_num(float(np.mean([v[0] for v in vals])), 2)}</td>"
                     f"<td class=n>{np.mean([v[1] for v in vals]):.4f}</td>")
      else:
        cells.append("<td class=n>-</td><td class=n>-</td>")
    for m in refs:
      ref, vals = d.references.get(m), [r["scores"][m][0] for r in d.rows if m in r["scores"]]
      if ref and vals:
        delta = float(np.mean(vals)) - ref[1]
        cls = "better" if delta >= 0 else "worse"
        cells.append(f"<td>{esc(ref[0])}: {ref[1]:.2f}</td><td class='n {cls}'>{delta:+.2f}</td>")
      else:
        cells.append("<td>-</td><td class=n>-</td>")
    rows.append("<tr>" + "".join(cells) + "</tr>")
  return f'<table id="summary"><thead>{head}</thead><tbody>{"".join(rows)}</tbody></table>'


def image_table(d, anchor: str) -> str:
  """The sortable per-image rows of one data set: size, PSNR / SSIM per method, the first model's gain."""
  gain = d.methods[1] if len(d.methods) > 1 else None
  head = "<tr><th class=n>#</th><th>image</th><th class=n>pixels</th>" + "".join(
      f"<th class=n>{esc(m)} PSNR</th><th class=n>{esc(m)} SSIM</th>" for m in d.methods) + (
      f"<th class=n>gain over bicubic (dB)</th>" if gain else "") + "</tr>"
  rows = []
  for i, r in enumerate(d.rows):
    h, w = r["size"]
    cells = [f"<td class=n data-v={i}>{i + 1}</td>", f'<td><a href="#{anchor}-{i}">{esc(r["name"])}</a></td>',
             f"<td class=n data-v={h * w}>{w}x{h}</td>"]
    for m in d.methods:
      p, s = r["scores"].get(m, (float("nan"), float("nan")))
      cells.append(f"<td class=n data-v={p}>{_num(p, 2)}</td><td class=n data-v={s}>{s:.4f}</td>")
    if gain:
      g = r["scores"][gain][0] - r["scores"]["bicubic"][0]
      cells.append(f"<td class='n {'better' if g >= 0 else 'worse'}' data-v={g}>{g:+.2f}</td>")
    rows.append("<tr>" + "".join(cells) + "</tr>")
  return (f'<table class="sortable" id="{anchor}-table"><thead>{head}</thead><tbody>{"".join(rows)}</tbody>'
          f"</table>")


def comparison(d, r, anchor: str) -> str:
  """One image: its overview with the crop box, then the crops of every method and their error maps."""
  h, w = r["size"]
  t, l, n = r["box"]
  box = (f"left:{100 * l / w:.3f}%;top:{100 * t / h:.3f}%;width:{100 * n / w:.3f}%;height:{100 * n / h:.3f}%")
  caps = r["captions"]
  ov = (f'<figure><div class="ov"><img src="{esc(r["overview"])}" alt="overview" width=240 loading="lazy">'
        f'<div class="box" style="{box}"></div></div><figcaption>{esc(r["name"])}, {w}x{h}</figcaption></figure>')
  pictures = {k: v for k, v in r["tiles"].items() if not k.startswith("error: ")}
  errs = {k: v for k, v in r["tiles"].items() if k.startswith("error: ")}
  # the error maps under their methods: the legend under the overview, nothing under the LR crop
  legend = (f'<figure style="width:240px"><p class="note">error maps |Y - HR Y|:<br>0 <span class="legend" '
            f'style="background:{ERROR_GRADIENT}"></span> &ge; {r["error_scale"]:g}<br>(levels of 255)</p></figure>'
            f'<figure style="width:{r["tile_px"]}px"></figure>')
  return (f'<section class="cmp" id="{anchor}-{r["index"]}"><h3>{esc(r["name"])}</h3>'
          f'<div class="tiles">{ov}{_figures(pictures, caps)}</div>'
          f'<div class="tiles">{legend}{_figures(errs, {})}</div></section>')


# ----------------------------------------------------------------------------------------------------------------
# Charts.


def _ticks(lo: float, hi: float, n: int = 6) -> list:
  step = 10 ** math.floor(math.log10(max((hi - lo) / n, 1e-12)))
  for m in (1, 2, 5, 10):
    if (hi - lo) / (step * m) <= n:
      step *= m
      break
  return [k * step for k in range(math.ceil(lo / step - 1e-9), math.floor(hi / step + 1e-9) + 1)]


def _short(v: float) -> str:
  """Tick labels: 20000 -> 20k, 1500000 -> 1.5M."""
  for div, suffix in ((1e6, "M"), (1e3, "k")):
    if abs(v) >= div:
      return f"{v / div:g}{suffix}"
  return f"{v:.4g}"


def _log_ticks(lo: float, hi: float) -> list:
  out = [m * 10 ** e for e in range(math.floor(math.log10(lo)), math.ceil(math.log10(hi)) + 1) for m in (1, 2, 5)]
  return [v for v in out if lo <= v <= hi]


def line_chart(series: list, refs: list = (), *, title: str, xlabel: str, log_y: bool = False,
               y_floor: float | None = None, width: int = 640, height: int = 280) -> str:
  """An SVG chart: series [(label, xs, ys, colour)] as lines, refs [(label, y, colour)] as dashed lines.

  Points with a missing x or y are skipped; y below `y_floor` are clipped at the bottom edge.
  """
  pts = [[(x, y) for x, y in zip(xs, ys) if x is not None and y is not None and math.isfinite(y)
          and (y > 0 or not log_y)] for _, xs, ys, _ in series]
  allx, ally = [x for p in pts for x, _ in p], [y for p in pts for _, y in p] + [y for _, y, _ in refs]
  if not allx:
    return f'<p class="note">{esc(title)}: no data</p>'
  x0, x1 = min(0.0, min(allx)), max(allx) or 1.0
  y0, y1 = min(ally), max(ally)
  ys = [y for p in pts for _, y in p]
  clipped = y_floor is not None and max(ys) > y_floor and min(ys) < y_floor  # clip only what would hide the rest
  if clipped:
    y0 = y_floor
  if log_y:
    y0, y1 = math.log10(y0), math.log10(y1)
  pad = (y1 - y0) * 0.05 or 0.5
  y0, y1 = y0 - pad, y1 + pad
  left, right, top, bottom = 56, 12, 24, 40
  pw, ph = width - left - right, height - top - bottom
  fx = lambda x: left + pw * (x - x0) / ((x1 - x0) or 1)
  fy = lambda y: top + ph * (1 - ((math.log10(y) if log_y else y) - y0) / ((y1 - y0) or 1))
  cid = f"clip{next(_ids)}"
  out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" role="img">',
         f'<clipPath id="{cid}"><rect x="{left}" y="{top}" width="{pw}" height="{ph}"/></clipPath>',
         f'<text x="{left}" y="15" font-weight="bold">{esc(title)}</text>',
         f'<rect x="{left}" y="{top}" width="{pw}" height="{ph}" fill="none" stroke="#999"/>']
  yt = _log_ticks(10 ** y0, 10 ** y1) if log_y else _ticks(y0, y1)
  for v in yt:
    y = fy(v)
    out.append(f'<line x1="{left}" x2="{left + pw}" y1="{y:.1f}" y2="{y:.1f}" stroke="#eee"/>'
               f'<text x="{left - 4}" y="{y + 4:.1f}" text-anchor="end">{v:.3g}</text>')
  for v in _ticks(x0, x1):
    x = fx(v)
    out.append(f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{top}" y2="{top + ph}" stroke="#eee"/>'
               f'<text x="{x:.1f}" y="{top + ph + 14}" text-anchor="middle">{_short(v)}</text>')
  out.append(f'<text x="{left + pw / 2}" y="{height - 6}" text-anchor="middle">{esc(xlabel)}</text>')
  if clipped:
    out.append(f'<text x="{left + 4}" y="{top + ph - 4}" fill="#777">values below {y_floor:.3g} drawn at the '
               f'bottom</text>')
  for label, y, colour in refs:
    if y0 <= (math.log10(y) if log_y else y) <= y1:
      out.append(f'<line x1="{left}" x2="{left + pw}" y1="{fy(y):.1f}" y2="{fy(y):.1f}" stroke="{colour}" '
                 f'stroke-dasharray="5,4"/><text x="{left + pw * 0.4:.1f}" y="{fy(y) - 3:.1f}" '
                 f'fill="{colour}">{esc(label)}</text>')
  for (label, _, _, colour), p in zip(series, pts):
    if p:
      lo = 10 ** y0 if log_y else y0
      d = " ".join(f"{fx(x):.1f},{fy(max(y, lo)):.1f}" for x, y in p)
      out.append(f'<polyline clip-path="url(#{cid})" fill="none" stroke="{colour}" stroke-width="1.5" '
                 f'points="{d}"><title>{esc(label)}</title></polyline>')
  out.append("</svg>")
  return "".join(out)


def curves(runs: list) -> str:
  """Validation PSNR and training loss of every run, against steps and cumulative wall time."""
  ok = [r for r in runs if r["rows"]]
  if not ok:
    return '<p class="note">no training metrics to plot (see the messages above)</p>'
  colours = {r["name"]: COLOURS[i % len(COLOURS)] for i, r in enumerate(ok)}
  refs = {}
  for r in ok:
    for b in sorted({row["val_bicubic_psnr"] for row in r["rows"] if "val_bicubic_psnr" in row}):
      refs[f"bicubic {b:.2f}"] = ("bicubic " + f"{b:.2f}", b, "#777")
    if r["reference"]:
      refs[f"paper {r['reference'][1]}"] = (f"paper {r['reference'][0]}: {r['reference'][1]:.2f}",
                                            r["reference"][1], "#d62728")
  floor = min((v[1] for v in refs.values()), default=None)
  charts = []
  for key, label, log_y in (("val_psnr", "validation PSNR (dB, Y)", False), ("train_loss", "training loss (MSE)",
                                                                               True)):
    for xkey, xlabel in (("step", "step"), ("wall", "wall time (min, summed over resumed invocations)")):
      series = []
      for r in ok:
        xs = r["wall"] if xkey == "wall" else [row["step"] for row in r["rows"]]
        series.append((r["name"], xs, [row.get(key) for row in r["rows"]], colours[r["name"]]))
      charts.append(line_chart(series, list(refs.values()) if key == "val_psnr" else [], title=label,
                               xlabel=xlabel, log_y=log_y,
                               y_floor=None if floor is None or key != "val_psnr" else floor - 1.0))
  key = "".join(f'<span><i style="background:{colours[r["name"]]}"></i>{esc(r["name"])} '
                f'<span class="note">({esc(r["source"])}; {len(r["rows"])} epochs, best '
                f'{max((row["val_psnr"] for row in r["rows"] if "val_psnr" in row), default=float("nan")):.2f} dB'
                f'{" on " + esc(r["val"]) if r["val"] else ""})</span></span>' for r in ok)
  return f'<p class="key">{key}</p><div class="charts">{"".join(charts)}</div>'


def page(*, title: str, notes: list, errors: list, datasets: list, runs: list) -> str:
  """The whole report page."""
  body = [f"<h1>{esc(title)}</h1>"] + [f'<p class="note">{esc(n)}</p>' for n in notes]
  if errors:
    body.append('<div class="errors" id="errors"><b>Problems</b><ul>' +
                "".join(f"<li>{esc(e)}</li>" for e in errors) + "</ul></div>")
  if datasets:
    body += ["<h2>PSNR / SSIM</h2>", summary_table(datasets)]
  if runs:
    body += ["<h2>Training curves</h2>", curves(runs)]
  for k, d in enumerate(datasets):
    anchor = f"d{k}"
    body.append(f'<h2 id="{anchor}">{esc(d.dataset)} x{d.scale}: per image</h2>')
    if not d.rows:
      body.append('<p class="errors">no image of this data set could be scored</p>')
      continue
    body.append('<p class="note">click a column header to sort; click an image name to see its crops</p>')
    body.append(image_table(d, anchor))
    body += [comparison(d, dict(r, index=i), anchor) for i, r in enumerate(d.rows)]
  if not datasets and not runs:
    body.append('<p class="errors">nothing to show: no data set and no training run was given</p>')
  return ("<!DOCTYPE html>\n<html lang=en><head><meta charset=utf-8><title>" + esc(title) + "</title>"
          '<link rel="icon" href="data:,"><meta name="viewport" content="width=device-width, initial-scale=1">'
          f"<style>{CSS}{TILES_CSS}</style></head><body>{''.join(body)}<script>{JS}</script></body></html>\n")
