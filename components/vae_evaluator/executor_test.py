"""Tests of VaeEvaluator on real exported models and real eval TFRecords."""

import json
import math
import os
import pathlib
import shutil

import numpy as np
import pytest
from PIL import Image
from tfx.types import artifact_utils
from tfx.types import standard_artifacts

from components import config as config_lib
from components.vae_evaluator import blessing
from components.vae_evaluator import drawing
from components.vae_evaluator import executor
from components.vae_evaluator import metrics
from components.vae_evaluator import plots
from components.vae_evaluator import report
from components.vae_evaluator import report_test
from conftest import load_mnist_head
from conftest import write_tfrecords
from layouts import contracts
from layouts import model as model_layout
from layouts import serving as serving_layout
from models import export
from models import history as history_lib
from models import vae as vae_lib

# Runs executors, Beam or training on real data: the full suite's tier.
pytestmark = pytest.mark.slow

EVAL_IMAGES = 300


def _write_examples(root: pathlib.Path) -> standard_artifacts.Examples:
  """An Examples artifact with an `eval` split of real MNIST digits."""
  examples = standard_artifacts.Examples()
  examples.uri = str(root / 'examples')
  examples.split_names = artifact_utils.encode_split_names(['eval'])
  split_dir = pathlib.Path(artifact_utils.get_split_uri([examples], 'eval'))
  write_tfrecords(split_dir / 'data.gz', *load_mnist_head('t10k', EVAL_IMAGES))
  return examples


def _export(vae, hp, root: pathlib.Path, name: str) -> str:
  model_uri = root / name
  export.export_model(vae, hp, str(model_uri / model_layout.SERVING_MODEL_DIR))
  return str(model_uri)


@pytest.fixture(scope='module')
def models_and_data(tmp_path_factory):
  """Eval examples, and a trained, an untrained and a NaN model."""
  root = tmp_path_factory.mktemp('evaluator')
  hp = vae_lib.Hyperparameters(epochs=3, batch_size=64)
  vae = vae_lib.build_vae(hp)
  untrained = _export(vae, hp, root, 'untrained')
  images, _ = load_mnist_head('train', 1024)
  vae.fit(images[..., None].astype('float32') / 255.0, epochs=hp.epochs,
          batch_size=hp.batch_size, verbose=0)
  trained = _export(vae, hp, root, 'trained')
  vae.set_weights([np.full_like(w, np.nan) for w in vae.get_weights()])
  broken = _export(vae, hp, root, 'nan')
  return {'examples': _write_examples(root), 'trained': trained,
          'untrained': untrained, 'nan': broken, 'root': root}


def _push(model_uri: str, serving_dir: pathlib.Path, version: int) -> str:
  """Serves a model the way the pusher does: decoder + push info."""
  version_dir = serving_dir / str(version)
  shutil.copytree(os.path.join(model_uri, model_layout.SERVING_MODEL_DIR), version_dir)
  serving_layout.write_push_info(str(version_dir), {'model_uri': model_uri})
  return str(version_dir)


def _run(models_and_data, tmp_path, model_key, serving_dir=None,
         threshold=1000.0, tolerance=1.0, allow_signature_change=False,
         extra_inputs=None):
  model = standard_artifacts.Model()
  model.uri = models_and_data[model_key]
  model.id = 7
  evaluation = standard_artifacts.ModelEvaluation()
  evaluation.uri = str(tmp_path / 'evaluation')
  blessing_artifact = standard_artifacts.ModelBlessing()
  blessing_artifact.uri = str(tmp_path / 'blessing')
  os.makedirs(blessing_artifact.uri)
  executor.Executor().Do(
      {'examples': [models_and_data['examples']], 'model': [model],
       **(extra_inputs or {})},
      {'evaluation': [evaluation], 'blessing': [blessing_artifact]},
      {'serving_dir': str(serving_dir or tmp_path / 'serving'),
       'config': config_lib.to_json(config_lib.EvaluationConfig(
           bless_threshold=threshold, bless_tolerance=tolerance,
           iwae_samples=4, allow_signature_change=allow_signature_change)),
       'seed': 0})
  with open(os.path.join(evaluation.uri, contracts.METRICS_FILE)) as f:
    return json.load(f), evaluation, blessing_artifact


def _blessed_files(blessing_artifact):
  return sorted(os.listdir(blessing_artifact.uri))


def test_no_served_model_is_judged_on_the_threshold(models_and_data, tmp_path):
  result, evaluation, blessed = _run(models_and_data, tmp_path, 'trained')
  assert result['blessed'] is True
  assert result['served_model'] is None
  assert 'no model is served yet' in ' '.join(result['reasons'])
  assert _blessed_files(blessed) == ['BLESSED']
  assert blessed.get_int_custom_property('blessed') == 1
  assert blessed.get_int_custom_property('current_model_id') == 7
  assert blessed.get_string_custom_property('current_model') == (
      models_and_data['trained'])
  assert evaluation.get_float_custom_property('neg_elbo') == pytest.approx(
      result['neg_elbo'])

  result, _, blessed = _run(models_and_data, tmp_path / 'strict', 'trained',
                            threshold=50.0)
  assert result['blessed'] is False and _blessed_files(blessed) == [
      'NOT_BLESSED']
  assert blessed.get_int_custom_property('blessed') == 0
  assert 'FAIL: -ELBO' in blessed.get_string_custom_property(
      'blessing_message')


def test_better_candidate_than_served_model_is_blessed(models_and_data,
                                                       tmp_path):
  serving = tmp_path / 'serving'
  version_dir = _push(models_and_data['untrained'], serving, 1)
  result, _, blessed = _run(models_and_data, tmp_path, 'trained', serving)
  assert result['served_model_dir'] == version_dir
  assert result['neg_elbo'] < result['served_model']['neg_elbo']
  assert result['blessed'] is True
  assert blessed.get_string_custom_property('baseline_model') == version_dir


def test_worse_candidate_beyond_tolerance_is_not_blessed(models_and_data,
                                                         tmp_path):
  serving = tmp_path / 'serving'
  _push(models_and_data['untrained'], serving, 1)
  _push(models_and_data['trained'], serving, 2)  # newest version is served
  result, _, blessed = _run(models_and_data, tmp_path, 'untrained', serving)
  assert result['neg_elbo'] > result['served_model']['neg_elbo'] + 1.0
  assert result['blessed'] is False
  assert any(r.startswith('FAIL: -ELBO') and 'served model' in r
             for r in result['reasons'])
  assert _blessed_files(blessed) == ['NOT_BLESSED']


def test_same_model_as_served_is_within_tolerance(models_and_data, tmp_path):
  serving = tmp_path / 'serving'
  _push(models_and_data['trained'], serving, 1)
  result, _, _ = _run(models_and_data, tmp_path, 'trained', serving,
                      tolerance=0.0)
  assert result['neg_elbo'] == pytest.approx(result['served_model']['neg_elbo'])
  assert result['blessed'] is True


def test_nan_model_is_not_blessed(models_and_data, tmp_path):
  result, _, blessed = _run(models_and_data, tmp_path, 'nan')
  assert math.isnan(result['neg_elbo'])
  assert result['blessed'] is False
  assert 'FAIL: metrics not finite' in result['reasons'][0]
  assert _blessed_files(blessed) == ['NOT_BLESSED']


def test_unmeasurable_served_model_blocks_the_push(models_and_data, tmp_path):
  serving = tmp_path / 'serving'
  shutil.copytree(
      os.path.join(models_and_data['untrained'], model_layout.SERVING_MODEL_DIR),
      serving / '1')  # no push info: its encoder cannot be found
  result, _, _ = _run(models_and_data, tmp_path, 'trained', serving)
  assert result['blessed'] is False
  assert 'mnist_vae_push.json not found' in result['served_model_error']


def test_decide_rules():
  good = {'neg_elbo': 150.0, 'reconstruction': 140.0, 'kl': 10.0,
          'iwae_bound': 148.0}
  assert blessing.decide(good, 160.0, 1.0).blessed
  assert not blessing.decide(good, 149.0, 1.0).blessed
  assert blessing.decide(good, 160.0, 1.0, {'neg_elbo': 149.5}).blessed
  assert not blessing.decide(good, 160.0, 0.4, {'neg_elbo': 149.5}).blessed
  assert not blessing.decide({**good, 'kl': float('inf')}, 160.0, 1.0).blessed
  assert not blessing.decide(good, 160.0, 1.0, None, 'unreadable').blessed


def test_iwae_bound_is_at_least_as_tight_as_the_elbo(models_and_data):
  model = metrics.load_trainer_model(models_and_data['trained'])
  split = artifact_utils.get_split_uri([models_and_data['examples']], 'eval')
  from models import data  # pylint: disable=g-import-not-at-top
  dataset = data.make_dataset(os.path.join(split, '*'), 100, shuffle=False,
                              with_labels=True)
  result = metrics.evaluate(model, dataset, iwae_samples=16, seed=1)
  m = result.metrics
  assert m['num_images'] == EVAL_IMAGES
  assert m['neg_elbo'] == pytest.approx(m['reconstruction'] + m['kl'])
  assert m['iwae_bound'] <= m['neg_elbo']
  assert m['neg_elbo'] - m['iwae_bound'] < 20.0  # a bound, not nonsense
  assert result.z_mean.shape == (EVAL_IMAGES, 2)
  assert sorted(set(result.labels.tolist())) == list(range(10))
  one = metrics.evaluate(model, dataset, iwae_samples=1, seed=1).metrics
  assert one['iwae_bound'] == pytest.approx(
      one['neg_elbo'], abs=2.0)  # k=1: the same estimate up to MC KL noise


def _png_stats(path):
  image = np.asarray(Image.open(path).convert('L'), dtype=np.float32)
  return image.shape, image.std()


def test_plots_have_the_expected_size_and_are_not_blank(models_and_data,
                                                        tmp_path):
  result, evaluation, _ = _run(models_and_data, tmp_path, 'trained')
  shape, spread = _png_stats(os.path.join(evaluation.uri, 'manifold.png'))
  assert shape == (1000, 1000) and spread > 20
  shape, spread = _png_stats(os.path.join(evaluation.uri, 'clusters.png'))
  assert shape == (1000, 1200) and spread > 10
  page = pathlib.Path(evaluation.uri, 'report.html').read_text()
  # Manifold, per digit, reconstructions, samples, label histogram, clusters.
  assert len(report_test.decoded_images(page)) == 6
  assert f'{result["neg_elbo"]:.2f}' in page and 'BLESSED' in page
  assert 'IWAE bound' in page and 'no model is served yet' in page


def test_manifold_is_one_batched_decoder_call_over_the_seed_grid():
  calls = []

  def decode(z):
    calls.append(z.copy())
    return np.zeros((len(z), 28, 28, 1), np.float32)

  image, grid_x, grid_y = plots.manifold_grid(decode, latent_dim=3)
  assert len(calls) == 1 and calls[0].shape == (900, 3)
  assert image.shape == (840, 840)
  assert grid_x[0] == -2.0 and grid_x[-1] == 2.0 and grid_y[0] == 2.0
  assert np.all(calls[0][:, 2] == 0.0)
  # Row-major like the seed: the first row is the top (largest z[1]).
  assert calls[0][0].tolist() == [-2.0, 2.0, 0.0]


def test_plots_for_other_latent_sizes(tmp_path):
  rng = np.random.default_rng(0)
  labels = rng.integers(0, 10, 500)
  for dim in (1, 5):
    (tmp_path / f'c{dim}.png').write_bytes(
        plots.render_clusters(rng.normal(size=(500, dim)), labels))
    (tmp_path / f'm{dim}.png').write_bytes(plots.render_manifold(
        lambda z: np.broadcast_to(np.abs(z[:, :1, None, None]) / 2,
                                  (len(z), 28, 28, 1)),
        dim))
    assert _png_stats(tmp_path / f'c{dim}.png')[0] == (1000, 1200)
    assert _png_stats(tmp_path / f'm{dim}.png')[0] == (1000, 1000)


def test_iwae_samples_must_be_positive():
  with pytest.raises(ValueError, match='iwae_samples must be an int >= 1'):
    config_lib.EvaluationConfig(iwae_samples=0)


def test_blessing_records_the_served_version_it_measured(models_and_data,
                                                         tmp_path):
  _, _, nothing_served = _run(models_and_data, tmp_path / 'a', 'trained')
  assert nothing_served.get_string_custom_property(
      serving_layout.BLESSING_SERVED_VERSION_KEY) == ''
  serving = tmp_path / 'serving'
  version_dir = _push(models_and_data['untrained'], serving, 5)
  _, _, measured = _run(models_and_data, tmp_path / 'b', 'trained', serving)
  assert measured.get_string_custom_property(
      serving_layout.BLESSING_SERVED_VERSION_KEY) == version_dir


def test_served_model_that_cannot_be_read_fails_after_retries(
    models_and_data, tmp_path, monkeypatch):
  serving = tmp_path / 'serving'
  version_dir = _push(models_and_data['untrained'], serving, 5)
  calls = []

  def unreadable(path):
    calls.append(path)
    raise OSError('connection reset by peer')

  monkeypatch.setattr(executor.metrics_lib, 'load_served_model', unreadable)
  waits = []
  monkeypatch.setattr(executor.time, 'sleep', waits.append)
  with pytest.raises(executor.ServedModelError) as raised:
    _run(models_and_data, tmp_path, 'trained', serving)
  assert str(raised.value).startswith(
      f'cannot read the served model {version_dir} after 4 attempts')
  # Three waits with backoff between the four attempts.
  assert len(calls) == 4 and waits == [2.0, 4.0, 8.0]
  # No blessing was written: the run fails instead of a silent NOT_BLESSED.
  assert not os.listdir(tmp_path / 'blessing')


@pytest.mark.parametrize('error', [ValueError('bad shape'), KeyError('z')])
def test_a_programming_error_while_measuring_is_not_retried(
    models_and_data, tmp_path, monkeypatch, error):
  serving = tmp_path / 'serving'
  _push(models_and_data['untrained'], serving, 5)
  calls = []

  def broken(*args):
    calls.append(args)
    raise error

  monkeypatch.setattr(executor.metrics_lib, 'load_served_model', broken)
  monkeypatch.setattr(executor.time, 'sleep', pytest.fail)
  with pytest.raises(type(error)):
    _run(models_and_data, tmp_path, 'trained', serving)
  assert len(calls) == 1
  assert not os.listdir(tmp_path / 'blessing')


def test_served_model_readable_on_a_retry_is_measured(
    models_and_data, tmp_path, monkeypatch):
  serving = tmp_path / 'serving'
  _push(models_and_data['untrained'], serving, 5)
  real_load = metrics.load_served_model
  failures = [OSError('transient: connection reset')]

  def flaky_load(version_dir):
    if failures:
      raise failures.pop()
    return real_load(version_dir)

  monkeypatch.setattr(executor.metrics_lib, 'load_served_model', flaky_load)
  monkeypatch.setattr(executor.time, 'sleep', lambda seconds: None)
  result, _, _ = _run(models_and_data, tmp_path, 'trained', serving)
  assert result['served_model'] is not None
  assert result['blessed'] is True


@pytest.fixture(scope='module')
def latent3_model(models_and_data):
  hp = vae_lib.Hyperparameters(latent_dim=3)
  return _export(vae_lib.build_vae(hp), hp, models_and_data['root'],
                 'latent3')


def test_signature_change_is_not_blessed_unless_allowed(
    models_and_data, latent3_model, tmp_path):
  models_and_data = dict(models_and_data, latent3=latent3_model)
  serving = tmp_path / 'serving'
  _push(models_and_data['untrained'], serving, 5)  # latent_dim 2
  result, _, _ = _run(models_and_data, tmp_path / 'a', 'latent3', serving,
                      tolerance=1000.0)
  assert result['blessed'] is False
  [reason] = [r for r in result['reasons'] if 'signature' in r]
  assert reason.startswith(
      'FAIL: serving signature changed (z float32 [None, 2] -> image float32 '
      '[None, 28, 28, 1] => z float32 [None, 3] -> image float32 '
      '[None, 28, 28, 1])')
  assert '--allow-signature-change' in reason

  allowed, _, _ = _run(models_and_data, tmp_path / 'b', 'latent3', serving,
                       tolerance=1000.0, allow_signature_change=True)
  assert allowed['blessed'] is True
  assert any(r.startswith('ok: serving signature changed')
             for r in allowed['reasons'])


def test_unchanged_signature_is_noted(models_and_data, tmp_path):
  serving = tmp_path / 'serving'
  _push(models_and_data['untrained'], serving, 5)
  result, _, _ = _run(models_and_data, tmp_path, 'trained', serving)
  assert ('ok: serving signature unchanged (z float32 [None, 2] -> image '
          'float32 [None, 28, 28, 1])') in result['reasons']


def test_version_that_carries_its_model_is_measured_without_its_origin(
    models_and_data, tmp_path):
  from components.atomic_pusher import executor as pusher  # pylint: disable=g-import-not-at-top
  source = models_and_data['untrained']
  version_dir = pusher.push(
      os.path.join(source, model_layout.SERVING_MODEL_DIR), str(tmp_path / 'serving'),
      {'model_uri': str(tmp_path / 'deleted-pipeline-root')}, None,
      {name: os.path.join(source, name)
       for name in (model_layout.ENCODER_DIR, model_layout.WARM_START_DIR)})
  result, _, _ = _run(models_and_data, tmp_path, 'trained',
                      tmp_path / 'serving')
  assert result['served_model_dir'] == version_dir
  assert result['served_model'] is not None


def test_old_version_whose_origin_is_gone_blocks_with_advice(
    models_and_data, tmp_path):
  serving = tmp_path / 'serving'
  version_dir = serving / '3'
  shutil.copytree(
      os.path.join(models_and_data['untrained'], model_layout.SERVING_MODEL_DIR),
      version_dir)
  serving_layout.write_push_info(str(version_dir),
                                 {'model_uri': str(tmp_path / 'gone')})
  result, _, _ = _run(models_and_data, tmp_path, 'trained', serving)
  assert result['blessed'] is False
  assert 'carries no model files' in result['served_model_error']
  assert 'roll back past that version' in result['served_model_error']


def _independent_terms(model_uri, examples, iwae_samples, seed):
  """Per-image (-ELBO, KL, label), computed here in float64 numpy from the
  exported encoder and decoder with the evaluator's draws of z, not with
  metrics.evaluate."""
  from models import data  # pylint: disable=g-import-not-at-top
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  model = metrics.load_trainer_model(model_uri)
  split = artifact_utils.get_split_uri([examples], 'eval')
  batch_size = max(1, executor.SAMPLES_PER_CALL // iwae_samples)
  neg_elbo, kl_all, labels = [], [], []
  for step, (images, batch_labels) in enumerate(data.make_dataset(
      os.path.join(split, '*'), batch_size, shuffle=False, with_labels=True)):
    z_mean, z_log_var = (t.numpy().astype(np.float64)
                         for t in model.encode(images))
    eps = tf.random.stateless_normal(
        [iwae_samples, *z_mean.shape], seed=[seed, step]).numpy()
    z = z_mean + np.exp(0.5 * z_log_var) * eps
    decoded = model.decode(tf.constant(
        z.reshape(-1, z.shape[-1]), tf.float32)).numpy().astype(np.float64)
    decoded = np.clip(decoded.reshape(iwae_samples, len(z_mean), -1),
                      1e-7, 1 - 1e-7)
    x = images.numpy().reshape(1, len(z_mean), -1).astype(np.float64)
    bce = -(x * np.log(decoded) + (1 - x) * np.log(1 - decoded)).sum(-1)
    kl = -0.5 * (1 + z_log_var - z_mean ** 2 - np.exp(z_log_var)).sum(-1)
    neg_elbo.append(bce.mean(0) + kl)
    kl_all.append(kl)
    labels.append(batch_labels.numpy())
  return (np.concatenate(neg_elbo), np.concatenate(kl_all),
          np.concatenate(labels))


def test_per_digit_figures_add_up_to_the_overall_ones(models_and_data,
                                                      tmp_path):
  serving = tmp_path / 'serving'
  _push(models_and_data['untrained'], serving, 3)
  result, _, _ = _run(models_and_data, tmp_path, 'trained', serving)
  per_label = result['per_label']
  assert sorted(per_label['candidate'], key=int) == [str(d) for d in range(10)]
  assert per_label['margin_nats'] == metrics.PER_LABEL_MARGIN_NATS
  neg_elbo, kl, labels = _independent_terms(
      models_and_data['trained'], models_and_data['examples'], 4, 0)
  assert len(neg_elbo) == EVAL_IMAGES
  for who in ('candidate', 'served'):
    figures = per_label[who]
    counts = np.array([figures[str(d)]['num_images'] for d in range(10)])
    assert counts.sum() == EVAL_IMAGES
    np.testing.assert_array_equal(counts, np.bincount(labels, minlength=10))
    weighted = sum(figures[str(d)]['neg_elbo'] * figures[str(d)]['num_images']
                   for d in range(10)) / EVAL_IMAGES
    overall = (result if who == 'candidate' else result['served_model'])
    assert weighted == pytest.approx(overall['neg_elbo'], rel=1e-6)
  # Against the independent computation, overall and per digit.
  assert result['neg_elbo'] == pytest.approx(neg_elbo.mean(), rel=1e-6)
  assert result['kl'] == pytest.approx(kl.mean(), rel=1e-6)
  for d in range(10):
    figures = per_label['candidate'][str(d)]
    assert figures['neg_elbo'] == pytest.approx(neg_elbo[labels == d].mean(),
                                                rel=1e-6)
    assert figures['reconstruction'] + figures['kl'] == pytest.approx(
        figures['neg_elbo'])
  # The untrained served model is worse at every digit: nothing flagged.
  assert per_label['worse_than_served'] == []


def _model_run_with_history(root: pathlib.Path):
  model_run = standard_artifacts.ModelRun()
  model_run.uri = str(root / 'model_run')
  os.makedirs(model_run.uri)
  keys = ('loss', 'reconstruction_loss', 'kl_loss')
  metrics_per_epoch = {key: [300.0, 250.0] for key in keys}
  metrics_per_epoch.update({f'val_{key}': [310.0, 260.0] for key in keys})
  record = history_lib.history_record([0, 1], metrics_per_epoch)
  pathlib.Path(model_run.uri, history_lib.HISTORY_FILE).write_text(
      json.dumps(record))
  return model_run


def _data_gate(root: pathlib.Path):
  anomalies = standard_artifacts.ExampleAnomalies()
  anomalies.uri = str(root / 'anomalies')
  os.makedirs(anomalies.uri)
  pathlib.Path(anomalies.uri, contracts.GATE_REPORT_FILE).write_text(
      json.dumps(report_test._GATE))  # pylint: disable=protected-access
  return anomalies


def test_report_against_a_served_model_with_history_and_gate(
    models_and_data, tmp_path):
  serving = tmp_path / 'serving'
  _push(models_and_data['untrained'], serving, 17)
  _, evaluation, _ = _run(
      models_and_data, tmp_path, 'trained', serving,
      extra_inputs={'model_run': [_model_run_with_history(tmp_path)],
                    'data_gate': [_data_gate(tmp_path)]})
  page = pathlib.Path(evaluation.uri, contracts.REPORT_FILE).read_text()
  for section_id, heading in report.SECTIONS:
    assert f'<section id="{section_id}"><h2>{heading}</h2>' in page
  assert report_test.external_references(page) == []
  images = report_test.decoded_images(page)
  # Two manifolds, per digit, reconstructions, samples, curves, histogram,
  # clusters.
  assert len(images) == 8 == page.count('<img ')
  for image in images:
    assert 300 <= image.width <= 1200 and 250 <= image.height <= 1000
  side = page[page.index('id="side-by-side"'):page.index('id="per-digit"')]
  assert 'served today: version 17' in side
  assert 'Served today (version 17)' in side and side.count('<img ') == 2
  curves = page[page.index('id="training-curves"'):page.index('id="data"')]
  assert '<img ' in curves and '2 epochs' in curves
  data = page[page.index('id="data"'):page.index('id="clusters"')]
  assert 'Data gate: <b>passed</b>' in data
  assert f'<td>eval</td><td>{EVAL_IMAGES}</td>' not in data  # the gate's 1045
  assert '<td>eval</td><td>1045</td>' in data


def test_report_without_history_says_so(models_and_data, tmp_path):
  empty_run = standard_artifacts.ModelRun()
  empty_run.uri = str(tmp_path / 'old_model_run')
  os.makedirs(empty_run.uri)
  _, evaluation, _ = _run(models_and_data, tmp_path, 'trained',
                          extra_inputs={'model_run': [empty_run]})
  page = pathlib.Path(evaluation.uri, contracts.REPORT_FILE).read_text()
  curves = page[page.index('id="training-curves"'):page.index('id="data"')]
  assert 'No training history is available' in curves
  assert 'a model trained before the Trainer wrote it' in curves
  assert '<img ' not in curves
  data = page[page.index('id="data"'):page.index('id="clusters"')]
  assert f'<td>eval</td><td>{EVAL_IMAGES}</td>' in data
  assert 'data gate&#x27;s output was not given to the evaluator' in data


def test_reconstructions_are_one_decode_of_the_chosen_images(
    models_and_data, tmp_path):
  """The reconstruction images are the chosen eval images, in order."""
  from models import data  # pylint: disable=g-import-not-at-top
  split = artifact_utils.get_split_uri([models_and_data['examples']], 'eval')
  dataset = data.make_dataset(os.path.join(split, '*'), 64, shuffle=False,
                              with_labels=True)
  all_images = np.concatenate([b[0].numpy() for b in dataset])
  indices = np.array([299, 0, 65, 64, 130])
  np.testing.assert_array_equal(drawing._images_at(dataset, indices),  # pylint: disable=protected-access
                                all_images[indices])
