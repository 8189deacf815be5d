"""Tests of the deploy helpers that need no server (see also
tests/kubeflow_runner_test.py, which deploys to a fake KFP API)."""

import pytest
import yaml

from pipeline import kubeflow_deploy
from pipeline import kubeflow_package


def test_cron_checks():
  kubeflow_deploy.check_cron('0 0 3 * * *', kubeflow_deploy.KFP_CRON_FIELDS)
  kubeflow_deploy.check_cron('@every 6h', kubeflow_deploy.KFP_CRON_FIELDS)
  kubeflow_deploy.check_cron('TZ=Europe/Berlin 0 3 * * 1',
                             kubeflow_deploy.VERTEX_CRON_FIELDS)
  with pytest.raises(kubeflow_deploy.UsageError, match='5-field'):
    kubeflow_deploy.check_cron('@daily', kubeflow_deploy.VERTEX_CRON_FIELDS)
  with pytest.raises(kubeflow_deploy.UsageError, match='did you mean "0 0 3'):
    kubeflow_deploy.check_cron('0 3 * * *', kubeflow_deploy.KFP_CRON_FIELDS)
  with pytest.raises(kubeflow_deploy.UsageError,
                     match='did you mean "0 3 \\* \\* \\*"'):
    kubeflow_deploy.check_cron('0 0 3 * * *',
                               kubeflow_deploy.VERTEX_CRON_FIELDS)


def test_package_must_be_yaml():
  kubeflow_deploy.check_package_path('pipeline.yml')
  with pytest.raises(kubeflow_deploy.UsageError, match='rejects .json'):
    kubeflow_deploy.check_package_path('pipeline.json')


def test_finish_package_keeps_the_header(tmp_path):
  package = tmp_path / 'pipeline.yaml'
  package.write_text('# PIPELINE DEFINITION\n# Name: p\n'
                     'pipelineInfo:\n  name: p\nschemaVersion: 2.1.0\n'
                     'root: {dag: {tasks: {}}}\n'
                     'deploymentSpec: {executors: {}}\n')
  kubeflow_package.finish_package(str(package), pipeline_root='gs://b/root')
  text = package.read_text()
  assert text.startswith('# PIPELINE DEFINITION\n# Name: p\n')
  assert yaml.safe_load(text) == {
      'defaultPipelineRoot': 'gs://b/root', 'pipelineInfo': {'name': 'p'},
      'schemaVersion': '2.1.0', 'root': {'dag': {'tasks': {}}},
      'deploymentSpec': {'executors': {}}}
  assert kubeflow_deploy.read_package(str(package)) == {
      'name': 'p', 'pipeline_root': 'gs://b/root'}
