"""The Kubeflow image, built and run with podman on a machine with no registry.

A test helper, not a test (used by tests/kubeflow_image_test.py):

* `ensure_base_image()`: a local stand-in for the Dockerfile's default base
  (`python:3.10-slim-bookworm`), since no registry can be pulled from here.
  It is a Debian bookworm root file system from `debootstrap
  --variant=minbase`, with the runtime libraries the official image keeps
  (ca-certificates, netbase, tzdata, and the Debian packages of the
  libraries the interpreter links, found with `ldd` as the official image's
  Dockerfile finds them), plus this machine's Python 3.10 build copied to the
  same absolute path (its `libpython` is found by that path) with only pip
  and setuptools in its site-packages, then `podman import`ed. Its tag
  carries a content key (`base_key()`), so it is built once per machine and
  again only when its recipe or the interpreter changes.
* `build_image()`: the repository's Dockerfile, with only `BASE_IMAGE`
  swapped, and pip inside the build configured as pip is on this machine
  (`pip_build_settings()`: index URLs as build arguments, the CA bundle
  mounted for the build only); `build_checked_image()`: the base, the image
  and its `image_checks()`.
* `task_command()`: a compiled task's command line and environment as a
  `podman run` of the image, for pipeline/kfp_launcher.py's
  `Run(in_container=)`: the task's folder and the given host folders
  (pipeline root, data, push destination) mounted at their own paths, the
  environment exactly the one the compiled spec gives, nothing of the
  source tree.

Podman runs here with runc and cgroupfs (crun fails on this host's hybrid
cgroups) and explicit ulimits: nofile at the shell's hard limit, read when
the command is built (podman's default is above it, and setrlimit fails).
"""

import hashlib
import json
import logging
import os
import pathlib
import re
import resource
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence

logger = logging.getLogger(__name__)

REPO_ROOT = pathlib.Path(__file__).resolve().parent.parent
PODMAN = 'podman'
# Bump when the stand-in base's recipe changes in a way its inputs miss.
BASE_RECIPE_VERSION = 1
BASE_REPOSITORY = 'localhost/mnist-vae-tfx-base'
BASE_SUITE = 'bookworm'
# What python:3.10-slim-bookworm installs besides the interpreter's libraries.
BASE_PACKAGES = ('ca-certificates', 'netbase', 'tzdata')
# The only site-packages entries kept from the interpreter's build: those of
# a fresh CPython install (ensurepip's pip and setuptools).
SITE_PACKAGES_KEPT = re.compile(
    r'^(pip|setuptools|pkg_resources|_distutils_hack)($|-.*\.dist-info$)'
    r'|^distutils-precedence\.pth$')
# What the official image's Dockerfile deletes from its Python install.
DELETED_DIRS = frozenset(('test', 'tests', 'idle_test', '__pycache__'))
IMAGE = 'localhost/mnist-vae-tfx:image-test'
# Where the build sees this machine's pip CA bundle (mounted, not copied).
BUILD_CERT_PATH = '/run/pip-build/ca-bundle.pem'
# pip settings passed to the build as PIP_* arguments (Dockerfile ARGs).
PIP_BUILD_KEYS = ('index-url', 'extra-index-url', 'trusted-host',
                  'default-timeout', 'cert')


class ImageError(RuntimeError):
  """A podman, debootstrap or build step failed."""


# -- podman -------------------------------------------------------------------


def nofile_hard_limit() -> int:
  return resource.getrlimit(resource.RLIMIT_NOFILE)[1]


def podman_global_flags() -> List[str]:
  """Flags before podman's subcommand that make it work on this host."""
  return [PODMAN, '--runtime', 'runc', '--cgroup-manager=cgroupfs']


def ulimit_flags(nofile: Optional[int] = None) -> List[str]:
  nofile = nofile or nofile_hard_limit()
  return ['--ulimit', f'nofile={nofile}:{nofile}',
          '--ulimit', 'nproc=4096:4096']


def podman_available() -> Optional[str]:
  """Why podman cannot run containers here, or None when it can."""
  if shutil.which(PODMAN) is None:
    return 'podman is not installed (apt-get install podman runc debootstrap)'
  if shutil.which('runc') is None:
    return 'runc is not installed (apt-get install runc)'
  return None


def _run(command: Sequence[str], **kwargs) -> subprocess.CompletedProcess:
  logger.info('$ %s', shlex.join(command))
  completed = subprocess.run(command, capture_output=True, text=True,
                             check=False, **kwargs)
  if completed.returncode:
    raise ImageError(f'{shlex.join(command[:4])} ... failed with exit code '
                     f'{completed.returncode}:\n{completed.stderr[-4000:]}')
  return completed


def image_exists(tag: str) -> bool:
  return subprocess.run([*podman_global_flags(), 'image', 'exists', tag],
                        check=False).returncode == 0


def image_size(tag: str) -> int:
  """The image's size in bytes, as `podman images` reports it."""
  return int(_run([*podman_global_flags(), 'image', 'inspect', '--format',
                   '{{.Size}}', tag]).stdout.strip())


def run_in_image(image: str, argv: Sequence[str], timeout: float = 600
                 ) -> subprocess.CompletedProcess:
  """`podman run --rm IMAGE argv`, no network, no mounts."""
  return subprocess.run(
      [*podman_global_flags(), 'run', '--rm', '--network=none',
       *ulimit_flags(), image, *argv],
      capture_output=True, text=True, timeout=timeout, check=False)


# -- the stand-in base --------------------------------------------------------


def python_prefix(version: str = '3.10.13') -> pathlib.Path:
  """This machine's Python 3.10 build (pyenv's), or $STAND_IN_PYTHON_PREFIX."""
  if os.environ.get('STAND_IN_PYTHON_PREFIX'):
    return pathlib.Path(os.environ['STAND_IN_PYTHON_PREFIX'])
  completed = _run(['pyenv', 'prefix', version])
  return pathlib.Path(completed.stdout.strip())


def _prefix_files(prefix: pathlib.Path) -> List[pathlib.Path]:
  """The interpreter's files as they go into the base: site-packages holds
  only pip and setuptools, and what the official image deletes is left out
  (test suites, bytecode, the static libpython)."""
  site_packages = 'lib/python3.10/site-packages/'
  files = []
  for path in sorted(prefix.rglob('*')):
    if path.is_dir() and not path.is_symlink():
      continue
    relative = path.relative_to(prefix).as_posix()
    if relative.startswith(site_packages):
      top = relative[len(site_packages):].split('/')[0]
      if not SITE_PACKAGES_KEPT.match(top):
        continue
    parts = relative.split('/')
    if (DELETED_DIRS.intersection(parts[:-1]) or path.suffix in ('.pyc', '.pyo')
        or re.match(r'libpython.*\.a$', path.name)):
      continue
    files.append(path)
  return files


def base_key(prefix: pathlib.Path, packages: Iterable[str], mirror: str,
             suite: str = BASE_SUITE) -> str:
  """The stand-in base's content key: its recipe and the interpreter.

  The interpreter counts as every file that goes into the base (its path,
  size and link target) and the content of its executable and libpython,
  so a rebuilt or upgraded Python changes the key and a touched file does
  not.
  """
  digest = hashlib.sha256()

  def add(*parts: str) -> None:
    for part in parts:
      digest.update(part.encode())
      digest.update(b'\0')

  add(f'recipe {BASE_RECIPE_VERSION}', suite, 'minbase', mirror,
      str(prefix), *sorted(set(packages)))
  for path in _prefix_files(prefix):
    relative = path.relative_to(prefix).as_posix()
    if path.is_symlink():
      add(relative, '->', os.readlink(path))
      continue
    add(relative, str(path.stat().st_size))
    name = path.name
    if name == 'python3.10' or name.startswith('libpython3.10'):
      add(hashlib.sha256(path.read_bytes()).hexdigest())
  return digest.hexdigest()[:16]


def base_tag(key: str) -> str:
  return f'{BASE_REPOSITORY}:3.10-{BASE_SUITE}-{key}'


def interpreter_packages(prefix: pathlib.Path) -> List[str]:
  """The Debian packages of the shared libraries the interpreter links
  (its executables and extension modules, tkinter excepted), as the
  official python image's Dockerfile finds them: ldd, then dpkg-query."""
  libraries = set()
  for path in _prefix_files(prefix):
    if path.is_symlink() or 'tkinter' in path.name:
      continue
    if not (path.suffix == '.so' or '.so.' in path.name
            or os.access(path, os.X_OK)):
      continue
    completed = subprocess.run(['ldd', str(path)], capture_output=True,
                               text=True, check=False)
    for line in completed.stdout.splitlines():
      match = re.search(r'=> (/\S+)', line)
      if match:
        libraries.add(match.group(1))
  packages = set()
  for library in sorted(libraries):
    for candidate in (os.path.realpath(library), library):
      completed = subprocess.run(['dpkg-query', '--search', candidate],
                                 capture_output=True, text=True, check=False)
      if completed.returncode == 0:
        packages.update(line.split(':')[0] for line in
                        completed.stdout.splitlines())
        break
  return sorted(packages)


def debian_mirror(sources: Sequence[str] = (
    '/etc/apt/sources.list.d/debian.sources', '/etc/apt/sources.list')) -> str:
  """The Debian mirror this machine's apt uses (its first `deb` URI of the
  main archive), so debootstrap fetches from where apt-get does."""
  for source in sources:
    try:
      text = pathlib.Path(source).read_text()
    except OSError:
      continue
    for uri in re.findall(r'^URIs:\s*(\S+)', text, re.M) + re.findall(
        r'^deb\s+(?:\[[^\]]*\]\s+)?(\S+)\s+\S+\s', text, re.M):
      if not uri.rstrip('/').endswith('-security'):
        return uri
  raise ImageError(f'no Debian mirror found in {", ".join(sources)}')


def ensure_base_image(prefix: Optional[pathlib.Path] = None) -> Dict[str, Any]:
  """The stand-in base's tag, built unless an image of its key exists.

  Returns {'tag', 'key', 'built', 'seconds'}.
  """
  prefix = prefix or python_prefix()
  packages = sorted(set(BASE_PACKAGES) | set(interpreter_packages(prefix)))
  mirror = debian_mirror()
  key = base_key(prefix, packages, mirror)
  tag = base_tag(key)
  if image_exists(tag):
    logger.info('Stand-in base %s exists', tag)
    return {'tag': tag, 'key': key, 'built': False, 'seconds': 0.0}
  started = time.monotonic()
  with tempfile.TemporaryDirectory(prefix='stand-in-base-') as tmp:
    rootfs = pathlib.Path(tmp) / 'rootfs'
    logger.info('debootstrap %s from %s with %s', BASE_SUITE, mirror,
                ','.join(packages))
    _run(['debootstrap', '--variant=minbase', f'--include={",".join(packages)}',
          BASE_SUITE, str(rootfs), mirror])
    # As the official image: no apt lists or package caches.
    for leftover in ('var/lib/apt/lists', 'var/cache/apt'):
      shutil.rmtree(rootfs / leftover, ignore_errors=True)
      (rootfs / leftover).mkdir(parents=True)
    target = rootfs / str(prefix).lstrip('/')
    for path in _prefix_files(prefix):
      destination = target / path.relative_to(prefix)
      destination.parent.mkdir(parents=True, exist_ok=True)
      if path.is_symlink():
        os.symlink(os.readlink(path), destination)
      else:
        shutil.copy2(path, destination)
    path_env = (f'{prefix}/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:'
                '/usr/bin:/sbin:/bin')
    tar = subprocess.Popen(['tar', '-C', str(rootfs), '--numeric-owner',
                            '-cf', '-', '.'], stdout=subprocess.PIPE)
    try:
      _run([*podman_global_flags(), 'import',
            '--change', f'ENV PATH={path_env}',
            '--change', 'ENV LANG=C.UTF-8',
            '--change', f'LABEL mnist-vae-tfx.stand-in-base-key={key}',
            '--change', 'CMD ["python3"]', '-', tag], stdin=tar.stdout)
    finally:
      tar.stdout.close()
      tar.wait()
  seconds = round(time.monotonic() - started, 1)
  logger.info('Stand-in base %s built in %.1f s', tag, seconds)
  return {'tag': tag, 'key': key, 'built': True, 'seconds': seconds}


# -- the image ----------------------------------------------------------------


def parse_pip_config(lines: Iterable[str]) -> Dict[str, str]:
  """`pip config list` output as {key: value}; environment variables
  (`:env:.key`) override the files' `global.key`, as pip applies them."""
  settings: Dict[str, Dict[str, str]] = {'file': {}, 'env': {}}
  for line in lines:
    match = re.match(r"^([^.=]*)\.([\w-]+)='(.*)'$", line.strip())
    if not match:
      continue
    section, key, value = match.groups()
    if section in ('global', 'install', 'download'):
      settings['file'][key] = value
    elif section == ':env:':
      settings['env'][key] = value
  return {**settings['file'], **settings['env']}


def pip_build_settings(config: Mapping[str, str]) -> Dict[str, str]:
  """The PIP_* build arguments that make pip in the build use the indexes
  this machine's pip uses. Local indexes and wheel folders (file:// URLs,
  paths) are not visible inside the build and are left out; a CA bundle is
  mounted at BUILD_CERT_PATH (see `build_volumes`)."""
  args = {}
  for key in PIP_BUILD_KEYS:
    value = config.get(key)
    if not value:
      continue
    if key in ('index-url', 'extra-index-url'):
      value = ' '.join(url for url in value.split()
                       if url.startswith(('http://', 'https://')))
      if not value:
        continue
    if key == 'cert':
      value = BUILD_CERT_PATH
    args['PIP_' + key.upper().replace('-', '_')] = value
  return args


def build_volumes(config: Mapping[str, str]) -> List[str]:
  cert = config.get('cert')
  return [f'{cert}:{BUILD_CERT_PATH}:ro'] if cert else []


def machine_pip_config() -> Dict[str, str]:
  completed = _run([sys.executable, '-m', 'pip', 'config', 'list'])
  return parse_pip_config(completed.stdout.splitlines())


def build_command(base: str, tag: str, config: Mapping[str, str],
                  context: pathlib.Path = REPO_ROOT,
                  target: Optional[str] = None,
                  no_cache: bool = False) -> List[str]:
  """`podman build` of the repository's Dockerfile on `base`."""
  command = [*podman_global_flags(), 'build', *ulimit_flags(),
             '--network=host', '--build-arg', f'BASE_IMAGE={base}']
  if no_cache:
    command.append('--no-cache')
  for name, value in pip_build_settings(config).items():
    command += ['--build-arg', f'{name}={value}']
  for volume in build_volumes(config):
    command += ['--volume', volume]
  if target:
    command += ['--target', target]
  return command + ['--tag', tag, '--file', str(context / 'Dockerfile'),
                    str(context)]


def build_image(base: str, tag: str = IMAGE,
                log_path: Optional[pathlib.Path] = None,
                no_cache: bool = False) -> Dict[str, Any]:
  """Builds the Dockerfile on `base` (with podman's layer cache unless
  `no_cache`); returns {'tag', 'seconds', 'size', 'no_cache'}."""
  command = build_command(base, tag, machine_pip_config(), no_cache=no_cache)
  logger.info('$ %s', shlex.join(command))
  started = time.monotonic()
  with open(log_path or os.devnull, 'w', encoding='utf-8') as log:
    returncode = subprocess.run(command, stdout=log, stderr=subprocess.STDOUT,
                                check=False).returncode
  seconds = round(time.monotonic() - started, 1)
  if returncode:
    raise ImageError(f'podman build failed with exit code {returncode}'
                     + (f'; log: {log_path}' if log_path else ''))
  return {'tag': tag, 'seconds': seconds, 'size': image_size(tag),
          'no_cache': no_cache}


# -- tasks as containers ------------------------------------------------------


def task_command(image: str, argv: Sequence[str], env: Mapping[str, str],
                 mounts: Iterable[os.PathLike], network: str = 'none',
                 nofile: Optional[int] = None,
                 name: Optional[str] = None) -> List[str]:
  """A task's command line (`argv`, the compiled command with the executor
  input substituted) as a `podman run` of `image`.

  `env` is the environment the compiled spec gives the task (its container
  `env` and secrets), and nothing else of this machine's: the container
  gets exactly these variables on top of the image's own. They are named
  with `--env NAME`, so their values (credentials among them) are not on
  the command line: podman must run with them in its environment
  (kfp_launcher.Run does). Each of `mounts`
  (host folders: the task's own folder, a local pipeline root, data and
  push destination) is mounted read-write at its own path, because the
  executor input names them by those paths. The working directory is the
  image's.
  """
  command = [*podman_global_flags(), 'run', '--rm', f'--network={network}',
             *ulimit_flags(nofile)]
  if name:
    command += ['--name', name]
  for mount in sorted({os.path.abspath(m) for m in mounts}):
    command += ['--volume', f'{mount}:{mount}:rw']
  for key in sorted(env):
    command += ['--env', key]
  return command + [image, *argv]


class InImage:
  """`kfp_launcher.Run(in_container=InImage(...))`: runs each task's
  command in a fresh container of `image`."""

  def __init__(self, image: str, mounts: Iterable[os.PathLike] = (),
               network: str = 'none'):
    self.image = image
    self.mounts = list(mounts)
    self.network = network

  def __call__(self, task: str, argv: List[str], env: Dict[str, str],
               task_dir: pathlib.Path) -> List[str]:
    return task_command(self.image, argv, env, [task_dir, *self.mounts],
                        network=self.network,
                        name=f'kfp-{task.lower()}-{uuid.uuid4().hex[:8]}')


# Imports what the compiled tasks import and reports where from, and the
# interpreter's paths (a source tree on them would show).
IMPORT_PROBE = (
    'import json, sys, components, layouts, models, pipeline; '
    'print(json.dumps({"modules": {m.__name__: m.__file__ for m in '
    '(components, layouts, models, pipeline)}, "sys_path": sys.path}))')


def image_checks(image: str) -> Dict[str, Any]:
  """`pip check` in the image, and where the project imports from."""
  pip_check = run_in_image(image, ['python', '-m', 'pip', 'check'])
  probe = run_in_image(image, ['python', '-c', IMPORT_PROBE])
  if probe.returncode:
    raise ImageError(f'import probe failed:\n{probe.stderr[-3000:]}')
  imported = json.loads(probe.stdout.strip().splitlines()[-1])
  return {
      'pip_check': {'exit_code': pip_check.returncode,
                    'output': pip_check.stdout.strip()},
      'modules': imported['modules'],
      'sys_path': imported['sys_path'],
      # The working directory (on sys.path first) and /tmp, where the build
      # had the sources: the schema only, and nothing.
      'listing': {
          folder: run_in_image(image, ['ls', '-A', folder]).stdout.split()
          for folder in ('/pipeline', '/tmp')},
  }


def build_checked_image(work: pathlib.Path, no_cache: bool = False
                        ) -> Dict[str, Any]:
  """The stand-in base (once per machine) and the image, built (the build log
  in `work`); {'base', 'image', 'checks'}."""
  base = ensure_base_image()
  built = build_image(base['tag'], log_path=work / 'build.log',
                      no_cache=no_cache)
  return {'base': {**base, 'size': image_size(base['tag'])},
          'image': built, 'checks': image_checks(built['tag'])}
