"""The push cannot go backwards, end to end: `python local_runner.py` with
another push in between, a changed serving signature, and retention."""

import json
import os
import pathlib
import shutil

import pytest

from components.atomic_pusher import executor as pusher
from conftest import export_untrained_model
from layouts import model as model_layout
from layouts import serving as serving_layout
from pipeline import exit_codes
from tests.local_runner_test import run_cli


def _versions(serving: pathlib.Path):
  return sorted(name for name in os.listdir(serving) if name.isdigit())


def _summary(out: pathlib.Path):
  return json.loads((out / 'run_summary.json').read_text())


@pytest.mark.slow
def test_reruns_measure_again_and_signature_changes_need_a_flag(tmp_path):
  out = tmp_path / 'out'
  serving = out / 'serving_model'
  args = ('--max-examples', '300', '--epochs', '1', '--output-dir', str(out),
          '--bless-threshold', '1000', '--bless-tolerance', '1000')
  first = run_cli(*args)
  assert first.returncode == 0, first.stderr[-3000:]
  v1 = _summary(out)['pushed_model']

  # Another run publishes v2, another model, after this evaluation (here
  # pushed by hand).
  other = pathlib.Path(export_untrained_model(tmp_path / 'other-model', 1))
  v2 = pusher.push(str(other / model_layout.SERVING_MODEL_DIR), str(serving),
                   {'model_uri': str(other)},
                   serving_layout.read_reference_statistics(v1),
                   {name: str(other / name)
                    for name in (model_layout.ENCODER_DIR, model_layout.WARM_START_DIR)})
  rerun = run_cli(*args)
  assert rerun.returncode == 0, rerun.stderr[-3000:]
  summary = _summary(out)
  statuses = {n: c['status'] for n, c in summary['components'].items()}
  assert statuses['Trainer'] == 'cached'
  # The served version is part of the evaluator's cache key: measured again.
  assert statuses['VaeEvaluator'] == 'ran'
  evaluation = json.loads(pathlib.Path(
      summary['plots']['report']).with_name('metrics.json').read_text())
  assert evaluation['served_model_dir'] == v2
  assert summary['pushed_model'] not in (None, v1, v2)
  v3 = summary['pushed_model']

  # A latent_dim change breaks the decoder's signature: not pushed...
  changed = run_cli(*args, '--latent-dim', '3')
  assert changed.returncode == 0, changed.stderr[-3000:]
  summary = _summary(out)
  assert summary['blessed'] is False and summary['pushed_model'] is None
  assert any('FAIL: serving signature changed (z float32 [None, 2]' in r
             for r in summary['blessing_reasons'])
  assert _versions(serving) == sorted(
      os.path.basename(v) for v in (v1, v2, v3))

  # ... unless allowed; retention then keeps the newest two versions.
  allowed = run_cli(*args, '--latent-dim', '3', '--allow-signature-change',
                    '--keep-versions', '2')
  assert allowed.returncode == 0, allowed.stderr[-3000:]
  v4 = _summary(out)['pushed_model']
  assert v4 is not None
  assert _versions(serving) == sorted(
      os.path.basename(v) for v in (v3, v4))

  # Versions stand alone: without the pipeline root, the gate, the evaluator
  # and --warm-start use what the served version carries.
  shutil.rmtree(out / 'pipeline')
  alone = run_cli(*args, '--latent-dim', '3', '--warm-start')
  assert alone.returncode == 0, alone.stderr[-3000:]
  summary = _summary(out)
  assert {c['status'] for c in summary['components'].values()} == {'ran'}
  assert summary['data_gate']['reference']['version_dir'] == v4
  evaluation = json.loads(pathlib.Path(
      summary['plots']['report']).with_name('metrics.json').read_text())
  assert evaluation['served_model_dir'] == v4
  assert evaluation['served_model'] is not None
  assert summary['pushed_model'] is not None

  # A served version whose files differ from its record stops the run at
  # the data gate, naming the file, with its own exit code: nothing is
  # retried, trained or pushed.
  v5 = summary['pushed_model']
  pathlib.Path(v5, 'saved_model.pb').write_bytes(b'unreadable')
  corrupt = run_cli(*args, '--latent-dim', '3', '--bless-tolerance', '999')
  assert corrupt.returncode == exit_codes.SERVED_VERSION_CORRUPT, (
      corrupt.stderr[-3000:])
  assert (f'{v5} does not match its record '
          f'({serving_layout.VERSION_RECORD_FILE}): saved_model.pb was '
          'changed' in corrupt.stderr)
  assert 'python -m pipeline.rollback --serving-dir' in corrupt.stderr
  assert 'Traceback' not in corrupt.stderr
  assert _versions(serving)[-1] == os.path.basename(v5)
