"""report.html: one self-contained page (images inlined as data: URIs)."""

import base64
import html
from typing import Any, Mapping, Optional, Sequence

METRIC_ROWS = (
    ('neg_elbo', '-ELBO (nats/image)'),
    ('reconstruction', 'reconstruction: BCE summed over pixels'),
    ('kl', 'KL(q(z|x) || N(0, I)) summed over z'),
    ('iwae_bound', 'IWAE bound on -log p(x)'),
)

_STYLE = """
body { font-family: sans-serif; margin: 2em; max-width: 1250px; color: #222; }
table { border-collapse: collapse; margin: 1em 0; }
th, td { border: 1px solid #bbb; padding: 4px 10px; text-align: right; }
th:first-child, td:first-child { text-align: left; }
.blessed { color: #0a7d2c; } .not-blessed { color: #b00020; }
img { max-width: 100%; border: 1px solid #ddd; }
code { background: #f4f4f4; padding: 1px 4px; }
"""


def _fmt(value: Any) -> str:
  if isinstance(value, float):
    return f'{value:.2f}'
  return html.escape(str(value))


def _image(png: bytes, alt: str) -> str:
  data = base64.b64encode(png).decode('ascii')
  return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{data}">'


def render(*, candidate: Mapping[str, Any],
           baseline: Optional[Mapping[str, Any]], baseline_note: str,
           blessed: bool, reasons: Sequence[str], model_uri: str,
           manifold_png: bytes, clusters_png: bytes,
           details: Mapping[str, Any]) -> str:
  """The report as an HTML string."""
  verdict = 'BLESSED' if blessed else 'NOT BLESSED'
  css = 'blessed' if blessed else 'not-blessed'
  head = '<tr><th>metric</th><th>candidate</th>'
  head += '<th>served model</th></tr>' if baseline else '</tr>'
  rows = []
  for key, label in METRIC_ROWS:
    cells = f'<td>{html.escape(label)}</td><td>{_fmt(candidate.get(key))}</td>'
    if baseline:
      cells += f'<td>{_fmt(baseline.get(key))}</td>'
    rows.append(f'<tr>{cells}</tr>')
  detail_rows = ''.join(
      f'<tr><td>{html.escape(str(k))}</td><td>{_fmt(v)}</td></tr>'
      for k, v in details.items())
  reason_items = ''.join(f'<li>{html.escape(r)}</li>' for r in reasons)
  return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<title>VAE evaluation: {verdict}</title><style>{_STYLE}</style></head>
<body>
<h1>VAE evaluation: <span class="{css}">{verdict}</span></h1>
<p>Model <code>{html.escape(model_uri)}</code></p>
<h2>Decision</h2><ul>{reason_items}</ul>
<h2>Held-out metrics</h2>
<table>{head}{''.join(rows)}</table>
<p>{html.escape(baseline_note)}</p>
<table>{detail_rows}</table>
<h2>Latent manifold</h2>{_image(manifold_png, 'latent manifold')}
<h2>Label clusters</h2>{_image(clusters_png, 'label clusters')}
</body></html>
"""
