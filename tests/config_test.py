"""The configuration tree (components/config.py) is where every setting and
its default lives: both runners' flags are generated from it, and a default
changed there reaches the flag, the component and its executor."""

import argparse
import dataclasses
import json
import shutil
import subprocess
import sys

import pytest

from components import config as config_lib
from conftest import REPO_ROOT
from models import validation
from pipeline import flags
import kubeflow_runner
import local_runner

KUBEFLOW_PATHS = ['--pipeline-root', 'gs://b/root', '--data-root', 'gs://b/d',
                  '--serving-root', 'gs://b/serving', '--image', 'i:1']


def settings(cls, prefix=''):
  """(flag, value) of every setting of a config instance's tree."""
  for field in dataclasses.fields(cls):
    value = getattr(cls, field.name)
    if validation.is_part(field):
      yield from settings(value, prefix + field.metadata.get('prefix', ''))
    else:
      yield (prefix + field.metadata.get('flag',
                                         field.name.replace('_', '-')), value)


def test_json_round_trip_and_partial_parts():
  tree = config_lib.PipelineConfig()
  assert config_lib.from_json(config_lib.PipelineConfig,
                              config_lib.to_json(tree)) == tree
  assert config_lib.from_json(config_lib.EvaluationConfig, '{}') == (
      config_lib.EvaluationConfig())
  with pytest.raises(ValueError, match='Unknown'):
    config_lib.from_json(config_lib.ServingConfig, '{"keep": 3}')
  with pytest.raises(ValueError, match='keep_versions must be an int >= 1'):
    config_lib.from_json(config_lib.ServingConfig, '{"keep_versions": 0}')


def test_both_runners_have_a_flag_for_every_setting_with_its_default():
  local = local_runner.parse_args([])
  compiled = kubeflow_runner.parse_args(['compile', '--output', 'p.yaml',
                                         *KUBEFLOW_PATHS])
  for args in (local, compiled):
    for flag, default in settings(config_lib.PipelineConfig()):
      assert getattr(args, flag.replace('-', '_')) == default, flag
    assert flags.config_from_args(args) == config_lib.PipelineConfig()
  for flag, default in settings(config_lib.KubeflowResources()):
    assert getattr(compiled, flag.replace('-', '_')) == default, flag


def _dests(cls, prefix=''):
  for field in dataclasses.fields(cls):
    if validation.is_part(field):
      yield from _dests(type(field.default),
                        prefix + field.metadata.get('prefix', ''))
    else:
      yield (prefix + field.metadata.get(
          'flag', field.name.replace('_', '-'))).replace('-', '_')


def test_every_flag_of_both_runners_is_a_setting_of_their_tree():
  from pipeline import runner_config  # pylint: disable=g-import-not-at-top
  parsers = {'local': (local_runner.build_parser(),
                       runner_config.LocalRunnerConfig)}
  commands = next(a for a in kubeflow_runner.build_parser()._actions  # pylint: disable=protected-access
                  if isinstance(a, argparse._SubParsersAction))  # pylint: disable=protected-access
  parsers['compile'] = (commands.choices['compile'],
                        runner_config.CompileConfig)
  parsers['deploy'] = (commands.choices['deploy'],
                       runner_config.DeployConfig)
  for name, (parser, cls) in parsers.items():
    options = {a.dest for a in parser._actions  # pylint: disable=protected-access
               if a.option_strings and a.dest != 'help'}
    settings_ = list(_dests(cls))
    assert len(settings_) == len(set(settings_)), name  # One flag each.
    assert options == set(settings_), name
  # And the tree comes back from them, with its defaults.
  compiled = kubeflow_runner.parse_args(['compile', '--output', 'p.yaml',
                                         *KUBEFLOW_PATHS])
  tree = flags.config_from_args(compiled, runner_config.CompileConfig)
  assert tree.package.paths.image == 'i:1'
  assert tree.package.s3 == runner_config.S3Storage()
  assert tree.package.pipeline == config_lib.PipelineConfig()
  local = flags.config_from_args(
      local_runner.parse_args(['--beam-arg=--a', '--beam-arg=--b']),
      runner_config.LocalRunnerConfig)
  assert local.beam_arg == ('--a', '--b') and local.max_examples is None
  for bad in (['--max-examples', '0'], ['--max-examples', 'x']):
    with pytest.raises(SystemExit) as exit_info:
      local_runner.parse_args(bad)
    assert exit_info.value.code == 64, bad


def test_flags_set_the_tree_and_check_its_bounds():
  args = local_runner.parse_args([
      '--anchor-max-pixel-jsd', '0.2', '--min-split-examples', '7',
      '--keep-versions', '2', '--accept-drift', '--latent-dim', '3'])
  tree = flags.config_from_args(args)
  assert tree.gate.anchor_thresholds.max_pixel_jsd == 0.2
  assert tree.gate.thresholds.max_pixel_jsd == 0.01
  assert tree.gate.limits.min_examples == 7
  assert tree.gate.accept_drift
  assert tree.serving.keep_versions == 2
  assert tree.training.hyperparameters.latent_dim == 3
  for bad in (['--max-label-linf', '1.5'], ['--keep-versions', '0'],
              ['--precision', 'float8']):
    with pytest.raises(SystemExit) as exit_info:
      local_runner.parse_args(bad)
    assert exit_info.value.code == 64, bad


# Runs in a copy of the repository whose components/config.py has another
# default; prints what the flag, the component and the executor see.
PROBE = '''
import json, sys
from components import config as config_lib
from components.vae_evaluator import executor
from pipeline import flags, pipeline
import local_runner
args = local_runner.parse_args([])
built = pipeline.create_pipeline(
    pipeline_name='p', pipeline_root=sys.argv[1], data_root=sys.argv[1],
    serving_dir=sys.argv[1], config=flags.config_from_args(args))
node = {n.id: n for n in built.components}['VaeEvaluator']
print(json.dumps({
    'flag': args.bless_threshold,
    'component': json.loads(node.exec_properties[executor.CONFIG_KEY]),
    'executor': executor.evaluation_config(
        node.exec_properties).bless_threshold}))
'''


@pytest.mark.slow
def test_a_default_changed_in_one_place_reaches_flag_component_executor(
    tmp_path):
  copy = tmp_path / 'repo'
  for name in ('components', 'layouts', 'models', 'pipeline', 'schema'):
    shutil.copytree(REPO_ROOT / name, copy / name,
                    ignore=shutil.ignore_patterns('__pycache__', '*_test.py'))
  for name in ('local_runner.py', 'conftest.py'):
    shutil.copy(REPO_ROOT / name, copy / name)
  config_file = copy / 'components' / 'config.py'
  text = config_file.read_text()
  assert text.count('      160.0, ') == 1
  config_file.write_text(text.replace('      160.0, ', '      123.5, '))
  result = subprocess.run(
      [sys.executable, '-c', PROBE, str(tmp_path / 'out')], cwd=copy,
      env={'PYTHONPATH': str(copy), 'PATH': '/usr/bin:/bin'},
      capture_output=True, text=True, timeout=300, check=False)
  assert result.returncode == 0, result.stderr[-3000:]
  seen = json.loads(result.stdout.strip().splitlines()[-1])
  assert seen['flag'] == 123.5
  assert seen['component']['bless_threshold'] == 123.5
  assert seen['executor'] == 123.5
  help_text = subprocess.run(
      [sys.executable, 'local_runner.py', '--help'], cwd=copy,
      env={'PYTHONPATH': str(copy), 'PATH': '/usr/bin:/bin'},
      capture_output=True, text=True, timeout=300, check=True).stdout
  assert 'default: 123.5' in help_text
