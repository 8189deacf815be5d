"""The committed schema is the curated one, and TFX reads it."""

from tensorflow_metadata.proto.v0 import schema_pb2
from tfx.utils import io_utils

from pipeline import data_schema


def test_committed_schema_is_up_to_date():
  with open(data_schema.SCHEMA_FILE) as f:
    assert f.read() == data_schema.schema_text()
  assert data_schema.main([]) == 0


def test_schema_says_what_the_issue_asks():
  schema = io_utils.SchemaReader().read(data_schema.SCHEMA_FILE)
  features = {f.name: f for f in schema.feature}
  assert set(features) == {'image', 'label'}
  image, label = features['image'], features['label']
  assert image.type == label.type == schema_pb2.INT
  assert (image.value_count.min, image.value_count.max) == (784, 784)
  assert (image.int_domain.min, image.int_domain.max) == (0, 255)
  assert (label.value_count.min, label.value_count.max) == (1, 1)
  assert (label.int_domain.min, label.int_domain.max) == (0, 9)
  assert label.int_domain.is_categorical
  assert image.presence.min_fraction == label.presence.min_fraction == 1.0


def test_check_fails_on_a_stale_file_and_write_fixes_it(tmp_path):
  path = tmp_path / 'schema.pbtxt'
  assert data_schema.main(['--path', str(path)]) == 1  # missing
  path.write_text('feature { name: "image" }\n')
  assert data_schema.main(['--path', str(path)]) == 1  # stale
  assert data_schema.main(['--path', str(path), '--write']) == 0
  assert data_schema.main(['--path', str(path)]) == 0
  assert path.read_text() == data_schema.schema_text()
