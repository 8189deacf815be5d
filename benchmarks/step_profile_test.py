"""Tests of the step profile: its FLOP count against TensorFlow's and a
hand count, its attribution of kernel time, and a whole run on a few images
(the benchmark once failed at its first line and no test noticed)."""

import json

import pytest

from benchmarks import step_profile
from conftest import write_examples_dir
from models import vae as vae_lib


def test_flop_count_matches_tensorflows_and_a_hand_count():
  hp = vae_lib.Hyperparameters(precision='float32')
  vae = vae_lib.build_vae(hp)
  specs = step_profile.model_layer_specs(vae)
  per_step = step_profile.step_flops(specs, hp.batch_size)
  # TensorFlow's own op statistics of the traced step: an independent count.
  assert step_profile.tensorflow_flops(vae, hp.batch_size) == pytest.approx(
      per_step, rel=1e-12)
  # By hand, per image, forward (a multiply-add is 2): the encoder's
  # convolutions 14x14 and 7x7 outputs, its dense layers, the decoder's
  # dense layer and transposed convolutions over 7x7, 14x14 and 28x28 inputs.
  forward = [2 * 14 * 14 * 9 * 1 * 32, 2 * 7 * 7 * 9 * 32 * 64,
             2 * 3136 * 16, 2 * 16 * 2, 2 * 16 * 2, 2 * 2 * 3136,
             2 * 7 * 7 * 9 * 64 * 64, 2 * 14 * 14 * 9 * 64 * 32,
             2 * 28 * 28 * 9 * 32 * 1]
  # Every layer's backward pass is twice its forward, but the first one's:
  # its input is the image, which needs no gradient.
  assert per_step == hp.batch_size * (3 * sum(forward) - forward[0])
  assert [s.needs_input_grad for s in specs] == [False] + [True] * 8


def test_kernel_time_is_the_union_of_intervals_by_category():
  assert step_profile.union_length([(0, 2), (1, 3), (5, 6), (5.5, 5.7)]) == 4
  events = [(0, 40, 'conv'), (20, 60, 'conv'), (50, 70, 'elementwise'),
            (90, 120, 'input_pipeline')]
  s = step_profile.shares((0, 100), events)
  assert s['conv'] == pytest.approx(0.6)
  assert s['elementwise'] == pytest.approx(0.2)
  assert s['input_pipeline'] == pytest.approx(0.1)  # clipped at the window
  assert s['any_kernel'] == pytest.approx(0.8)
  assert s['overhead'] == pytest.approx(0.2)


@pytest.mark.parametrize('name, line, category', [
    ('encoder/conv2d/convolution:_MklNativeConv2DWithBias', 'tf_Compute',
     'conv'),
    ('gradient_tape/Conv2DBackpropFilter:Conv2DBackpropFilter', '', 'conv'),
    ('decoder/dense/MatMul:_MklMatMul', '', 'matmul'),
    ('adam/Sqrt_3:Sqrt', '', 'optimizer'),
    ('encoder/conv2d/Cast:Cast', '', 'cast'),
    ('decoder/conv2d_transpose/transpose:Transpose', '', 'layout'),
    ('ReadVariableOp:ReadVariableOp', '', 'variables'),
    ('binary_crossentropy/Log:Log', '', 'elementwise'),
    ('IteratorGetNext:IteratorGetNext', '', 'input_pipeline'),
    ('Iterator::Root::Prefetch', 'tf_data_private_threadpool',
     'input_pipeline'),
    ('StatefulPartitionedCall:StatefulPartitionedCall', '', None),
    ('ExecutorState::Process', 'tf_Compute', None),
])
def test_events_are_put_in_their_category(name, line, category):
  assert step_profile.event_category(name, line) == category


@pytest.mark.slow
def test_a_short_run_writes_its_result(tmp_path):
  write_examples_dir(tmp_path / 'examples', 1280, 100)
  result = step_profile.main([
      '--work-dir', str(tmp_path), '--epochs', '3', '--repeats', '1',
      '--precisions', 'float32', '--results-dir', str(tmp_path / 'out')])
  written = json.loads((tmp_path / 'out' / result['results_file']).read_text())
  (run,) = written['precisions']
  assert run['train_steps_per_epoch'] == 10  # 1,280 less the carve-out
  assert run['mflop_per_image'] == pytest.approx(39.853, abs=1e-3)
  assert 0 < run['shares']['conv'] <= run['shares']['any_kernel'] <= 1
  assert len(run['layers']) == 9
  assert all(layer['ms'] > 0 and layer['gflops'] > 0
             for layer in run['layers'])
  assert written['roofline']['float32']['peak_gflops'] > 0
  assert written['roofline']['bandwidth_gb_per_s'] > 0
