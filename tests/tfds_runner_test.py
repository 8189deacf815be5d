"""End-to-end: `local_runner.py --tfds` on TFDS mnist prepared offline from the
shipped files, and its failures (exit code 2, before anything runs)."""

import json
import time

import pytest

from layouts import contracts
from pipeline import exit_codes
import local_runner

from tests.local_runner_test import count_examples
from tests.local_runner_test import open_store
from tests.local_runner_test import run_cli

from conftest import REPO_ROOT

# An IDX run's summary, as committed (README, the first command).
_IDX_RUNS = REPO_ROOT / 'benchmarks' / 'results' / 'readme_runs_2026-11-25.json'


@pytest.mark.slow
def test_tfds_mnist_run_completes_like_an_idx_run(tfds_mnist, tmp_path):
  out = tmp_path / 'out'
  result = run_cli('--tfds', 'mnist', '--tfds-data-dir', tfds_mnist.data_dir,
                   '--max-examples', '500', '--epochs', '1',
                   '--output-dir', str(out))
  assert result.returncode == 0, result.stderr[-3000:]
  summary = json.loads((out / 'run_summary.json').read_text())
  idx_summary = json.loads(_IDX_RUNS.read_text())['runs'][1]['run_summary']
  # Recorded before the window of spans, the anchor, early stopping and the
  # nothing-new rule: the keys they added (and the gate's one config, which
  # replaced its thresholds).
  assert set(summary) == set(idx_summary) | {
      'spans', 'training', contracts.NOTHING_NEW_KEY}
  assert summary[contracts.NOTHING_NEW_KEY] is None  # TFDS has no digest
  assert summary['training']['epochs_run'] == 1
  assert set(summary['data_gate']) == (
      set(idx_summary['data_gate']) - {'thresholds'}) | {
          'anchor', 'window', 'config'}
  assert set(summary['components']) == (
      set(idx_summary['components']) - {'IdxExampleGen'} | {'TfdsExampleGen'})
  assert all(c['status'] == 'ran' for c in summary['components'].values())
  assert summary['data_gate']['passed'] is True
  assert set(summary['metrics']) == set(idx_summary['metrics'])
  [examples] = open_store(out).get_artifacts_by_type('Examples')
  assert count_examples(f'{examples.uri}/Split-train') == 500
  assert count_examples(f'{examples.uri}/Split-eval') == 500


@pytest.mark.slow
def test_unprepared_data_set_without_manual_dir_exits_2_at_once(tmp_path):
  start = time.monotonic()
  result = run_cli('--tfds', 'fashion_mnist', '--tfds-data-dir',
                   str(tmp_path / 'tfds'), '--output-dir', str(tmp_path / 'out'))
  assert time.monotonic() - start < 30
  assert result.returncode == 2, result.stderr[-3000:]
  assert 'fashion_mnist: not prepared in' in result.stderr
  assert '--tfds-manual-dir' in result.stderr
  assert not (tmp_path / 'out').exists()


@pytest.mark.parametrize('argv, message', [
    (['--tfds', 'mnist', '--data-dir', 'data/mnist'],
     '--data-dir and --tfds are two data sources'),
    (['--tfds-data-dir', '/tmp/tfds'], '--tfds-data-dir and --tfds-manual-dir '
     'need --tfds'),
])
def test_tfds_flag_combinations_are_usage_errors(argv, message, capsys):
  with pytest.raises(SystemExit) as exited:
    local_runner.parse_args(argv)
  assert exited.value.code == exit_codes.USAGE
  assert message in capsys.readouterr().err


def test_mnist_manual_dir_defaults_to_the_shipped_files():
  args = local_runner.parse_args(['--tfds', 'mnist'])
  assert args.tfds_manual_dir == local_runner.DEFAULT_DATA_DIR
  assert args.data_dir is None
  assert local_runner.parse_args([]).data_dir == local_runner.DEFAULT_DATA_DIR
