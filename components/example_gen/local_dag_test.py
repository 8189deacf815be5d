"""IdxExampleGen under LocalDagRunner: what reaches ML Metadata (the span
and window the executor sets, after the driver's span 0), and when the
local cache reruns it (the driver's fingerprint of every span's files)."""

import pytest
from ml_metadata import metadata_store
from tfx import v1 as tfx
from tfx.types import standard_artifacts

from components.example_gen import component
from components.example_gen import window_test
from layouts import spans


def _examples(store):
  return sorted(store.get_artifacts_by_type('Examples'), key=lambda a: a.id)


@pytest.mark.slow
def test_window_and_span_are_published_and_new_spans_rerun(tmp_path):
  root, serving = tmp_path / 'drops', tmp_path / 'serving'
  folders = {1: window_test.write_span(root, 1)}
  config = tfx.orchestration.metadata.sqlite_metadata_connection_config(
      str(tmp_path / 'metadata.sqlite'))

  def run():
    tfx.orchestration.LocalDagRunner().run(tfx.dsl.Pipeline(
        pipeline_name='window-test', pipeline_root=str(tmp_path / 'root'),
        components=[component.IdxExampleGen(
            input_base=str(root), use_spans=True, train_spans=2,
            serving_dir=str(serving))],
        metadata_connection_config=config, enable_cache=True))
    return _examples(metadata_store.MetadataStore(config))

  [first] = run()
  assert first.properties['span'].int_value == 1
  assert first.custom_properties['span'].int_value == 1  # Not the driver's 0.
  assert [s.span for s in spans.decode_window(
      first.custom_properties[spans.WINDOW_PROPERTY].string_value)] == [1]
  assert run() == [first]  # Nothing changed: served from the cache.

  # The gate passed span 1; span 2 lands: the fingerprint changes.
  spans.record_verdict(str(serving), window_test.span_read(folders[1], 1),
                       passed=True)
  folders[2] = window_test.write_span(root, 2)
  first_again, second = run()
  assert first_again == first
  assert second.properties['span'].int_value == 2
  assert second.custom_properties['span'].int_value == 2
  window = spans.decode_window(
      second.custom_properties[spans.WINDOW_PROPERTY].string_value)
  assert window == [window_test.span_read(folders[1], 1),
                    window_test.span_read(folders[2], 2)]
  examples = standard_artifacts.Examples()
  examples.set_mlmd_artifact(second)
  assert window_test.written(examples, spans.HISTORY_SPLIT) == (
      window_test.idx_content(folders[1]))
  assert window_test.written(examples, 'train') == window_test.idx_content(
      folders[2])
