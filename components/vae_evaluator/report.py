"""report.html: one self-contained page (images inlined as data: URIs).

Sections, each a `<section id=...>` (SECTIONS): the decision; the candidate
against the served model (metrics with their difference, the two manifolds);
metrics per digit; reconstructions; samples from the prior; training curves;
data (counts, label histogram, the data gate's verdict); label clusters.
Nothing on the page is fetched from elsewhere: no scripts, no style sheets,
no links to load, every image a base64 PNG.
"""

import base64
import dataclasses
import html
from typing import Any, Dict, List, Mapping, Optional, Sequence

METRIC_ROWS = (
    ('neg_elbo', '-ELBO (nats/image)'),
    ('reconstruction', 'reconstruction: BCE summed over pixels'),
    ('kl', 'KL(q(z|x) || N(0, I)) summed over z'),
    ('iwae_bound', 'IWAE bound on -log p(x)'),
)
# Rows where lower is better, so the difference is coloured.
_LOWER_IS_BETTER = ('neg_elbo', 'iwae_bound')
# Section id -> heading, in page order.
SECTIONS = (
    ('decision', 'Decision'),
    ('side-by-side', 'Candidate against the served model'),
    ('per-digit', 'Per digit'),
    ('reconstructions', 'Reconstructions'),
    ('samples', 'Samples from the prior'),
    ('training-curves', 'Training curves'),
    ('data', 'Data'),
    ('clusters', 'Label clusters'),
)

_STYLE = """
body { font-family: sans-serif; margin: 2em; max-width: 1250px; color: #222; }
table { border-collapse: collapse; margin: 1em 0; }
th, td { border: 1px solid #bbb; padding: 4px 10px; text-align: right; }
th:first-child, td:first-child { text-align: left; }
.blessed { color: #0a7d2c; } .not-blessed { color: #b00020; }
.better { color: #0a7d2c; } .worse { color: #b00020; }
tr.worse td { background: #fde7ea; }
th.candidate { background: #dbe9f6; } th.served { background: #e6e6e6; }
.pair { display: flex; gap: 1em; } .pair figure { flex: 1; margin: 0; }
figcaption { font-weight: bold; margin: 0.3em 0; }
img { max-width: 100%; border: 1px solid #ddd; }
code { background: #f4f4f4; padding: 1px 4px; }
.note { color: #555; }
"""


@dataclasses.dataclass(frozen=True)
class PerDigit:
  """The per-label figures (metrics.per_label) and their chart."""
  candidate: Mapping[str, Mapping[str, float]]
  served: Optional[Mapping[str, Mapping[str, float]]]
  margin: float  # nats: the candidate is flagged beyond served + margin
  worse: Sequence[str]  # labels flagged
  chart_png: bytes


@dataclasses.dataclass(frozen=True)
class DataSummary:
  """What the Data section shows."""
  split_counts: Mapping[str, Any]  # split -> images
  counts_source: str  # where split_counts come from
  label_histogram_png: Optional[bytes]
  gate: Optional[Mapping[str, Any]]  # the data gate's gate.json, or None
  gate_note: str  # where the gate's report came from, or why there is none


@dataclasses.dataclass(frozen=True)
class Summary:
  """What the page says in words and numbers: the decision and its reasons,
  the metrics side by side, and the run's settings."""
  blessed: bool
  reasons: Sequence[str]  # the decision's, one line each
  model_uri: str  # the candidate's Model artifact
  candidate: Mapping[str, Any]  # its metrics (metrics.Evaluation.metrics)
  baseline: Optional[Mapping[str, Any]]  # the served model's, or None
  baseline_note: str  # which model is served, or why none was measured
  details: Mapping[str, Any]  # further facts (name -> value) under the metrics
  served_name: str = 'served model'  # how the served model is named


@dataclasses.dataclass(frozen=True)
class Figures:
  """The page's pictures, each with what is shown beside it."""
  manifold_png: bytes  # the candidate's latent manifold
  clusters_png: bytes  # its label clusters
  served_manifold_png: Optional[bytes] = None  # the served model's, or None
  per_digit: Optional[PerDigit] = None  # None without labels
  reconstructions_png: Optional[bytes] = None  # eval images, their decoding
  samples_png: Optional[bytes] = None  # images decoded from z ~ N(0, I)
  samples_note: str = ''  # how the samples were drawn
  history_png: Optional[bytes] = None  # the training curves, or None
  history_note: str = 'No training history is available.'  # where from
  data: Optional[DataSummary] = None  # the Data section, or None


def _fmt(value: Any) -> str:
  if isinstance(value, float):
    return f'{value:.2f}'
  if value is None:
    return '-'
  return html.escape(str(value))


def _signed(value: float, lower_is_better: bool = True) -> str:
  css = ''
  if lower_is_better and value < 0:
    css = ' class="better"'
  elif lower_is_better and value > 0:
    css = ' class="worse"'
  return f'<td{css}>{value:+.2f}</td>'


def _image(png: bytes, alt: str) -> str:
  data = base64.b64encode(png).decode('ascii')
  return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{data}">'


def _section(section_id: str, body: str) -> str:
  heading = dict(SECTIONS)[section_id]
  return (f'<section id="{section_id}"><h2>{html.escape(heading)}</h2>\n'
          f'{body}</section>\n')


def _side_by_side(summary: Summary, figures: Figures) -> str:
  candidate, baseline = summary.candidate, summary.baseline
  served_name = summary.served_name
  head = ('<tr><th>metric</th><th class="candidate">candidate: this run, '
          'replaces the served model if blessed</th>')
  if baseline:
    head += (f'<th class="served">served today: {html.escape(served_name)}'
             '</th><th>difference (candidate - served)</th>')
  head += '</tr>'
  rows = []
  for key, label in METRIC_ROWS:
    cells = f'<td>{html.escape(label)}</td><td>{_fmt(candidate.get(key))}</td>'
    if baseline:
      cells += f'<td>{_fmt(baseline.get(key))}</td>'
      cells += _signed(candidate[key] - baseline[key],
                       key in _LOWER_IS_BETTER)
    rows.append(f'<tr>{cells}</tr>')
  manifolds = [f'<figure><figcaption>Candidate (this run)</figcaption>'
               f'{_image(figures.manifold_png, "candidate latent manifold")}'
               '</figure>']
  if figures.served_manifold_png is not None:
    manifolds.append(
        f'<figure><figcaption>Served today ({html.escape(served_name)})'
        '</figcaption>'
        f'{_image(figures.served_manifold_png, "served latent manifold")}'
        '</figure>')
  return (f'<table>{head}{"".join(rows)}</table>\n'
          f'<p class="note">{html.escape(summary.baseline_note)} Lower is '
          'better for -ELBO and the IWAE bound.</p>\n'
          '<h3>Decoded digits over the latent space</h3>\n'
          f'<div class="pair">{"".join(manifolds)}</div>\n')


def _per_digit(per_digit: Optional[PerDigit]) -> str:
  if per_digit is None:
    return '<p>The eval split has no labels: no per-digit figures.</p>\n'
  served = per_digit.served
  head = ('<tr><th>digit</th><th>images</th><th class="candidate">-ELBO</th>'
          '<th class="candidate">reconstruction</th>'
          '<th class="candidate">KL</th>')
  if served:
    head += ('<th class="served">served -ELBO</th>'
             '<th class="served">served reconstruction</th>'
             '<th class="served">served KL</th><th>-ELBO difference</th>')
  head += '</tr>'
  rows = []
  for label in sorted(per_digit.candidate, key=int):
    c = per_digit.candidate[label]
    cells = (f'<td>{html.escape(label)}</td><td>{c["num_images"]}</td>'
             f'<td>{_fmt(c["neg_elbo"])}</td><td>{_fmt(c["reconstruction"])}'
             f'</td><td>{_fmt(c["kl"])}</td>')
    if served:
      s = served.get(label)
      if s is None:
        cells += '<td>-</td>' * 4
      else:
        cells += (f'<td>{_fmt(s["neg_elbo"])}</td>'
                  f'<td>{_fmt(s["reconstruction"])}</td>'
                  f'<td>{_fmt(s["kl"])}</td>')
        cells += _signed(c['neg_elbo'] - s['neg_elbo'])
    css = ' class="worse"' if label in per_digit.worse else ''
    rows.append(f'<tr{css}>{cells}</tr>')
  if served:
    flagged = ', '.join(per_digit.worse) or 'none'
    note = (f'Highlighted: digits where the candidate\'s -ELBO is more than '
            f'{per_digit.margin:.1f} nats above the served model\'s (margin '
            f'{per_digit.margin:.1f} nats; flagged: {flagged}). For '
            'information only: the blessing looks at the overall -ELBO.')
  else:
    note = 'No served model to compare with: nothing is highlighted.'
  return (f'{_image(per_digit.chart_png, "metrics per digit")}\n'
          f'<p class="note">{html.escape(note)}</p>\n'
          f'<table>{head}{"".join(rows)}</table>\n')


def _history(history_png: Optional[bytes], history_note: str) -> str:
  body = f'<p class="note">{html.escape(history_note)}</p>\n'
  if history_png is not None:
    body = f'{_image(history_png, "training curves")}\n' + body
  return body


def _gate(gate: Mapping[str, Any]) -> str:
  verdict = 'passed' if gate.get('passed') else 'stopped the run'
  reference = gate.get('reference') or {}
  parts = [f'<p>Data gate: <b>{verdict}</b>'
           f'{" (drift accepted with --accept-drift)" if gate.get("accept_drift") else ""}'
           f'; span {_fmt(gate.get("span"))}; drift reference: '
           f'{_fmt(reference.get("status"))}'
           f'{" (" + html.escape(str(reference["version_dir"])) + ")" if reference.get("version_dir") else ""}'
           '.</p>']
  anchor = (gate.get('anchor') or {}).get('record') or {}
  if anchor:
    parts.append(f'<p>Drift anchor: set by {_fmt(anchor.get("set_by"))} at '
                 f'{_fmt(anchor.get("set_at"))} (version '
                 f'{_fmt(anchor.get("version"))}).</p>')
  rows = []
  for split, info in sorted((gate.get('splits') or {}).items()):
    drift = info.get('drift') or {}
    measures = sorted({(feature, m['measure']) for by_ref in drift.values()
                       for feature, m in by_ref.items()})
    for feature, measure in measures:
      cells, worse = [], False
      for reference in ('served', 'anchor'):
        m = (drift.get(reference) or {}).get(feature)
        if m is None:
          cells.append('<td>-</td><td>-</td>')
          continue
        worse = worse or not m['value'] <= m['threshold']
        cells.append(f'<td>{m["value"]:.4g}</td><td>{m["threshold"]:.4g}</td>')
      css = ' class="worse"' if worse else ''
      rows.append(f'<tr{css}><td>{html.escape(split)}</td>'
                  f'<td>{html.escape(feature)}</td>'
                  f'<td>{html.escape(measure)}</td>{"".join(cells)}</tr>')
  if rows:
    parts.append('<table><tr><th>split</th><th>feature</th><th>measure</th>'
                 '<th>from served</th><th>allowed</th><th>from anchor</th>'
                 '<th>allowed</th></tr>'
                 f'{"".join(rows)}</table>')
  else:
    parts.append('<p class="note">No drift measured (no reference: the '
                 'schema was checked only).</p>')
  for kind in ('blocking', 'accepted'):
    lines = gate.get(kind) or []
    if lines:
      items = ''.join(f'<li>{html.escape(l)}</li>' for l in lines)
      parts.append(f'<p>{kind}:</p><ul>{items}</ul>')
  return '\n'.join(parts) + '\n'


def _data(data: DataSummary) -> str:
  rows = ''.join(f'<tr><td>{html.escape(split)}</td><td>{_fmt(count)}</td></tr>'
                 for split, count in data.split_counts.items())
  body = (f'<table><tr><th>split</th><th>images</th></tr>{rows}</table>\n'
          f'<p class="note">{html.escape(data.counts_source)}</p>\n')
  window = (data.gate or {}).get('window') or []
  if window:
    spans = ', '.join(f'{s["span"]} ({s["folder"]})' for s in window)
    body += (f'<p>Spans read (newest last; only the newest was gated and is '
             f'scored): {html.escape(spans)}</p>\n')
  if data.label_histogram_png is not None:
    body += f'{_image(data.label_histogram_png, "eval label histogram")}\n'
  body += f'<h3>Data gate</h3>\n<p class="note">{html.escape(data.gate_note)}</p>\n'
  if data.gate is not None:
    body += _gate(data.gate)
  return body


def render(summary: Summary, figures: Figures) -> str:
  """The report as an HTML string: `summary` in words and numbers, with
  `figures` in their sections (SECTIONS)."""
  verdict = 'BLESSED' if summary.blessed else 'NOT BLESSED'
  css = 'blessed' if summary.blessed else 'not-blessed'
  detail_rows = ''.join(
      f'<tr><td>{html.escape(str(k))}</td><td>{_fmt(v)}</td></tr>'
      for k, v in summary.details.items())
  reason_items = ''.join(f'<li>{html.escape(r)}</li>' for r in summary.reasons)
  sections: List[str] = [
      _section('decision', f'<ul>{reason_items}</ul>\n'
               f'<table>{detail_rows}</table>\n'),
      _section('side-by-side', _side_by_side(summary, figures)),
      _section('per-digit', _per_digit(figures.per_digit)),
  ]
  if figures.reconstructions_png is not None:
    sections.append(_section('reconstructions', _image(
        figures.reconstructions_png, 'reconstructions') + '\n<p class="note">'
        'Fixed, seeded eval images (the same every run on the same split), '
        'each above the candidate\'s decoding of its z_mean.</p>\n'))
  if figures.samples_png is not None:
    sections.append(_section('samples', _image(figures.samples_png, 'samples')
                             + f'\n<p class="note">'
                             f'{html.escape(figures.samples_note)}</p>\n'))
  sections.append(_section('training-curves', _history(
      figures.history_png, figures.history_note)))
  if figures.data is not None:
    sections.append(_section('data', _data(figures.data)))
  sections.append(_section('clusters', _image(figures.clusters_png,
                                              'label clusters') + '\n'))
  toc = ' | '.join(f'<a href="#{sid}">{html.escape(title)}</a>'
                   for sid, title in SECTIONS)
  return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<title>VAE evaluation: {verdict}</title><style>{_STYLE}</style></head>
<body>
<h1>VAE evaluation: <span class="{css}">{verdict}</span></h1>
<p>Model <code>{html.escape(summary.model_uri)}</code></p>
<p>{toc}</p>
{''.join(sections)}</body></html>
"""


def metrics_json_per_label(per_digit: Optional[PerDigit]) -> Optional[Dict]:
  """The `per_label` entry of metrics.json."""
  if per_digit is None:
    return None
  return {'candidate': per_digit.candidate, 'served': per_digit.served,
          'margin_nats': per_digit.margin,
          'worse_than_served': list(per_digit.worse)}
