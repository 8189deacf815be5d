"""The Kubeflow image, built and run: every compiled task in a container.

`python -m pytest -m image` (the default test command leaves these out;
conftest.py): builds the repository's Dockerfile with podman on the local
stand-in for its default base (tests/container_image.py), checks the image,
then executes the compiled package with the launcher emulation
(tests/kfp_launcher.py), each task's compiled command run by
`podman run IMAGE` with the pipeline root, data and push destination mounted
and only the environment the spec gives it; on a local root, on `s3://`
(moto on 127.0.0.1), and with TFX's stock entrypoint, which fails at the
first task. benchmarks/kubeflow_image.py runs the same and records it.
"""

import pathlib

import pytest

from benchmarks import kubeflow_image
from tests import container_image
from tests.kubeflow_execution_test import ALL_TASKS

pytestmark = pytest.mark.image


@pytest.fixture(scope='module')
def image(tmp_path_factory):
  reason = container_image.podman_available()
  if reason:
    pytest.skip(reason)
  built = kubeflow_image.build(tmp_path_factory.mktemp('build'))
  return built


def test_the_image_builds_and_holds_only_the_lock_and_the_project(image):
  assert image['checks']['pip_check']['exit_code'] == 0
  assert 'No broken requirements found' in image['checks']['pip_check'][
      'output']
  # The project imports from the venv's site-packages; no source tree.
  for module, path in image['checks']['modules'].items():
    assert path.startswith('/opt/mnist-vae-tfx/lib/python3.10/site-packages/'
                           f'{module}/'), (module, path)
  assert image['checks']['listing'] == {'/pipeline': ['schema'], '/tmp': []}
  # The lock's closure (a venv of 3.6 GB here) on a base of 0.2 GB, and
  # nothing else: no compiler, no pip cache, no second copy of a layer.
  assert 3e9 < image['image']['size'] < 4.5e9, image['image']['size']


def test_every_task_runs_in_the_image_to_a_pushed_model(image, tmp_path):
  result = kubeflow_image.run_local(image['image']['tag'], tmp_path)
  assert result['failure'] is None, result['failure']
  assert [t for t, s in result['tasks'].items()
          if s['result'] == 'succeeded'] == ALL_TASKS
  assert 'type taken from the component inputs spec' in result['logs'][
      'Trainer']
  assert len(result['pushed_versions']) == 1
  assert result['decoded_on_host'] == '(2, 28, 28, 1)'
  assert result['decoded_in_image'] == '(2, 28, 28, 1)'


def test_every_task_runs_in_the_image_on_s3(image, tmp_path):
  result = kubeflow_image.run_s3(image['image']['tag'], tmp_path)
  assert result['failure'] is None, result['failure']
  assert list(result['tasks']) == ALL_TASKS
  assert all(s['result'] == 'succeeded' for s in result['tasks'].values())
  for task in ALL_TASKS[2:]:
    assert 'bucket(s) mlpipeline readable' in result['logs'][task], task
  assert result['directory_markers'] == []
  assert len(result['pushed_versions']) == 1
  assert result['decoded_in_image'] == '(2, 28, 28, 1)'


def test_the_stock_entrypoint_fails_at_the_first_task(image, tmp_path):
  result = kubeflow_image.run_stock(image['image']['tag'], tmp_path)
  assert result['failure']['task'] == 'CuratedSchemaGen'
  assert 'Could not import system.Artifact' in result['logs'][
      'CuratedSchemaGen']
  assert [t for t, s in result['tasks'].items()
          if s['result'] == 'succeeded'] == []
