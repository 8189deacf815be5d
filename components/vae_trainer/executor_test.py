"""The Trainer's executor: the training identity, and "nothing new" when the
served version was trained on exactly this data and configuration."""

import json
import os

from tfx.types import standard_artifacts
from tfx.types import standard_component_specs as specs

from components.atomic_pusher import executor as pusher
from components.vae_trainer import executor
from layouts import contracts
from layouts import lineage
from layouts import model as model_layout


def _examples(digest):
  examples = standard_artifacts.Examples()
  if digest is not None:
    examples.set_string_custom_property(contracts.DATA_DIGEST_KEY, digest)
  return examples


def _serve(exported_model, serving, trained_on):
  return pusher.push(
      os.path.join(exported_model, model_layout.SERVING_MODEL_DIR),
      str(serving), {'model_uri': exported_model,
                     contracts.TRAINED_ON_KEY: trained_on})


def test_the_identity_is_the_data_digest_and_the_whole_custom_config():
  config = {'hyperparameters': {'epochs': 3}, 'serving_dir': 's'}
  same = executor.training_identity([_examples('d1')], dict(config))
  assert same == {'data': 'd1',
                  'training': lineage.training_fingerprint(config)}
  assert executor.training_identity([_examples('d2')], config) != same
  assert executor.training_identity(
      [_examples('d1')], {**config, 'hyperparameters': {'epochs': 4}}) != same
  # Order of keys does not matter; TFDS's examples have no digest.
  assert lineage.training_fingerprint(dict(reversed(config.items()))) == (
      same['training'])
  assert executor.training_identity([_examples(None)], config) is None
  assert lineage.data_digest(['a', 'b'], None) != lineage.data_digest(
      ['a', 'b'], 300)
  assert lineage.data_digest(['a', 'b'], 300) != lineage.data_digest(
      ['b', 'a'], 300)


def test_nothing_new_only_for_the_served_versions_exact_identity(
    exported_model, tmp_path):
  serving = tmp_path / 'serving'
  trained_on = lineage.identity('data', 'training')
  assert lineage.nothing_new(str(serving), trained_on) is None  # None served.
  version = _serve(exported_model, serving, trained_on)
  assert lineage.nothing_new(str(serving), trained_on) == (
      f'nothing new: the served version {os.path.basename(version)} was '
      'trained on exactly this data with this training configuration')
  assert lineage.nothing_new(
      str(serving), lineage.identity('data', 'other')) is None
  assert lineage.nothing_new(
      str(serving), lineage.identity('other', 'training')) is None
  # A version that records nothing (pushed before identities were) matches
  # nothing.
  pusher.push(os.path.join(exported_model, model_layout.SERVING_MODEL_DIR),
              str(serving), {'model_uri': exported_model})
  assert lineage.nothing_new(str(serving), trained_on) is None


def test_nothing_new_trains_nothing_and_says_so_on_its_outputs(
    exported_model, tmp_path):
  serving = tmp_path / 'serving'
  custom_config = {contracts.TRAINER_HYPERPARAMETERS_KEY: {'epochs': 1},
                   contracts.TRAINER_SERVING_DIR_KEY: str(serving)}
  trained_on = lineage.identity(
      'digest', lineage.training_fingerprint(custom_config))
  _serve(exported_model, serving, trained_on)
  model = standard_artifacts.Model()
  model.uri = str(tmp_path / 'model')
  model_run = standard_artifacts.ModelRun()
  model_run.uri = str(tmp_path / 'model_run')
  # No train files at all: anything that trained would fail.
  executor.Executor().Do(
      {specs.EXAMPLES_KEY: [_examples('digest')]},
      {specs.MODEL_KEY: [model], specs.MODEL_RUN_KEY: [model_run]},
      {specs.CUSTOM_CONFIG_KEY: json.dumps(custom_config),
       specs.RUN_FN_KEY: 'no.such.run_fn'})
  for artifact in (model, model_run):
    assert artifact.get_string_custom_property(
        contracts.NOTHING_NEW_KEY).startswith('nothing new: the served')
  assert not os.path.exists(model.uri)
