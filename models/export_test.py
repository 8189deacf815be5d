"""Tests of the exports: SavedModels load in a fresh process; warm start."""

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from tensorflow.core.framework import types_pb2
from tensorflow.core.protobuf import saved_model_pb2

from layouts import model as model_layout
from models import export
from models import vae as vae_lib

# Loads both SavedModels with TensorFlow alone (no Keras, no `models`) and
# prints what they return for the inputs saved by the test.
_LOADER = textwrap.dedent("""
    import json, sys
    import numpy as np
    import tensorflow as tf
    model_dir = sys.argv[1]
    inputs = np.load(sys.argv[2])
    decode = tf.saved_model.load(
        model_dir + '/Format-Serving').signatures['serving_default']
    encode = tf.saved_model.load(
        model_dir + '/encoder').signatures['serving_default']
    image = decode(z=tf.constant(inputs['z']))['image'].numpy()
    encoded = encode(image=tf.constant(inputs['images']))
    np.savez(sys.argv[3], image=image, z_mean=encoded['z_mean'].numpy(),
             z_log_var=encoded['z_log_var'].numpy())
    print(json.dumps({
        'decoder_inputs': sorted(decode.structured_input_signature[1]),
        'decoder_outputs': sorted(decode.structured_outputs),
        'encoder_inputs': sorted(encode.structured_input_signature[1]),
        'encoder_outputs': sorted(encode.structured_outputs),
    }))
""")


@pytest.fixture(scope='module', params=['float32', 'mixed_bfloat16'])
def exported(request, tmp_path_factory):
  """A (seeded, untrained) latent_dim=3 VAE exported to <tmp>/model.

  Returns (the float32 VAE the exports must equal, the hyperparameters, the
  model directory); the VAE exported trained in each precision.
  """
  hp = vae_lib.Hyperparameters(latent_dim=3, seed=5, precision=request.param)
  vae = vae_lib.build_vae(hp)
  model_dir = tmp_path_factory.mktemp('export') / 'model'
  serving_dir = os.path.join(model_dir, model_layout.SERVING_MODEL_DIR)
  assert export.export_model(vae, hp, serving_dir) == str(model_dir)
  return export.float32_copy(vae), hp, str(model_dir)


def test_layout(exported):
  _, hp, model_dir = exported
  assert os.path.isfile(os.path.join(model_dir, 'Format-Serving',
                                     'saved_model.pb'))
  assert os.path.isfile(os.path.join(model_dir, model_layout.ENCODER_DIR,
                                     'saved_model.pb'))
  assert os.path.isfile(os.path.join(model_dir, model_layout.WARM_START_WEIGHTS))
  with open(os.path.join(model_dir, model_layout.HYPERPARAMETERS_FILE)) as f:
    assert vae_lib.Hyperparameters.from_dict(json.load(f)) == hp


@pytest.mark.slow
def test_saved_models_load_and_run_in_a_fresh_process(exported, tmp_path):
  vae, _, model_dir = exported
  rng = np.random.default_rng(0)
  z = rng.normal(size=(4, 3)).astype(np.float32)
  images = rng.random((5, 28, 28, 1), dtype=np.float32)
  np.savez(tmp_path / 'inputs.npz', z=z, images=images)
  completed = subprocess.run(
      [sys.executable, '-c', _LOADER, model_dir,
       str(tmp_path / 'inputs.npz'), str(tmp_path / 'outputs.npz')],
      capture_output=True, text=True, timeout=120, check=False)
  assert completed.returncode == 0, completed.stderr[-3000:]
  signatures = json.loads(completed.stdout.strip().splitlines()[-1])
  assert signatures == {
      'decoder_inputs': ['z'], 'decoder_outputs': ['image'],
      'encoder_inputs': ['image'],
      'encoder_outputs': ['z_log_var', 'z_mean']}
  outputs = np.load(tmp_path / 'outputs.npz')
  assert outputs['image'].shape == (4, 28, 28, 1)
  assert outputs['image'].dtype == np.float32
  assert 0.0 <= outputs['image'].min() and outputs['image'].max() <= 1.0
  assert outputs['z_mean'].shape == outputs['z_log_var'].shape == (5, 3)
  np.testing.assert_allclose(outputs['image'], vae.decoder(z), atol=1e-5)
  z_mean, z_log_var, _ = vae.encoder(images)
  np.testing.assert_allclose(outputs['z_mean'], z_mean, atol=1e-5)
  np.testing.assert_allclose(outputs['z_log_var'], z_log_var, atol=1e-5)


def _graph_dtypes(saved_model_dir):
  """Every dtype attribute of the SavedModel's graph and functions."""
  saved_model = saved_model_pb2.SavedModel()
  with open(os.path.join(saved_model_dir, 'saved_model.pb'), 'rb') as f:
    saved_model.ParseFromString(f.read())
  graph = saved_model.meta_graphs[0].graph_def
  nodes = list(graph.node)
  for function in graph.library.function:
    nodes.extend(function.node_def)
  dtypes = set()
  for node in nodes:
    for value in node.attr.values():
      if value.type:
        dtypes.add(value.type)
      dtypes.update(value.list.type)
  return dtypes


def test_exports_are_float32_whatever_the_training_precision(exported):
  _, _, model_dir = exported
  for name in (model_layout.SERVING_MODEL_DIR, model_layout.ENCODER_DIR):
    dtypes = _graph_dtypes(os.path.join(model_dir, name))
    assert types_pb2.DT_FLOAT in dtypes
    assert types_pb2.DT_BFLOAT16 not in dtypes, name


def test_warm_start_restores_the_weights(exported):
  vae, _, model_dir = exported
  fresh = vae_lib.build_vae(vae_lib.Hyperparameters(latent_dim=3, seed=6))
  assert not np.allclose(fresh.decoder.weights[0], vae.decoder.weights[0])
  serving_dir = os.path.join(model_dir, model_layout.SERVING_MODEL_DIR)
  assert export.load_warm_start(fresh, serving_dir) == model_dir
  for got, want in zip(fresh.weights, vae.weights):
    np.testing.assert_array_equal(got, want)


def test_warm_start_errors(exported, tmp_path):
  _, _, model_dir = exported
  other = vae_lib.build_vae(vae_lib.Hyperparameters(latent_dim=2))
  with pytest.raises(ValueError, match='latent_dim=3'):
    export.load_warm_start(other, model_dir)
  with pytest.raises(FileNotFoundError):
    export.load_warm_start(other, str(tmp_path))
