"""Tests of tests/container_image.py's own logic, without podman: the
stand-in base's content key, pip's settings for the build, and a compiled
task's mapping to a `podman run` command line (volumes and environment).
The image itself is built and run by kubeflow_image_test.py (-m image)."""

import json
import os
import pathlib
import sys

import yaml

from pipeline import kfp_launcher
from tests import container_image

PACKAGES = ('ca-certificates', 'libssl3', 'zlib1g')
MIRROR = 'http://mirror.example/debian'


def _fake_prefix(root: pathlib.Path) -> pathlib.Path:
  prefix = root / 'versions' / '3.10.13'
  files = {
      'bin/python3.10': b'\x7fELF interpreter',
      'lib/libpython3.10.so.1.0': b'\x7fELF libpython',
      'lib/python3.10/os.py': b'# os',
      'lib/python3.10/site-packages/pip/__init__.py': b'# pip',
      'lib/python3.10/site-packages/pip-23.0.1.dist-info/RECORD': b'pip',
      'lib/python3.10/site-packages/setuptools/__init__.py': b'# st',
      'lib/python3.10/site-packages/distutils-precedence.pth': b'import x',
  }
  for relative, content in files.items():
    (prefix / relative).parent.mkdir(parents=True, exist_ok=True)
    (prefix / relative).write_bytes(content)
  os.symlink('python3.10', prefix / 'bin' / 'python')
  return prefix


def _key(prefix, packages=PACKAGES, mirror=MIRROR):
  return container_image.base_key(prefix, packages, mirror)


def test_the_base_key_is_stable_and_ignores_what_the_base_leaves_out(
    tmp_path):
  prefix = _fake_prefix(tmp_path)
  key = _key(prefix)
  assert len(key) == 16 and key == _key(prefix)
  assert key == _key(prefix, packages=tuple(reversed(PACKAGES)))
  assert container_image.base_tag(key) == (
      f'localhost/mnist-vae-tfx-base:3.10-bookworm-{key}')
  # Touching a file, or what the base does not copy (other site-packages,
  # test suites, bytecode, the static libpython), keeps the key.
  os.utime(prefix / 'lib' / 'python3.10' / 'os.py', (0, 0))
  for relative in ('lib/python3.10/site-packages/numpy/__init__.py',
                   'lib/python3.10/site-packages/machine-hook.pth',
                   'lib/python3.10/test/test_os.py',
                   'lib/python3.10/__pycache__/os.cpython-310.pyc',
                   'lib/python3.10/config-3.10/libpython3.10.a'):
    (prefix / relative).parent.mkdir(parents=True, exist_ok=True)
    (prefix / relative).write_bytes(b'x')
  assert _key(prefix) == key
  copied = [p.relative_to(prefix).as_posix()
            for p in container_image._prefix_files(prefix)]
  assert 'lib/python3.10/site-packages/pip/__init__.py' in copied
  assert 'bin/python' in copied
  assert not [p for p in copied if 'numpy' in p or 'hook' in p
              or '/test/' in p or p.endswith(('.pyc', '.a'))]


def test_the_base_key_changes_with_the_interpreter_and_the_recipe(tmp_path):
  prefix = _fake_prefix(tmp_path)
  key = _key(prefix)
  # The same size, other content: a rebuilt libpython.
  (prefix / 'lib' / 'libpython3.10.so.1.0').write_bytes(b'\x7fELF libpythoN')
  rebuilt = _key(prefix)
  assert rebuilt != key
  (prefix / 'lib' / 'python3.10' / 'new.py').write_bytes(b'# new')
  assert _key(prefix) != rebuilt
  assert _key(prefix, packages=PACKAGES + ('tzdata',)) != _key(prefix)
  assert _key(prefix, mirror='http://other.example/debian') != _key(prefix)
  # The same files at another absolute path: another base (libpython is
  # found by that path).
  other = _fake_prefix(tmp_path / 'elsewhere')
  assert _key(other) != key


def test_the_debian_mirror_is_the_one_apt_uses(tmp_path):
  deb822 = tmp_path / 'debian.sources'
  deb822.write_text('Types: deb\nURIs: http://security.example/debian-security'
                    '\nSuites: bookworm-security\n\nTypes: deb\n'
                    f'URIs: {MIRROR}\nSuites: bookworm\n')
  assert container_image.debian_mirror([str(deb822)]) == MIRROR
  one_line = tmp_path / 'sources.list'
  one_line.write_text(f'deb [arch=amd64] {MIRROR} bookworm main\n')
  assert container_image.debian_mirror(
      [str(tmp_path / 'missing'), str(one_line)]) == MIRROR


def test_the_build_uses_the_machines_pip_indexes_and_ca_bundle():
  config = container_image.parse_pip_config([
      "global.extra-index-url='file:///opt/local/simple https://idx.example/s'",
      "global.find-links='/opt/wheels'",
      "global.cert='/etc/ssl/certs/ca-certificates.crt'",
      "global.index-url='https://files.example/simple'",
      ":env:.index-url='https://env.example/simple'",
      ":env:.default-timeout='180'",
      'not a setting',
  ])
  assert config['index-url'] == 'https://env.example/simple'
  args = container_image.pip_build_settings(config)
  assert args == {
      'PIP_INDEX_URL': 'https://env.example/simple',
      'PIP_EXTRA_INDEX_URL': 'https://idx.example/s',
      'PIP_DEFAULT_TIMEOUT': '180',
      'PIP_CERT': container_image.BUILD_CERT_PATH,
  }
  command = container_image.build_command(
      'localhost/base:1', 'localhost/img:t', config,
      context=pathlib.Path('/src'))
  assert command[:4] == ['podman', '--runtime', 'runc',
                         '--cgroup-manager=cgroupfs']
  assert command[4] == 'build'
  assert '--network=host' in command
  assert ['--build-arg', 'BASE_IMAGE=localhost/base:1'] == command[
      command.index('BASE_IMAGE=localhost/base:1') - 1:][:2]
  assert (f'/etc/ssl/certs/ca-certificates.crt:'
          f'{container_image.BUILD_CERT_PATH}:ro') in command
  assert command[-5:] == ['--tag', 'localhost/img:t', '--file',
                          '/src/Dockerfile', '/src']
  # No local index or wheel folder reaches the build.
  assert not [a for a in command if 'file://' in a or '/opt/' in a]
  # Nothing configured: pip's defaults, no build arguments.
  assert container_image.pip_build_settings({}) == {}


def test_ulimits_are_the_shells_hard_limit():
  import resource  # pylint: disable=g-import-not-at-top
  hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
  assert container_image.ulimit_flags() == [
      '--ulimit', f'nofile={hard}:{hard}', '--ulimit', 'nproc=4096:4096']


def test_a_task_maps_to_podman_run_with_its_mounts_and_env_names_only(
    tmp_path):
  command = container_image.task_command(
      'localhost/img:t', ['python', '-m', 'pipeline.kfp_entrypoint', '--x',
                          '{"a": 1}'],
      {'S3_ENDPOINT': 'http://127.0.0.1:9', 'AWS_SECRET_ACCESS_KEY': 's3cr3t'},
      [tmp_path / 'pods' / 'Trainer', tmp_path / 'root', tmp_path / 'root'],
      network='host', nofile=1024, name='kfp-trainer-1')
  assert command[:5] == ['podman', '--runtime', 'runc',
                         '--cgroup-manager=cgroupfs', 'run']
  assert '--rm' in command and '--network=host' in command
  assert ['--ulimit', 'nofile=1024:1024'] == command[
      command.index('nofile=1024:1024') - 1:][:2]
  volumes = [command[i + 1] for i, a in enumerate(command) if a == '--volume']
  assert volumes == [f'{tmp_path}/pods/Trainer:{tmp_path}/pods/Trainer:rw',
                     f'{tmp_path}/root:{tmp_path}/root:rw']
  envs = [command[i + 1] for i, a in enumerate(command) if a == '--env']
  assert envs == ['AWS_SECRET_ACCESS_KEY', 'S3_ENDPOINT']
  assert 's3cr3t' not in ' '.join(command)
  image_at = command.index('localhost/img:t')
  assert command[image_at + 1:] == ['python', '-m', 'pipeline.kfp_entrypoint',
                                    '--x', '{"a": 1}']
  assert '--workdir' not in command  # The image's, as in a pod.


def _one_task_package(path: pathlib.Path) -> str:
  spec = {
      'pipelineInfo': {'name': 'p'},
      'root': {'dag': {'tasks': {'Trainer': {
          'componentRef': {'name': 'comp-trainer'},
          'inputs': {'parameters': {'epochs': {
              'runtimeValue': {'constant': 2}}}}}}}},
      'components': {'comp-trainer': {
          'executorLabel': 'Trainer_executor',
          'outputDefinitions': {'artifacts': {'model': {
              'artifactType': {'schemaTitle': 'tfx.Model'}}}}}},
      'deploymentSpec': {'executors': {'Trainer_executor': {'container': {
          'image': 'registry.example.com/img:t',
          'command': ['python', '-m', 'pipeline.kfp_entrypoint'],
          'args': ['--json_serialized_invocation_args', '{{$}}'],
          'env': [{'name': 'S3_ENDPOINT', 'value': 'http://127.0.0.1:9'}]}}}},
  }
  platform = {'platforms': {'kubernetes': {'deploymentSpec': {'executors': {
      'Trainer_executor': {'secretAsEnv': [{
          'secretName': 'creds',
          'keyToEnv': [{'secretKey': 'secretkey',
                        'envVar': 'AWS_SECRET_ACCESS_KEY'}]}]}}}}}}
  path.write_text(yaml.safe_dump_all([spec, platform]))
  return str(path)


def test_the_launcher_hands_the_container_the_spec_env_only(
    tmp_path, monkeypatch):
  """kfp_launcher.Run(in_container=...): the hook gets the compiled command
  with the executor input substituted and the spec's environment (not this
  machine's); podman runs with the values in its own environment."""
  monkeypatch.setenv('AWS_ACCESS_KEY_ID', 'the-machines-own')
  package = _one_task_package(tmp_path / 'pipeline.yaml')
  root = tmp_path / 'root'
  calls = []
  in_image = container_image.InImage('localhost/img:t', [root])

  def in_container(task, argv, env, task_dir):
    calls.append((task, argv, env, task_dir, in_image(task, argv, env,
                                                      task_dir)))
    # Stands in for podman: it must see the spec's values to pass them on.
    check = ('import os, sys; sys.exit(0 if os.environ['
             '"AWS_SECRET_ACCESS_KEY"] == "s3cr3t" else 3)')
    return [sys.executable, '-c', check]

  run = kfp_launcher.Run(package, pipeline_root=str(root),
                         workdir=tmp_path / 'pods',
                         secrets={'creds': {'secretkey': 's3cr3t'}},
                         in_container=in_container).run()
  assert run.completed == ['Trainer']
  [(task, argv, env, task_dir, podman)] = calls
  assert task == 'Trainer' and task_dir == tmp_path / 'pods' / 'Trainer'
  assert env == {'S3_ENDPOINT': 'http://127.0.0.1:9',
                 'AWS_SECRET_ACCESS_KEY': 's3cr3t'}
  assert argv[:4] == ['python', '-m', 'pipeline.kfp_entrypoint',
                      '--json_serialized_invocation_args']
  executor_input = json.loads(argv[4])
  assert executor_input['inputs']['parameterValues'] == {'epochs': 2}
  [model] = executor_input['outputs']['artifacts']['model']['artifacts']
  assert model['uri'].startswith(f'{root}/p/{run.run_id}/Trainer/')
  assert executor_input['outputs']['outputFile'].startswith(f'{task_dir}/')
  volumes = [podman[i + 1] for i, a in enumerate(podman) if a == '--volume']
  assert volumes == sorted([f'{root}:{root}:rw',
                            f'{task_dir}:{task_dir}:rw'])
  envs = [podman[i + 1] for i, a in enumerate(podman) if a == '--env']
  assert envs == ['AWS_SECRET_ACCESS_KEY', 'S3_ENDPOINT']
  assert podman[podman.index('localhost/img:t') + 1:] == argv
