"""Tests of the report's figures and page, from arrays (no TFX, no model)."""

import base64
import io
import re

import numpy as np
import pytest
from PIL import Image

from components.vae_evaluator import metrics
from components.vae_evaluator import plots
from components.vae_evaluator import report
from models import history as history_lib

# data: URIs of the page's images.
_IMG_SRC = re.compile(r'<img\b[^>]*\bsrc="([^"]*)"')


def decoded_images(page: str):
  """Every <img> of `page` decoded as a PNG (raises if one is not)."""
  images = []
  for src in _IMG_SRC.findall(page):
    prefix = 'data:image/png;base64,'
    assert src.startswith(prefix), src[:80]
    data = base64.b64decode(src[len(prefix):], validate=True)
    assert data.startswith(b'\x89PNG\r\n\x1a\n')
    image = Image.open(io.BytesIO(data))
    image.load()
    images.append(image)
  return images


def external_references(page: str):
  """Anything in `page` a browser would fetch from elsewhere."""
  found = re.findall(r'https?://', page)
  found += [s for s in re.findall(r'\bsrc\s*=\s*"([^"]*)"', page)
            if not s.startswith('data:')]
  found += re.findall(r'<link\b', page, flags=re.I)
  found += re.findall(r'<script\b[^>]*\bsrc', page, flags=re.I)
  found += re.findall(r'@import|url\(', page)
  return found


def _per_label(rng, shift=0.0):
  return {str(d): {'neg_elbo': 150.0 + d + shift, 'reconstruction': 140.0 + d,
                   'kl': 10.0 + shift, 'iwae_bound': 148.0 + d,
                   'num_images': 100 + d}
          for d in range(10)}


def _history():
  epochs = [0, 1, 2]
  keys = ('loss', 'reconstruction_loss', 'kl_loss')
  values = {key: [200.0 - 10 * e for e in epochs] for key in keys}
  values.update({f'val_{key}': [205.0 - 9 * e for e in epochs] for key in keys})
  return epochs, values


def _page(served: bool, history: bool, gate=None):
  rng = np.random.default_rng(0)
  images = rng.uniform(size=(20, 28, 28, 1)).astype(np.float32)
  decode = lambda z: np.broadcast_to(  # pylint: disable=g-long-lambda
      (np.tanh(z[:, :1, None, None]) + 1) / 2, (len(z), 28, 28, 1))
  candidate = {'neg_elbo': 151.0, 'reconstruction': 145.0, 'kl': 6.0,
               'iwae_bound': 149.0, 'num_images': 1045}
  baseline = ({'neg_elbo': 153.5, 'reconstruction': 147.0, 'kl': 6.5,
               'iwae_bound': 151.0} if served else None)
  cand_labels = _per_label(rng)
  served_labels = _per_label(rng, shift=-3.0) if served else None
  worse = metrics.worse_labels(cand_labels, served_labels,
                               metrics.PER_LABEL_MARGIN_NATS)
  per_digit = report.PerDigit(
      cand_labels, served_labels, metrics.PER_LABEL_MARGIN_NATS, worse,
      plots.render_per_label(cand_labels, served_labels, worse))
  epochs, values = _history()
  summary = report.Summary(
      blessed=served, reasons=['ok: fine'], model_uri='/m/1',
      candidate=candidate, baseline=baseline,
      baseline_note='Served model: /s/17.' if served else 'None served.',
      details={'eval images': 1045}, served_name='version 17')
  figures = report.Figures(
      manifold_png=plots.render_manifold(decode, 2),
      clusters_png=plots.render_clusters(rng.normal(size=(50, 2)),
                                         rng.integers(0, 10, 50)),
      served_manifold_png=(plots.render_manifold(decode, 2) if served
                           else None),
      per_digit=per_digit,
      reconstructions_png=plots.render_reconstructions(
          images, images[::-1], [d // 2 for d in range(20)]),
      samples_png=plots.render_samples(
          decode(plots.prior_samples(2, 100, 0)), 10, 10),
      samples_note='100 draws',
      history_png=(plots.render_training_curves(epochs, values,
                                                history_lib.CURVES)
                   if history else None),
      history_note=('3 epochs' if history else
                    'No training history is available: none written.'),
      data=report.DataSummary(
          {'train': 60000, 'eval': 1045}, 'from the gate',
          plots.render_label_histogram({str(d): 100 + d for d in range(10)},
                                       'labels'),
          gate, 'From gate.json.' if gate else 'No gate output.'))
  return report.render(summary, figures)


_GATE = {
    'passed': True, 'span': 0, 'accept_drift': False,
    'reference': {'status': 'checked', 'version_dir': '/s/17'},
    'anchor': {'status': 'checked', 'record': {
        'set_by': 'first push', 'set_at': '2026-12-01T00:00:00', 'version':
        '3'}},
    'window': [{'span': 4, 'folder': '/d/span-4'},
               {'span': 5, 'folder': '/d/span-5'}],
    'splits': {'eval': {'num_examples': 1045, 'drift': {
        'served': {'label': {'measure': 'label L-infinity distance',
                             'value': 0.0123, 'threshold': 0.1}},
        'anchor': {'label': {'measure': 'label L-infinity distance',
                             'value': 0.0456, 'threshold': 0.1}}}}},
    'blocking': [], 'accepted': [],
}


def _section(page: str, section_id: str) -> str:
  match = re.search(rf'<section id="{section_id}">(.*?)</section>', page,
                    flags=re.S)
  assert match, f'no section {section_id}'
  return match.group(1)


def test_the_report_has_every_section():
  page = _page(served=True, history=True, gate=_GATE)
  for section_id, heading in report.SECTIONS:
    assert heading in _section(page, section_id)


def test_every_image_is_an_inlined_png_of_plausible_size():
  page = _page(served=True, history=True, gate=_GATE)
  images = decoded_images(page)
  # Manifolds (2), per digit, reconstructions, samples, curves, histogram,
  # clusters.
  assert len(images) == 8
  assert len(images) == page.count('<img ')
  for image in images:
    assert image.format == 'PNG'
    assert 200 <= image.width <= 1500 and 200 <= image.height <= 1200
    pixels = np.asarray(image.convert('L'), dtype=np.float32)
    assert pixels.std() > 5  # not blank


def test_the_page_references_nothing_external():
  for served in (True, False):
    page = _page(served=served, history=served, gate=_GATE if served else None)
    assert external_references(page) == []


def test_external_reference_check_can_fail():
  assert external_references('<img src="x.png"><link rel="stylesheet">'
                             '<script src="a.js"></script> https://a') != []


def test_with_a_served_model_its_columns_and_manifold_are_shown():
  page = _page(served=True, history=True)
  side = _section(page, 'side-by-side')
  assert 'served today: version 17' in side
  assert 'difference (candidate - served)' in side
  assert '<td class="better">-2.50</td>' in side  # -ELBO 151.0 - 153.5
  assert 'Served today (version 17)' in side
  assert side.count('<img ') == 2
  digits = _section(page, 'per-digit')
  assert 'served -ELBO' in digits
  # Served shifted by -3 nats: every digit is worse by 3 > the 2-nat margin.
  assert digits.count('<tr class="worse">') == 10
  assert 'margin 2.0 nats' in digits


def test_without_a_served_model_only_the_candidate_is_shown():
  page = _page(served=False, history=True)
  side = _section(page, 'side-by-side')
  assert 'served today' not in side and side.count('<img ') == 1
  digits = _section(page, 'per-digit')
  assert 'served -ELBO' not in digits and 'class="worse"' not in digits
  assert 'nothing is highlighted' in digits


def test_without_history_the_section_says_so():
  section = _section(_page(served=True, history=False), 'training-curves')
  assert 'No training history is available' in section
  assert '<img ' not in section
  assert '<img ' in _section(_page(served=True, history=True),
                             'training-curves')


def test_data_section_shows_counts_and_the_gate():
  section = _section(_page(served=True, history=True, gate=_GATE), 'data')
  assert '<td>train</td><td>60000</td>' in section
  assert 'Data gate: <b>passed</b>' in section
  # Both distances of each measure, side by side.
  assert ('<td>0.0123</td><td>0.1</td><td>0.0456</td><td>0.1</td>'
          in section)
  assert 'Drift anchor: set by first push' in section
  assert 'Spans read' in section and '5 (/d/span-5)' in section
  section = _section(_page(served=True, history=True), 'data')
  assert 'No gate output.' in section


def test_worse_labels_use_the_margin():
  candidate = {'0': {'neg_elbo': 103.0}, '1': {'neg_elbo': 101.0}}
  served = {'0': {'neg_elbo': 100.0}, '1': {'neg_elbo': 100.0}}
  assert metrics.worse_labels(candidate, served, 2.0) == ['0']
  assert metrics.worse_labels(candidate, served, 0.5) == ['0', '1']
  assert metrics.worse_labels(candidate, None, 0.5) == []


def test_reconstructions_pair_each_image_with_its_reconstruction():
  originals = np.arange(20, dtype=np.float32)[:, None, None] * np.ones(
      (20, 28, 28), np.float32)
  grid, pairs = plots.reconstruction_grid(originals, originals + 100)
  assert pairs == 2 and grid.shape == (4 * 28, 10 * 28)
  cell = lambda row, col: grid[row * 28:(row + 1) * 28, col * 28:(col + 1) * 28]
  for i in range(20):
    column, pair = divmod(i, 2)
    assert np.all(cell(2 * pair, column) == i)
    assert np.all(cell(2 * pair + 1, column) == i + 100)
  png = plots.render_reconstructions(originals / 20, originals / 40,
                                     [i // 2 for i in range(20)])
  assert Image.open(io.BytesIO(png)).size == (1000, 450)


def test_reconstruction_examples_are_fixed_and_cover_each_label():
  labels = np.repeat(np.arange(10), 30)
  first = plots.reconstruction_examples(labels, 2, seed=3)
  again = plots.reconstruction_examples(labels, 2, seed=3)
  np.testing.assert_array_equal(first, again)
  assert labels[first].tolist() == [d for d in range(10) for _ in range(2)]
  other = plots.reconstruction_examples(labels, 2, seed=4)
  assert first.tolist() != other.tolist()


def test_prior_samples_are_seeded_standard_normal():
  z = plots.prior_samples(3, 5000, seed=1)
  assert z.shape == (5000, 3) and z.dtype == np.float32
  np.testing.assert_array_equal(z, plots.prior_samples(3, 5000, seed=1))
  assert abs(z.mean()) < 0.05 and abs(z.std() - 1) < 0.05


@pytest.mark.parametrize('served', [None, 'given'])
def test_per_label_chart_renders(served):
  rng = np.random.default_rng(0)
  cand = _per_label(rng)
  png = plots.render_per_label(cand, _per_label(rng, 1.0) if served else None,
                               ['3'])
  assert Image.open(io.BytesIO(png)).size == (1200, 400)
