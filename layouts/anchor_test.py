"""The anchor's layout: content-addressed statistics, a record replaced in
one write, its history, and what a reader refuses."""

import os

import pytest
from tensorflow_metadata.proto.v0 import statistics_pb2

from layouts import anchor
from layouts import spans


def _statistics(name):
  proto = statistics_pb2.DatasetFeatureStatisticsList()
  proto.datasets.add(name=name, num_examples=1)
  return proto


def test_each_move_keeps_the_history_and_prunes_old_statistics(tmp_path):
  root = str(tmp_path)
  assert anchor.read_anchor(root) == (None, None)
  for number in range(anchor.KEEP_STATISTICS + 2):
    anchor.set_anchor(root, _statistics(f'drop-{number}'), anchor.OPERATOR,
                      version=str(number))
  statistics, record = anchor.read_anchor(root)
  assert statistics.datasets[0].name == f'drop-{anchor.KEEP_STATISTICS + 1}'
  assert [r['version'] for r in record['history']] == [
      str(n) for n in range(anchor.KEEP_STATISTICS + 1)]
  assert len(os.listdir(tmp_path / anchor.STATISTICS_DIR)) == (
      anchor.KEEP_STATISTICS)
  # Only the record and the statistics folder sit beside the versions.
  assert sorted(os.listdir(tmp_path)) == sorted(
      [anchor.RECORD_FILE, anchor.STATISTICS_DIR])


def test_missing_or_changed_statistics_are_refused(tmp_path):
  root = str(tmp_path)
  record = anchor.set_anchor(root, _statistics('a'), anchor.FIRST_PUSH)
  path = tmp_path / record['statistics']
  path.write_bytes(path.read_bytes() + b'x')
  with pytest.raises(anchor.AnchorCorruptError, match='do not match'):
    anchor.read_anchor(root)
  path.unlink()
  with pytest.raises(anchor.AnchorCorruptError, match='are missing'):
    anchor.read_anchor(root)


def test_the_latest_verdict_on_a_digest_decides(tmp_path):
  root = str(tmp_path)
  first = spans.SpanRead(1, '/d/span-1', 'a' * 64, {})
  second = spans.SpanRead(2, '/d/span-2', 'b' * 64, {})
  spans.record_verdict(root, first, passed=False)
  spans.record_verdict(root, second, passed=True)
  spans.record_verdict(root, first, passed=True)  # Accepted on a rerun.
  spans.record_verdict(root, second, passed=False)
  assert spans.passed_digests(root) == {'a' * 64}
  assert [e['span'] for e in spans.read_verdicts(root)] == [1, 2, 1, 2]
  window = [first, second]
  assert spans.decode_window(spans.encode_window(window)) == window


def test_a_digest_depends_on_every_file_but_not_on_the_folder():
  files = {'a.gz': {'size': 1, 'sha256': 'x'}, 'b.gz': {'size': 2,
                                                         'sha256': 'y'}}
  assert spans.span_digest(files) == spans.span_digest(dict(
      reversed(list(files.items()))))
  changed = dict(files, **{'b.gz': {'size': 2, 'sha256': 'z'}})
  assert spans.span_digest(changed) != spans.span_digest(files)
