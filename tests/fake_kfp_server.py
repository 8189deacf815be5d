"""A fake Kubeflow Pipelines API server for deploy tests (no cluster needed).

It serves, on 127.0.0.1 and an ephemeral port, the KFP v2beta1 REST endpoints
that `kfp.Client` 2.0.1 (through kfp-server-api 2.0.5) calls to upload a
pipeline or a pipeline version, get or create an experiment, and create,
list and delete recurring runs, with the paths, query parameters, multipart
upload and JSON field names of the generated client. It keeps the created
objects in memory and records every request so tests can assert what the
client sent. It does not run anything: it is not a Kubeflow cluster.
"""

import dataclasses
import datetime
import email.parser
import email.policy
import http.server
import itertools
import json
import re
import threading
import urllib.parse
from typing import Any, Dict, List, Optional, Tuple

import yaml

API = '/apis/v2beta1'


@dataclasses.dataclass
class Request:
  """One request the fake server received."""
  method: str
  path: str
  query: Dict[str, str]
  json: Optional[Dict[str, Any]] = None
  files: Dict[str, bytes] = dataclasses.field(default_factory=dict)
  status: int = 200


class FakeKfpServer:
  """In-memory KFP v2beta1 API; use as a context manager.

  Attributes:
    url: base URL to pass as `kfp.Client(host=...)`.
    requests: every request received, in order.
    pipelines, versions, experiments, recurring_runs: the stored objects
      (JSON dicts as the API returns them), keyed by id.
  """

  def __init__(self, multi_user: bool = False):
    self.multi_user = multi_user
    self.requests: List[Request] = []
    self.pipelines: Dict[str, Dict[str, Any]] = {}
    self.versions: Dict[str, Dict[str, Any]] = {}
    self.experiments: Dict[str, Dict[str, Any]] = {}
    self.recurring_runs: Dict[str, Dict[str, Any]] = {}
    self._ids = itertools.count(1)
    self._lock = threading.Lock()
    self._server: Optional[http.server.ThreadingHTTPServer] = None
    self._thread: Optional[threading.Thread] = None
    self.url = ''

  def __enter__(self) -> 'FakeKfpServer':
    fake = self

    class Handler(http.server.BaseHTTPRequestHandler):

      def do_GET(self):  # pylint: disable=invalid-name
        fake._handle(self)  # pylint: disable=protected-access

      do_POST = do_GET  # pylint: disable=invalid-name
      do_DELETE = do_GET  # pylint: disable=invalid-name

      def log_message(self, *args):  # Keep test output clean.
        del args

    # Loopback only, ephemeral port.
    self._server = http.server.ThreadingHTTPServer(('127.0.0.1', 0), Handler)
    self.url = f'http://127.0.0.1:{self._server.server_address[1]}'
    self._thread = threading.Thread(target=self._server.serve_forever,
                                    daemon=True)
    self._thread.start()
    return self

  def __exit__(self, *exc_info) -> None:
    self._server.shutdown()
    self._server.server_close()
    self._thread.join(timeout=10)

  def calls(self, method: str, path: str) -> List[Request]:
    """The recorded requests with this method and path (no query)."""
    return [r for r in self.requests
            if r.method == method and r.path == API + path]

  # --------------------------------------------------------------------------

  def _new_id(self, kind: str) -> str:
    return f'{kind}-{next(self._ids)}'

  @staticmethod
  def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).strftime(
        '%Y-%m-%dT%H:%M:%S.%fZ')

  def _handle(self, handler: http.server.BaseHTTPRequestHandler) -> None:
    url = urllib.parse.urlsplit(handler.path)
    query = dict(urllib.parse.parse_qsl(url.query, keep_blank_values=True))
    length = int(handler.headers.get('Content-Length') or 0)
    body = handler.rfile.read(length) if length else b''
    request = Request(handler.command, url.path, query)
    content_type = handler.headers.get('Content-Type', '')
    if content_type.startswith('multipart/form-data'):
      request.files = _parse_multipart(content_type, body)
    elif body:
      request.json = json.loads(body)
    with self._lock:
      self.requests.append(request)
      try:
        status, response = self._route(request)
      except _ApiError as e:
        status, response = e.status, {'error': str(e), 'message': str(e),
                                      'code': e.code}
      request.status = status
    data = json.dumps(response).encode()
    handler.send_response(status)
    handler.send_header('Content-Type', 'application/json')
    handler.send_header('Content-Length', str(len(data)))
    handler.end_headers()
    handler.wfile.write(data)

  def _route(self, r: Request) -> Tuple[int, Dict[str, Any]]:
    """Dispatches to the endpoint; unknown endpoints are 404 (recorded)."""
    path = r.path[len(API):] if r.path.startswith(API) else None
    routes = [
        ('GET', r'/healthz', self._healthz),
        ('GET', r'/pipelines', self._list_pipelines),
        ('POST', r'/pipelines/upload', self._upload_pipeline),
        ('POST', r'/pipelines/upload_version', self._upload_version),
        ('GET', r'/pipelines/(?P<pipeline_id>[^/]+)/versions',
         self._list_versions),
        ('GET', r'/experiments', self._list_experiments),
        ('POST', r'/experiments', self._create_experiment),
        ('GET', r'/recurringruns', self._list_recurring_runs),
        ('POST', r'/recurringruns', self._create_recurring_run),
        ('DELETE', r'/recurringruns/(?P<run_id>[^/:]+)',
         self._delete_recurring_run),
    ]
    for method, pattern, endpoint in routes:
      match = path is not None and re.fullmatch(pattern, path)
      if method == r.method and match:
        return 200, endpoint(r, **match.groupdict())
    raise _ApiError(404, 5, f'fake KFP server: no endpoint {r.method} {r.path}')

  def _healthz(self, r: Request) -> Dict[str, Any]:
    del r
    return {'multi_user': self.multi_user}

  @staticmethod
  def _filtered(objects: List[Dict[str, Any]],
                filter_json: Optional[str]) -> List[Dict[str, Any]]:
    """Applies a KFP filter with EQUALS predicates on string fields."""
    if not filter_json:
      return objects
    for predicate in json.loads(filter_json).get('predicates', []):
      if predicate.get('operation') not in ('EQUALS', 1):
        raise _ApiError(400, 3, f'unsupported filter {predicate}')
      value = predicate.get('stringValue', predicate.get('string_value'))
      objects = [o for o in objects if o.get(predicate['key']) == value]
    return objects

  def _list_pipelines(self, r: Request) -> Dict[str, Any]:
    found = self._filtered(list(self.pipelines.values()), r.query.get('filter'))
    return {'pipelines': found, 'total_size': len(found)} if found else {}

  def _check_package(self, r: Request) -> bytes:
    if set(r.files) != {'uploadfile'}:
      raise _ApiError(400, 3, f'expected one uploadfile, got {list(r.files)}')
    package = r.files['uploadfile']
    spec = yaml.safe_load(package)
    if not isinstance(spec, dict) or not {'pipelineInfo', 'root',
                                          'deploymentSpec'} <= set(spec):
      raise _ApiError(400, 3, 'not a KFP v2 pipeline spec')
    return package

  def _add_version(self, pipeline_id: str, name: str,
                   package: bytes) -> Dict[str, Any]:
    version = {
        'pipeline_id': pipeline_id,
        'pipeline_version_id': self._new_id('version'),
        'display_name': name,
        'created_at': self._now(),
        'pipeline_spec': yaml.safe_load(package),
    }
    self.versions[version['pipeline_version_id']] = version
    return version

  def _upload_pipeline(self, r: Request) -> Dict[str, Any]:
    package = self._check_package(r)
    name = r.query.get('name')
    if not name:
      raise _ApiError(400, 3, 'name is required')
    if any(p['display_name'] == name for p in self.pipelines.values()):
      raise _ApiError(409, 6, f'pipeline {name} already exists')
    pipeline = {'pipeline_id': self._new_id('pipeline'), 'display_name': name,
                'description': r.query.get('description', ''),
                'created_at': self._now()}
    self.pipelines[pipeline['pipeline_id']] = pipeline
    # Like KFP, uploading a pipeline creates its first version.
    self._add_version(pipeline['pipeline_id'], name, package)
    return pipeline

  def _upload_version(self, r: Request) -> Dict[str, Any]:
    package = self._check_package(r)
    pipeline_id = r.query.get('pipelineid')
    if pipeline_id not in self.pipelines:
      raise _ApiError(404, 5, f'no pipeline {pipeline_id}')
    name = r.query.get('name')
    if not name or any(v['display_name'] == name for v in self.versions.values()
                       if v['pipeline_id'] == pipeline_id):
      raise _ApiError(409, 6, f'bad or duplicate version name {name!r}')
    return self._add_version(pipeline_id, name, package)

  def _list_versions(self, r: Request, pipeline_id: str) -> Dict[str, Any]:
    if pipeline_id not in self.pipelines:
      raise _ApiError(404, 5, f'no pipeline {pipeline_id}')
    versions = [v for v in self.versions.values()
                if v['pipeline_id'] == pipeline_id]
    versions.sort(key=lambda v: v['created_at'],
                  reverse=r.query.get('sort_by', '').endswith(' desc'))
    versions = versions[:int(r.query.get('page_size') or len(versions))]
    return {'pipeline_versions': versions, 'total_size': len(versions)}

  def _list_experiments(self, r: Request) -> Dict[str, Any]:
    found = self._filtered(list(self.experiments.values()),
                           r.query.get('filter'))
    return {'experiments': found, 'total_size': len(found)} if found else {}

  def _create_experiment(self, r: Request) -> Dict[str, Any]:
    name = (r.json or {}).get('display_name')
    if not name:
      raise _ApiError(400, 3, 'display_name is required')
    experiment = {'experiment_id': self._new_id('experiment'),
                  'display_name': name,
                  'namespace': r.json.get('namespace', ''),
                  'created_at': self._now(), 'storage_state': 'AVAILABLE'}
    self.experiments[experiment['experiment_id']] = experiment
    return experiment

  def _list_recurring_runs(self, r: Request) -> Dict[str, Any]:
    runs = [run for run in self.recurring_runs.values()
            if run['experiment_id'] == r.query.get('experiment_id',
                                                   run['experiment_id'])]
    # kfp-server-api 2.0.5 reads this list from the key 'recurringRuns'.
    return {'recurringRuns': runs, 'total_size': len(runs)} if runs else {}

  def _create_recurring_run(self, r: Request) -> Dict[str, Any]:
    body = r.json or {}
    if body.get('experiment_id') not in self.experiments:
      raise _ApiError(404, 5, f'no experiment {body.get("experiment_id")}')
    reference = body.get('pipeline_version_reference') or {}
    version = self.versions.get(reference.get('pipeline_version_id'))
    if not body.get('pipeline_spec') and (
        version is None or version['pipeline_id'] != reference.get(
            'pipeline_id')):
      raise _ApiError(404, 5, f'no pipeline version {reference}')
    cron = (body.get('trigger') or {}).get('cron_schedule', {}).get('cron')
    if cron is not None and len(cron.split()) != 6 and not cron.startswith('@'):
      raise _ApiError(400, 3, f'cron {cron!r} must have 6 fields')
    run = dict(body, recurring_run_id=self._new_id('recurring-run'),
               created_at=self._now(),
               status='ENABLED' if body.get('mode') == 'ENABLE' else 'DISABLED')
    self.recurring_runs[run['recurring_run_id']] = run
    return run

  def _delete_recurring_run(self, r: Request, run_id: str) -> Dict[str, Any]:
    del r
    if self.recurring_runs.pop(run_id, None) is None:
      raise _ApiError(404, 5, f'no recurring run {run_id}')
    return {}


class _ApiError(Exception):
  """An error answer: HTTP status, gRPC code, message."""

  def __init__(self, status: int, code: int, message: str):
    super().__init__(message)
    self.status = status
    self.code = code


def _parse_multipart(content_type: str, body: bytes) -> Dict[str, bytes]:
  """Form fields of a multipart/form-data body: name -> bytes."""
  message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
      b'Content-Type: ' + content_type.encode() + b'\r\n\r\n' + body)
  return {part.get_param('name', header='content-disposition'):
              part.get_payload(decode=True)
          for part in message.iter_parts()}
