"""Tests of the exit codes a local run ends with (pipeline/local_run.py);
tests/local_runner_test.py runs the command end to end."""

import argparse
import logging

import pytest

from components.data_gate import gate
from components.example_gen import idx
from components.example_gen import window
from layouts import serving as serving_layout
from pipeline import exit_codes
from pipeline import local_run
from pipeline import run_lock
from pipeline import run_summary

LOG = logging.getLogger('local_run_test')


def _run(tmp_path, **flags) -> local_run.LocalRun:
  args = argparse.Namespace(
      output_dir=str(tmp_path / 'out'), serving_dir=None, tfds=None,
      tfds_data_dir=None, tfds_manual_dir=None,
      data_dir=str(tmp_path / 'nowhere'), no_cache=False, max_examples=None)
  vars(args).update(flags)
  return local_run.LocalRun(args, LOG, 'serving_model', [])


def test_every_outcome_is_a_documented_exit_code_of_a_narrow_type():
  for error_type, outcome in local_run.OUTCOMES.items():
    assert outcome.code in exit_codes.MEANINGS, error_type
    assert outcome.code != exit_codes.OK, error_type
    # Programming errors must still crash with a traceback.
    assert error_type not in (Exception, ValueError, RuntimeError, OSError,
                              KeyError, TypeError), error_type
  assert local_run.STOPS == tuple(local_run.OUTCOMES)


def test_a_subclass_gets_its_base_types_outcome():
  span_error = window.SpanError('span 3', 'train-images-idx3-ubyte.gz missing')
  assert local_run.outcome_of(span_error) == (
      local_run.OUTCOMES[idx.IdxFormatError])
  with pytest.raises(KeyError):
    local_run.outcome_of(ValueError('not documented'))


def test_a_missing_data_dir_stops_before_anything_runs(tmp_path, caplog):
  run = _run(tmp_path)
  with pytest.raises(local_run.DataSourceError) as error:
    run.run()
  with caplog.at_level(logging.ERROR, logger=LOG.name):
    assert run.stopped(error.value) == exit_codes.BAD_INPUT == 2
  assert caplog.messages == [
      f'{tmp_path / "nowhere"}: data directory not found']
  assert not (tmp_path / 'out').exists()


@pytest.mark.parametrize('error, code, message', [
    (idx.IdxFormatError('f.gz: wrong magic number'), exit_codes.BAD_INPUT,
     'bad input data: f.gz: wrong magic number'),
    (run_lock.RunLockedError('out is in use by another run (pid 7)'),
     exit_codes.OUTPUT_DIR_LOCKED, 'out is in use by another run (pid 7)'),
    (serving_layout.VersionCorruptError('version 3: saved_model.pb changed'),
     exit_codes.SERVED_VERSION_CORRUPT,
     'version 3: saved_model.pb changed. Nothing was trained or pushed (exit '
     'code 5). Roll back past it, which publishes an intact earlier version '
     'above it: python -m pipeline.rollback --serving-dir {serving_dir}'),
])
def test_what_the_operator_is_told(tmp_path, caplog, error, code, message):
  run = _run(tmp_path)
  with caplog.at_level(logging.ERROR, logger=LOG.name):
    assert run.stopped(error) == code
  assert caplog.messages == [message.format(serving_dir=run.serving_dir)]
  assert run.serving_dir == str(tmp_path / 'out' / 'serving_model')


def test_a_data_gate_stop_shows_the_summary_between_its_lines(
    tmp_path, caplog, capsys):
  run = _run(tmp_path)
  run.summary = {'components': {}, 'metrics': {}}
  run.summary_path = str(tmp_path / 'out' / run_summary.SUMMARY_FILE)
  report = {'splits': {'eval': {'findings': [{'kind': gate.SCHEMA}]}}}
  error = gate.DataGateError('the data gate stopped the run', report)
  with caplog.at_level(logging.ERROR, logger=LOG.name):
    assert run.stopped(error) == exit_codes.DATA_GATE == 4
  assert caplog.messages == [
      'the data gate stopped the run',
      f'Nothing was trained or pushed (exit code 4). Summary: '
      f'{run.summary_path}. Schema and split sanity findings are data bugs '
      'that --accept-drift does not let through: fix the drop.']
  assert capsys.readouterr().out == run_summary.format_summary(
      run.summary) + '\n'
