"""Tests of step_profile's pure functions: the FLOP count and the attribution
of profiled time (no model is built, no profiler runs)."""

import pytest

from benchmarks import step_profile as sp


def test_first_conv2d_flops_by_hand():
  # Conv2D(32, 3, strides=2, padding='same') on a 28x28x1 image: 14x14
  # outputs x 32 filters, each 3*3*1 = 9 multiply-adds = 18 FLOPs.
  by_hand = 14 * 14 * 32 * 18
  assert by_hand == 112_896
  assert sp.conv2d_flops(14, 14, 3, 3, 1, 32) == by_hand


def test_conv2d_transpose_flops_by_hand():
  # Conv2DTranspose(32, 3, strides=2) from 14x14x64: each of the 196 input
  # pixels scatters, per input channel, a 3x3x32 patch: 196*64*288 MACs.
  assert sp.conv2d_transpose_flops(14, 14, 3, 3, 64, 32) == 2 * 3_612_672


def _vae_specs():
  """The VAE's layers as models/vae.py builds them (latent_dim 2)."""
  return [
      sp.LayerSpec('conv1', 'conv2d', (3, 3, 1, 32), (28, 28), (14, 14),
                   needs_input_grad=False),
      sp.LayerSpec('conv2', 'conv2d', (3, 3, 32, 64), (14, 14), (7, 7)),
      sp.LayerSpec('dense16', 'dense', (3136, 16)),
      sp.LayerSpec('z_mean', 'dense', (16, 2)),
      sp.LayerSpec('z_log_var', 'dense', (16, 2)),
      sp.LayerSpec('dense3136', 'dense', (2, 3136)),
      sp.LayerSpec('convt64', 'conv2d_transpose', (3, 3, 64, 64), (7, 7),
                   (14, 14)),
      sp.LayerSpec('convt32', 'conv2d_transpose', (3, 3, 64, 32), (14, 14),
                   (28, 28)),
      sp.LayerSpec('convt1', 'conv2d_transpose', (3, 3, 32, 1), (28, 28),
                   (28, 28)),
  ]


def test_training_flops_of_the_vae():
  flops = sp.training_flops(_vae_specs())
  # Forward, in multiply-adds, layer by layer (worked out by hand):
  # 14*14*32*9 + 7*7*64*288 + 3136*16 + 32 + 32 + 2*3136
  # + 7*7*64*576 + 14*14*64*288 + 28*28*32*9
  macs = 56_448 + 903_168 + 50_176 + 32 + 32 + 6_272 + 1_806_336 + \
      3_612_672 + 225_792
  assert flops['forward'] == 2 * macs
  # Backward: weight and input gradient per layer, but no input gradient
  # for the first convolution (the image).
  assert flops['backward'] == 2 * (2 * macs) - 2 * 56_448
  # 3 * 13_321_856 - 112_896:
  assert flops['total'] == 39_852_672
  first = flops['layers'][0]
  assert first['input_grad'] == 0 and first['weight_grad'] == 112_896


def test_unknown_layer_kind():
  with pytest.raises(ValueError):
    sp.forward_flops(sp.LayerSpec('x', 'pool', (2, 2)))


def test_union_length_merges_overlaps_and_nesting():
  assert sp.union_length([]) == 0
  assert sp.union_length([(0, 10), (5, 15), (20, 30), (22, 25)]) == 25
  assert sp.union_length([(0, 10), (10, 12)]) == 12  # Touching.
  assert sp.union_length([(5, 5), (7, 6)]) == 0  # Empty ones.


def test_clip():
  assert sp.clip([(0, 10), (15, 30), (40, 50)], 5, 20) == [(5, 10), (15, 20)]


def test_op_category():
  assert sp.op_category('_MklNativeConv2DBackpropFilterWithBias') == 'conv'
  assert sp.op_category('Conv2DBackpropInput') == 'conv'
  assert sp.op_category('_MklNativeFusedMatMul') == 'matmul'
  assert sp.op_category('ReadVariableOp') == 'variables'
  assert sp.op_category('Cast') == 'cast'
  assert sp.op_category('IteratorGetNext') == 'input_pipeline'
  assert sp.op_category('ReluGrad') == 'elementwise_other'
  assert sp.op_category('StatefulPartitionedCall') is None


def test_classify_event():
  assert sp.classify_event('gradient_tape/x/Conv2DBackpropInput:'
                           '_MklNativeConv2DBackpropInput', 'tf_Compute/1') \
      == 'conv'
  assert sp.classify_event('Iterator::Root::Prefetch', 'tf_data_iterator') \
      == 'input_pipeline'
  assert sp.classify_event('ExecutorState::Process', 'tf_Compute/1') is None
  assert sp.classify_event('EagerLocalExecute: OptionalHasValue',
                           'python') is None
  assert sp.classify_event('StatefulPartitionedCall:StatefulPartitionedCall',
                           'python') is None


def test_attribute_splits_wall_time():
  # Two steps of 100 ns. Step 1: a conv on one thread [0, 60) overlapping a
  # matmul on another [50, 70); the input pipeline [65, 90) alone from 70
  # to 90; nothing in [90, 100). Step 2: an elementwise op [100, 150) and
  # an event crossing into the next (absent) window [180, 250).
  ev = sp.KernelEvent
  events = [ev(0, 60, 'conv', 'a'), ev(50, 70, 'matmul', 'b'),
            ev(65, 90, 'input_pipeline', 'c'),
            ev(100, 150, 'elementwise_other', 'a'),
            ev(180, 250, 'conv', 'a')]
  result = sp.attribute([(0, 100), (100, 200)], events)
  step1, step2 = result['steps']
  assert step1['compute_union_ms'] == pytest.approx(70e-6)
  assert step1['kernel_union_ms'] == pytest.approx(90e-6)
  assert step1['categories']['conv']['union_ms'] == pytest.approx(60e-6)
  assert step2['compute_union_ms'] == pytest.approx(70e-6)  # 50 + 20.
  summary = result['summary']
  assert summary['compute_share'] == pytest.approx(140 / 200)
  assert summary['input_pipeline_only_share'] == pytest.approx(20 / 200)
  assert summary['overhead_share'] == pytest.approx(40 / 200)
  assert (summary['compute_share'] + summary['input_pipeline_only_share'] +
          summary['overhead_share']) == pytest.approx(1)
  assert summary['categories']['conv']['share_of_wall'] == pytest.approx(
      80 / 200)
  # Thread time counts the overlap twice; the union does not.
  assert summary['compute_thread_ms_per_step'] == pytest.approx(
      (60 + 20 + 50 + 20) / 2 * 1e-6)


def test_attribute_needs_a_window():
  with pytest.raises(ValueError):
    sp.attribute([], [])
