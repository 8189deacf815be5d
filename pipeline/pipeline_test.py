"""The pipeline's Beam arguments: on the DirectRunner, TFX's Beam executors
package nothing."""

import tempfile

import pytest
from tfx.components.statistics_gen import executor as statistics_executor

from pipeline import pipeline as pipeline_lib

DIRECT = ['--direct_running_mode=multi_processing', '--direct_num_workers=2']


@pytest.mark.parametrize('args, added', [
    (DIRECT, True),
    ([*DIRECT, '--runner=DirectRunner'], True),
    (['--runner', 'direct'], True),
    ([*DIRECT, '--requirements_file=/tmp/r.txt'], False),
    (['--runner=DataflowRunner', '--project=p'], False),
    (['--runner=PortableRunner', '--job_endpoint=localhost:8099'], False),
])
def test_only_the_direct_runner_gets_the_empty_requirements(args, added):
  result = pipeline_lib.with_beam_dependencies(args)
  assert result[:len(args)] == args
  assert (result[len(args):] == [pipeline_lib.DIRECT_RUNNER_REQUIREMENTS]
         ) is added
  assert len(result) == len(args) + added


def _executor_temp_files(monkeypatch, tmp_path, args):
  """The files a real StatisticsGen executor leaves in a fresh temporary
  folder when it is set up with Beam arguments `args`."""
  temp = tmp_path / str(len(list(tmp_path.iterdir())))
  temp.mkdir()
  monkeypatch.setattr(tempfile, 'tempdir', str(temp))
  statistics_executor.Executor(
      statistics_executor.Executor.Context(beam_pipeline_args=args))
  return [p for p in temp.rglob('*') if p.is_file()]


def test_beam_executors_leave_no_copy_of_tfx_behind(monkeypatch, tmp_path):
  # As TFX does it without the option: an sdist of TFX in a folder of its own.
  left = _executor_temp_files(monkeypatch, tmp_path, DIRECT)
  assert any(p.name.startswith('tfx_ephemeral') for p in left), left
  assert _executor_temp_files(
      monkeypatch, tmp_path, pipeline_lib.with_beam_dependencies(DIRECT)) == []


def test_the_trainer_fingerprint_covers_the_executor_the_trainer_runs():
  from components.vae_trainer import component  # pylint: disable=g-import-not-at-top
  from pipeline import trainer_config  # pylint: disable=g-import-not-at-top
  assert trainer_config.TRAINER_EXECUTOR_MODULE == (
      component.VaeTrainer.EXECUTOR_SPEC.executor_class.__module__)
  assert trainer_config.TRAINER_RUN_FN.rpartition('.')[0] == 'models.trainer'
