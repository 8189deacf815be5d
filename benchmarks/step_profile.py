"""Benchmark: a step profile of the Trainer's train step.

How far is the Trainer from what the machine's CPU cores can do? For each
precision (float32, mixed_bfloat16) at batch 128 this measures, in ONE
process:

1. FLOPs per image of one training step (forward + backward), two ways:
   - analytic, from the layer shapes of `models.vae.build_vae`'s model.
     Convention: a multiply-add is 2 FLOPs; only the convolutions,
     transposed convolutions and dense layers are counted (bias adds,
     activations, the loss, the sampling and Adam are elementwise and left
     out: about 1% of the total). A Conv2D counts every kernel tap of every
     output pixel (padding taps included): 2 * out_h * out_w * k_h * k_w *
     c_in * c_out; a Conv2DTranspose every kernel tap of every *input*
     pixel: 2 * in_h * in_w * k_h * k_w * c_in * c_out (the cost of the
     convolution whose input gradient it is); a Dense 2 * n_in * n_out. The
     backward pass of each layer is its weight gradient (= its forward
     FLOPs) plus its input gradient (= its forward FLOPs again), except
     the encoder's first Conv2D, whose input (the image) needs no gradient.
     So a step is 3 x forward - (first Conv2D's forward).
   - from TensorFlow: its op-level FLOP statistics (the ones
     `tf.compat.v1.profiler`'s `float_operation()` sums) over the graph of
     `tf.function(vae.train_step)` traced for a [batch, 28, 28, 1] batch.
     Reported are the profiler's total over every op of the graph, and a
     walk of the same statistics over the ops the step's outputs and side
     effects depend on (the graph also holds the unused input gradient of
     the first Conv2D, which TensorFlow prunes when it runs the function),
     split by op type.
2. Step time, median over steady-state steps, three ways: the Trainer's path
   (`models.data.make_training_dataset` over GZIP TFRecords of the training
   split, `build_vae`, Keras `fit` with steps_per_epoch), `tf.function(
   vae.train_step)` called once per step from Python on a fixed in-memory
   batch (no input pipeline, no Keras fit loop), and train_step run
   `--loop-steps` times inside one tf.function (a tf.while_loop: no Python
   between steps). Both precisions' models are built side by side and
   warmed up (one fit epoch each); then every round runs, for each
   precision in turn (order rotated), one fit epoch, and every
   --interleave-every fit steps a callback runs a chunk of the tight paths
   (--call-steps calls, one loop call of --loop-steps steps), so the three
   paths share the load of the moment (the fit step right after a chunk is
   left out). A path's step time is the median over rounds of its
   per-round median; the tight paths' ratios to fit are the medians, over
   chunks, of their times / the median fit step of the segment just before.
   GFLOP/s = analytic FLOPs per step / step time.
3. The share of a step spent in kernels: the TensorFlow profiler
   (tf.profiler.experimental) records `--profile-steps` steady-state steps of
   each path (after the rounds); the XSpace it writes (.xplane.pb) is parsed
   here. Every step is a window on the timeline, from the end of the
   previous step to the end of this one (a TraceMe event,
   `step_profile_step`, that this script emits). Kernels are the TensorFlow
   op events of the host threads (named `op_name:OpType`; function-call
   ops such as StatefulPartitionedCall, which only wrap other ops, are left
   out) and tf.data's work on its own threads (`Iterator::...` events;
   these include its waits). A window's wall time splits into three parts
   that add up to 1: compute (the union of the compute kernels' intervals:
   at least one op other than the input pipeline's runs), input pipeline
   only, and overhead (no kernel runs: Python and Keras' fit loop, the eager
   dispatch of the function, the executor's scheduling between ops). Per op
   category (conv: Conv2D and its backprops, oneDNN's _MklNative* variants
   included; matmul; variable reads/writes; casts; other elementwise ops
   and reductions; input pipeline) the union of its intervals / wall is
   given; categories overlap in time (two inter-op threads), so their
   shares can add up to more than the compute share. The thread time (the
   sum of the events' durations) is recorded too. Profiled steps are slower
   than unprofiled ones (tracing costs time); both medians are recorded.
4. What the cores can do: a 2048 x 2048 x 2048 matmul and a 3x3, 64 -> 64
   channel convolution over [64, 56, 56, 64], in float32 and in bfloat16,
   timed call by call at the start and at the end of the run (medians over
   both; the best call is recorded too), and the model's largest layer
   (Conv2DTranspose 14x14x64 -> 28x28x32 at the batch size) on its own.
   Achieved / peak compares a step with the median convolution peak of its
   precision (nearly all FLOPs are convolutions; mixed_bfloat16 runs them
   in bfloat16).

The machine is shared: the 1-minute load average is recorded at the start,
between phases and at the end, every figure is a median, and the ratios
(achieved / peak) come from the same run.

Without --examples-dir, the training split's TFRecords are written to a
temporary directory from data/mnist's IDX files, as IdxExampleGen writes
them (GZIP tf.Examples with `image` and `label`).

Run from the repository root (a few minutes on 2 cores):

  .venv/bin/python -m benchmarks.step_profile
"""

import argparse
import dataclasses
import datetime
import glob
import logging
import os
import pathlib
import re
import statistics
import tempfile
import time
from typing import (Any, Callable, Dict, Iterable, List, Optional, Sequence,
                    Tuple)

import keras
import numpy as np
import tensorflow as tf
from keras import layers as keras_layers
from tensorflow.python.framework import ops as tf_ops
from tensorflow.tsl.profiler.protobuf import xplane_pb2

from benchmarks import recording
from components.idx_example_gen import idx
from models import data
from models import vae as vae_lib

logger = logging.getLogger(__name__)

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]
MNIST_DIR = REPO_ROOT / 'data' / 'mnist'
MODULE = 'benchmarks.step_profile'
PRECISIONS = ('float32', 'mixed_bfloat16')
STEP_EVENT = 'step_profile_step'
PEAK_MATMUL = 'matmul_2048x2048x2048'
PEAK_CONV = 'conv2d_64x56x56x64_3x3x64'

# An interval on the profiler's timeline, in nanoseconds: (start, end).
Interval = Tuple[float, float]

################################################################################
# Analytic FLOPs (pure functions).
################################################################################


def conv2d_flops(out_h: int, out_w: int, k_h: int, k_w: int, c_in: int,
                 c_out: int) -> int:
  """Forward FLOPs of one image through a Conv2D: every tap of every output."""
  return 2 * out_h * out_w * k_h * k_w * c_in * c_out


def conv2d_transpose_flops(in_h: int, in_w: int, k_h: int, k_w: int,
                           c_in: int, c_out: int) -> int:
  """Forward FLOPs of one image through a Conv2DTranspose.

  Every input pixel scatters a k_h x k_w x c_out patch for each of its c_in
  channels (the cost of the convolution whose input gradient it is).
  """
  return 2 * in_h * in_w * k_h * k_w * c_in * c_out


def dense_flops(n_in: int, n_out: int) -> int:
  """Forward FLOPs of one example through a Dense layer (no bias)."""
  return 2 * n_in * n_out


@dataclasses.dataclass(frozen=True)
class LayerSpec:
  """What the FLOP count needs to know of one layer (per image).

  kind: 'conv2d', 'conv2d_transpose' or 'dense'. For convolutions `in_hw`
  and `out_hw` are (height, width), `kernel` is (k_h, k_w, c_in, c_out); for
  dense layers `kernel` is (n_in, n_out). `needs_input_grad` is False for a
  layer whose input is the image (nothing upstream to train).
  """
  name: str
  kind: str
  kernel: Tuple[int, ...]
  in_hw: Tuple[int, int] = (1, 1)
  out_hw: Tuple[int, int] = (1, 1)
  needs_input_grad: bool = True


def forward_flops(spec: LayerSpec) -> int:
  """Forward FLOPs per image of one layer."""
  if spec.kind == 'conv2d':
    return conv2d_flops(*spec.out_hw, *spec.kernel)
  if spec.kind == 'conv2d_transpose':
    return conv2d_transpose_flops(*spec.in_hw, *spec.kernel)
  if spec.kind == 'dense':
    return dense_flops(*spec.kernel)
  raise ValueError(f'Unknown layer kind {spec.kind!r}')


def training_flops(specs: Sequence[LayerSpec]) -> Dict[str, Any]:
  """FLOPs per image of one training step over `specs` (see the docstring).

  Returns forward, backward and total FLOPs, and the per-layer figures.
  """
  layers = []
  for spec in specs:
    forward = forward_flops(spec)
    weight_grad = forward
    input_grad = forward if spec.needs_input_grad else 0
    layers.append({'name': spec.name, 'kind': spec.kind, 'forward': forward,
                   'weight_grad': weight_grad, 'input_grad': input_grad,
                   'total': forward + weight_grad + input_grad})
  forward = sum(l['forward'] for l in layers)
  backward = sum(l['weight_grad'] + l['input_grad'] for l in layers)
  return {'forward': forward, 'backward': backward,
          'total': forward + backward, 'layers': layers}


def model_layer_specs(vae) -> List[LayerSpec]:
  """The LayerSpecs of the VAE's conv, transposed-conv and dense layers.

  Read from the built Keras model (shapes, kernels), encoder then decoder.
  """
  specs = []
  image_input = vae.encoder.inputs[0]
  for model in (vae.encoder, vae.decoder):
    for layer in model.layers:
      if isinstance(layer, keras_layers.Conv2DTranspose):
        kind = 'conv2d_transpose'
      elif isinstance(layer, keras_layers.Conv2D):
        kind = 'conv2d'
      elif isinstance(layer, keras_layers.Dense):
        kind = 'dense'
      else:
        continue
      kernel = tuple(int(d) for d in layer.kernel.shape)
      if kind == 'conv2d_transpose':  # Keras stores (k_h, k_w, c_out, c_in).
        kernel = (kernel[0], kernel[1], kernel[3], kernel[2])
      in_shape, out_shape = layer.input.shape, layer.output.shape
      hw = lambda shape: ((int(shape[1]), int(shape[2])) if len(shape) == 4
                          else (1, 1))
      specs.append(LayerSpec(
          name=f'{model.name}/{layer.name}', kind=kind, kernel=kernel,
          in_hw=hw(in_shape), out_hw=hw(out_shape),
          needs_input_grad=layer.input is not image_input))
  if sum(not s.needs_input_grad for s in specs) != 1:
    raise RuntimeError('Expected exactly one layer reading the image, got '
                       f'{[s.name for s in specs if not s.needs_input_grad]}')
  return specs


################################################################################
# Profile attribution (pure functions).
################################################################################


def union_length(intervals: Iterable[Interval]) -> float:
  """Total length covered by the union of [start, end) intervals."""
  total = 0.0
  current_start = current_end = None
  for start, end in sorted(intervals):
    if end <= start:
      continue
    if current_end is None or start > current_end:
      if current_end is not None:
        total += current_end - current_start
      current_start, current_end = start, end
    else:
      current_end = max(current_end, end)
  if current_end is not None:
    total += current_end - current_start
  return total


def clip(intervals: Iterable[Interval], start: float,
         end: float) -> List[Interval]:
  """The parts of `intervals` within [start, end)."""
  clipped = []
  for s, e in intervals:
    s, e = max(s, start), min(e, end)
    if e > s:
      clipped.append((s, e))
  return clipped


# Function-call and control-flow ops: their events span the ops they run.
CONTAINER_OP_TYPES = frozenset({
    'PartitionedCall', 'StatefulPartitionedCall', 'While', 'StatelessWhile',
    'If', 'StatelessIf', 'Case', 'StatelessCase', 'RemoteCall'})
VARIABLE_OP_TYPES = frozenset({
    'ReadVariableOp', 'AssignVariableOp', 'AssignAddVariableOp',
    'AssignSubVariableOp', 'VarHandleOp', 'VarIsInitializedOp',
    'ResourceApplyAdam', '_MklReadVariableOp'})
INPUT_PIPELINE = 'input_pipeline'
CATEGORIES = ('conv', 'matmul', 'elementwise_other', 'variables', 'cast',
              INPUT_PIPELINE)
CATEGORY_DESCRIPTIONS = {
    'conv': 'Conv2D, Conv2DBackpropInput/Filter (oneDNN _MklNative*, fused)',
    'matmul': 'MatMul (oneDNN _MklMatMul, _MklNativeFusedMatMul)',
    'elementwise_other': 'other ops: bias, activations, loss, sampling, Adam '
                         'arithmetic, reductions',
    'variables': 'variable reads and assignments',
    'cast': 'Cast (float32 <-> bfloat16)',
    INPUT_PIPELINE: 'input pipeline: IteratorGetNext and tf.data threads',
}


def op_category(op_type: str) -> Optional[str]:
  """The category of a TensorFlow op type; None for container ops."""
  if op_type in CONTAINER_OP_TYPES:
    return None
  if 'Conv2D' in op_type:
    return 'conv'
  if 'MatMul' in op_type:
    return 'matmul'
  if op_type in VARIABLE_OP_TYPES:
    return 'variables'
  if op_type in ('Cast', '_MklCast'):
    return 'cast'
  if op_type.startswith(('IteratorGetNext', 'OptionalGetValue',
                         'OptionalHasValue', 'MultiDeviceIteratorGetNext')):
    return INPUT_PIPELINE
  return 'elementwise_other'


@dataclasses.dataclass(frozen=True)
class KernelEvent:
  """One kernel's execution on the timeline (ns) and its category."""
  start: float
  end: float
  category: str
  thread: str = ''


def attribute(windows: Sequence[Interval],
              events: Sequence[KernelEvent]) -> Dict[str, Any]:
  """Splits each step window into kernel time (by category) and the rest.

  Args:
    windows: the steps, as [start, end) on the timeline (ns).
    events: kernel events (any thread, any category).

  Returns:
    'steps': per window its wall time, the union of all kernels and of the
    compute kernels (all but the input pipeline's), and per category the
    union and the thread time (sum of clipped durations), all in ms;
    'summary': over all windows (totals / number of windows), the split of
    the wall time into compute_share (a compute kernel runs),
    input_pipeline_only_share (only the input pipeline runs) and
    overhead_share (no kernel runs), which add up to 1; kernel_share (all
    kernels); the median per-window compute share; per category its union
    per step and its share of the wall time.
  """
  if not windows:
    raise ValueError('attribute: no step window')
  by_category: Dict[str, List[Interval]] = {c: [] for c in CATEGORIES}
  for event in events:
    by_category.setdefault(event.category, []).append((event.start, event.end))
  every = [(e.start, e.end) for e in events]
  compute = [(e.start, e.end) for e in events
             if e.category != INPUT_PIPELINE]
  steps = []
  for start, end in windows:
    step = {'wall_ms': (end - start) / 1e6,
            'kernel_union_ms': union_length(clip(every, start, end)) / 1e6,
            'compute_union_ms': union_length(clip(compute, start, end)) / 1e6,
            'categories': {}}
    for category, intervals in by_category.items():
      clipped = clip(intervals, start, end)
      step['categories'][category] = {
          'union_ms': union_length(clipped) / 1e6,
          'thread_ms': sum(e - s for s, e in clipped) / 1e6}
    step['compute_share'] = step['compute_union_ms'] / step['wall_ms']
    steps.append(step)
  n = len(steps)
  wall = sum(s['wall_ms'] for s in steps)
  union = sum(s['kernel_union_ms'] for s in steps)
  compute_union = sum(s['compute_union_ms'] for s in steps)
  categories = {}
  for category in by_category:
    c_union = sum(s['categories'][category]['union_ms'] for s in steps)
    c_thread = sum(s['categories'][category]['thread_ms'] for s in steps)
    categories[category] = {'union_ms_per_step': c_union / n,
                            'thread_ms_per_step': c_thread / n,
                            'share_of_wall': c_union / wall}
  summary = {
      'steps': n,
      'wall_ms_per_step': wall / n,
      'median_wall_ms': statistics.median(s['wall_ms'] for s in steps),
      'kernel_union_ms_per_step': union / n,
      # The three shares add up to 1: compute kernels run; only the input
      # pipeline runs; nothing runs (framework overhead).
      'compute_share': compute_union / wall,
      'input_pipeline_only_share': (union - compute_union) / wall,
      'overhead_share': 1 - union / wall,
      'median_compute_share': statistics.median(s['compute_share']
                                                for s in steps),
      'kernel_share': union / wall,
      'compute_thread_ms_per_step': sum(
          c['thread_ms_per_step'] for k, c in categories.items()
          if k != INPUT_PIPELINE),
      'categories': categories,
  }
  return {'steps': steps, 'summary': summary}


_OP_EVENT = re.compile(r'^[^:\s]+:([A-Za-z_][A-Za-z0-9_]*)$')


def classify_event(name: str, line_name: str) -> Optional[str]:
  """The category of a host event, or None if it is not a kernel.

  TensorFlow op events are named `op_name:OpType`; tf.data's work on its own
  threads is named `Iterator::...`.
  """
  match = _OP_EVENT.match(name)
  if match:
    return op_category(match.group(1))
  if name.startswith('Iterator::') and line_name.startswith('tf_data'):
    return INPUT_PIPELINE
  return None


def read_xspace(logdir: str) -> Tuple[List[Interval], List[KernelEvent]]:
  """The step windows and kernel events of the profile under `logdir`.

  Step windows are this script's `step_profile_step` events.
  """
  paths = glob.glob(os.path.join(logdir, 'plugins', 'profile', '*',
                                 '*.xplane.pb'))
  if len(paths) != 1:
    raise RuntimeError(f'Expected one .xplane.pb under {logdir}, got {paths}')
  space = xplane_pb2.XSpace()
  with open(paths[0], 'rb') as f:
    space.ParseFromString(f.read())
  windows, events = [], []
  for plane in space.planes:
    if not plane.name.startswith('/host:'):
      continue
    for line in plane.lines:
      line_start = line.timestamp_ns
      for event in line.events:
        name = plane.event_metadata[event.metadata_id].name
        start = line_start + event.offset_ps / 1000
        end = start + event.duration_ps / 1000
        if name == STEP_EVENT:
          windows.append((start, end))
          continue
        category = classify_event(name, line.name)
        if category is not None:
          events.append(KernelEvent(start, end, category, line.name))
  return sorted(windows), events


################################################################################
# Measurements (TensorFlow).
################################################################################


def load_average() -> float:
  """The 1-minute load average."""
  return round(os.getloadavg()[0], 2)


def write_training_tfrecords(directory: str, max_images: int = 0) -> str:
  """Writes data/mnist's training split as IdxExampleGen does; its glob."""
  images_header = idx.read_images_header(
      str(MNIST_DIR / 'train-images-idx3-ubyte.gz'))
  labels_header = idx.read_labels_header(
      str(MNIST_DIR / 'train-labels-idx1-ubyte.gz'))
  count = images_header.count
  if max_images:
    count = min(count, max_images)
  images = idx.read_items(images_header, 0, count)
  labels = idx.read_items(labels_header, 0, count)
  split_dir = os.path.join(directory, 'Split-train')
  os.makedirs(split_dir, exist_ok=True)
  path = os.path.join(split_dir, 'data_tfrecord-00000-of-00001.gz')
  options = tf.io.TFRecordOptions(compression_type='GZIP')
  with tf.io.TFRecordWriter(path, options) as writer:
    for example in idx.iter_examples(images, labels):
      writer.write(example.SerializeToString())
  logger.info('Wrote %d examples to %s', count, path)
  return os.path.join(split_dir, '*')


def graph_flops(concrete_function) -> Dict[str, Any]:
  """TensorFlow's op-level FLOP statistics of a traced function's graph."""
  graph = concrete_function.graph
  options = tf.compat.v1.profiler.ProfileOptionBuilder.float_operation()
  options['output'] = 'none'
  profile = tf.compat.v1.profiler.profile(graph, options=options)
  # The ops the outputs and the side effects (variable updates) depend on.
  live = set()
  stack = [t.op for t in graph.outputs] + list(graph.control_outputs)
  while stack:
    op = stack.pop()
    if op.name in live:
      continue
    live.add(op.name)
    stack.extend(t.op for t in op.inputs)
    stack.extend(op.control_inputs)
  by_type: Dict[str, float] = {}
  dead: Dict[str, float] = {}
  for op in graph.get_operations():
    try:
      flops = tf_ops.get_stats_for_node_def(graph, op.node_def, 'flops').value
    except ValueError:  # No statistics registered for this op type.
      flops = None
    if not flops:
      continue
    target = by_type if op.name in live else dead
    target[op.type] = target.get(op.type, 0) + float(flops)
  live_total = sum(by_type.values())
  return {
      'profiler_total_float_ops': int(profile.total_float_ops),
      'live_total': live_total,
      'live_conv_matmul': sum(v for k, v in by_type.items()
                              if 'Conv2D' in k or 'MatMul' in k),
      'live_by_op_type': dict(sorted(by_type.items(), key=lambda kv: -kv[1])),
      'dead_by_op_type': dead,
  }


class _StepWindows:
  """Emits contiguous `step_profile_step` TraceMe events, one per step."""

  def __init__(self):
    self._trace = None
    self.count = 0

  def next(self):
    self.close()
    self._trace = tf.profiler.experimental.Trace(STEP_EVENT,
                                                 step_num=self.count, _r=1)
    self._trace.__enter__()
    self.count += 1

  def close(self):
    if self._trace is not None:
      self._trace.__exit__(None, None, None)
      self._trace = None


def profile_calls(logdir: str, call: Callable[[], Any], calls: int) -> Dict[
    str, Any]:
  """Profiles `calls` calls of `call`, one step window each; attributes."""
  windows = _StepWindows()
  tf.profiler.experimental.start(logdir)
  try:
    windows.next()
    for i in range(calls):
      call()
      if i < calls - 1:
        windows.next()
    windows.close()
  finally:
    tf.profiler.experimental.stop()
  return attribute(*read_xspace(logdir))


def make_fit_profiler(logdir: str, epoch: int, first_step: int, steps: int):
  """A Keras callback profiling steps [first_step, first_step + steps) of
  `epoch`, each step a window from the previous step's end to its own."""

  class FitProfiler(keras.callbacks.Callback):
    """Starts the profiler, marks the step windows, stops it."""

    def __init__(self):
      super().__init__()
      self.epoch = -1
      self.windows = _StepWindows()
      self.profiled_steps: List[int] = []

    def on_epoch_begin(self, epoch, logs=None):
      self.epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
      if self.epoch != epoch:
        return
      if batch == first_step - 1:
        tf.profiler.experimental.start(logdir)
        self.windows.next()
      elif first_step <= batch < first_step + steps:
        self.profiled_steps.append(batch)
        if batch == first_step + steps - 1:
          self.windows.close()
          tf.profiler.experimental.stop()
        else:
          self.windows.next()

  return FitProfiler()


def call_seconds(call: Callable[[], Any], repeats: int) -> List[float]:
  """Wall times of `repeats` calls of `call`."""
  seconds = []
  for _ in range(repeats):
    start = time.perf_counter()
    call()
    seconds.append(time.perf_counter() - start)
  return seconds


def peak_benchmarks(batch_size: int, repeats: int) -> Dict[str, Any]:
  """GFLOP/s of large matmuls and convolutions, float32 and bfloat16."""
  rng = tf.random.Generator.from_seed(0)
  results = {}
  n = 2048
  conv_in = [64, 56, 56, 64]
  conv_filter = [3, 3, 64, 64]
  convt_in = [batch_size, 14, 14, 64]
  convt_filter = [3, 3, 32, 64]  # (k_h, k_w, c_out, c_in)
  convt_out = [batch_size, 28, 28, 32]
  for dtype in (tf.float32, tf.bfloat16):
    a = tf.cast(rng.normal([n, n]), dtype)
    b = tf.cast(rng.normal([n, n]), dtype)
    x = tf.cast(rng.normal(conv_in), dtype)
    w = tf.cast(rng.normal(conv_filter) * 0.05, dtype)
    xt = tf.cast(rng.normal(convt_in), dtype)
    wt = tf.cast(rng.normal(convt_filter) * 0.05, dtype)
    kernels = {
        PEAK_MATMUL: (tf.function(lambda: tf.matmul(a, b)), 2 * n ** 3),
        PEAK_CONV: (
            tf.function(lambda: tf.nn.conv2d(x, w, 1, 'SAME')),
            conv2d_flops(56, 56, 3, 3, 64, 64) * conv_in[0]),
        f'conv2d_transpose_model_{batch_size}x14x14x64_to_28x28x32': (
            tf.function(lambda: tf.nn.conv2d_transpose(
                xt, wt, convt_out, 2, 'SAME')),
            conv2d_transpose_flops(14, 14, 3, 3, 64, 32) * batch_size),
    }
    for name, (fn, flops) in kernels.items():
      fn()  # Traces and warms up.
      fn()
      seconds = call_seconds(lambda fn=fn: fn().shape, repeats)
      results[f'{name}_{dtype.name}'] = {
          'flops': flops, 'seconds': seconds,
          'gflops_per_s': flops / statistics.median(seconds) / 1e9}
  return results


def merge_peaks(runs: Sequence[Dict[str, Any]]) -> Dict[str, Any]:
  """Median GFLOP/s over the calls of every run of peak_benchmarks."""
  merged = {}
  for name in runs[0]:
    seconds = [s for run in runs for s in run[name]['seconds']]
    merged[name] = {
        'gflops_per_s': runs[0][name]['flops'] / statistics.median(seconds)
                        / 1e9,
        'gflops_per_s_per_run': [run[name]['gflops_per_s'] for run in runs],
        'best_call_gflops_per_s':
            runs[0][name]['flops'] / min(seconds) / 1e9,
        'flops': runs[0][name]['flops']}
  return merged


class PrecisionRun:
  """One precision's model, input pipeline and the three step paths."""

  def __init__(self, precision: str, train_files: str,
               args: argparse.Namespace):
    self.precision = precision
    self.args = args
    hp = vae_lib.Hyperparameters(batch_size=args.batch_size, seed=args.seed,
                                 precision=precision)
    self.hp = hp
    keras.utils.set_random_seed(hp.seed)
    # The Trainer's input pipeline and model.
    self.dataset, self.steps_per_epoch = data.make_training_dataset(
        train_files, hp.batch_size, seed=hp.seed)
    self.vae = vae_lib.build_vae(hp)
    self.images = tf.constant(next(iter(self.dataset.take(1))).numpy())
    self.vae.optimizer.build(self.vae.trainable_variables)
    self.step_fn = tf.function(self.vae.train_step)
    self.concrete = self.step_fn.get_concrete_function(
        tf.TensorSpec([hp.batch_size] + list(vae_lib.IMAGE_SHAPE),
                      tf.float32))
    vae = self.vae

    @tf.function
    def loop(images, n):
      for _ in tf.range(n):
        vae.train_step(images)
      return n

    self.loop = loop
    self.loop_n = tf.constant(args.loop_steps)
    self.epochs_done = 0
    self.flops = self._count_flops()
    self.rounds: List[Dict[str, Any]] = []

  def _count_flops(self) -> Dict[str, Any]:
    """FLOPs per image and step, analytic and TensorFlow's."""
    batch = self.hp.batch_size
    analytic = training_flops(model_layer_specs(self.vae))
    tf_flops = graph_flops(self.concrete)
    per_step = analytic['total'] * batch
    logger.info('%s: analytic %.2f MFLOP/image, TensorFlow %.2f (live conv+'
                'matmul) / %.2f (profiler total)', self.precision,
                analytic['total'] / 1e6,
                tf_flops['live_conv_matmul'] / batch / 1e6,
                tf_flops['profiler_total_float_ops'] / batch / 1e6)
    return {
        'analytic_per_image': analytic,
        'tensorflow_per_image': {
            'profiler_total': tf_flops['profiler_total_float_ops'] / batch,
            'live_total': tf_flops['live_total'] / batch,
            'live_conv_matmul': tf_flops['live_conv_matmul'] / batch,
            'live_by_op_type': {k: v / batch for k, v in
                                tf_flops['live_by_op_type'].items()},
            'dead_by_op_type': {k: v / batch for k, v in
                                tf_flops['dead_by_op_type'].items()},
        },
        'ratio_tf_live_conv_matmul_to_analytic':
            tf_flops['live_conv_matmul'] / per_step,
        'ratio_tf_profiler_total_to_analytic':
            tf_flops['profiler_total_float_ops'] / per_step,
        'analytic_per_step': per_step,
    }

  def fit_epoch(self, callbacks=()) -> List[float]:
    """One epoch of the Trainer's fit; the step times (first step out)."""
    step_timer = recording.StepTimer()
    self.vae.fit(self.dataset, epochs=self.epochs_done + 1,
                 initial_epoch=self.epochs_done,
                 steps_per_epoch=self.steps_per_epoch, verbose=0,
                 callbacks=[step_timer, *callbacks])
    self.epochs_done += 1
    return step_timer.seconds

  def warm_up(self) -> None:
    """Traces every path and runs the first (warm-up) epoch."""
    self.fit_epoch()
    for _ in range(self.args.warmup_calls):
      self.step_fn(self.images)
    self.loop(self.images, self.loop_n)

  def time_round(self) -> Dict[str, Any]:
    """One fit epoch with the two tight paths interleaved in it.

    Every --interleave-every fit steps, a chunk of --call-steps calls of the
    step function and one call of the in-graph loop runs from a callback,
    so that the three paths share the machine's load of the moment. The fit
    step right after a chunk is left out. Returns the per-round medians (s)
    and, per chunk, the ratios of the tight paths to the fit steps just
    before it.
    """
    args = self.args
    fit_times: List[float] = []
    chunks: List[Dict[str, float]] = []
    run = self

    class Interleave(keras.callbacks.Callback):
      """Times the fit steps and runs the tight paths between some."""

      def __init__(self):
        super().__init__()
        self.last: Optional[float] = None
        self.skip_next = False
        self.segment: List[float] = []

      def on_train_batch_end(self, batch, logs=None):
        now = time.perf_counter()
        if self.last is not None and not self.skip_next:
          fit_times.append(now - self.last)
          self.segment.append(now - self.last)
        self.skip_next = False
        if batch and batch % args.interleave_every == 0 and self.segment:
          per_call = call_seconds(lambda: run.step_fn(run.images),
                                  args.call_steps)
          loop = call_seconds(lambda: run.loop(run.images, run.loop_n),
                              1)[0] / args.loop_steps
          fit = statistics.median(self.segment)
          chunks.append({'fit': fit,
                         'step_function': statistics.median(per_call),
                         'in_graph_loop': loop})
          self.segment = []
          self.skip_next = True
        self.last = time.perf_counter()

    self.vae.fit(self.dataset, epochs=self.epochs_done + 1,
                 initial_epoch=self.epochs_done,
                 steps_per_epoch=self.steps_per_epoch, verbose=0,
                 callbacks=[Interleave()])
    self.epochs_done += 1
    figures = {
        'fit': statistics.median(fit_times),
        'step_function': statistics.median(c['step_function']
                                           for c in chunks),
        'in_graph_loop': statistics.median(c['in_graph_loop']
                                           for c in chunks),
        'chunks': chunks,
        'load_average': load_average(),
    }
    self.rounds.append(figures)
    logger.info('%s round %d: median step fit %.1f ms, per call %.1f ms, '
                'in-graph loop %.1f ms (load %.2f)', self.precision,
                len(self.rounds), 1000 * figures['fit'],
                1000 * figures['step_function'],
                1000 * figures['in_graph_loop'], figures['load_average'])
    return figures

  def profile(self, profile_root: str) -> Dict[str, Any]:
    """Profiles --profile-steps steps of each path; the attributions."""
    args = self.args
    first = min(50, self.steps_per_epoch - args.profile_steps - 1)
    logdir = os.path.join(profile_root, f'{self.precision}_fit')
    profiler = make_fit_profiler(logdir, self.epochs_done, first,
                                 args.profile_steps)
    seconds = self.fit_epoch([profiler])
    # StepTimer's entry i is step i + 1 of the epoch.
    profiled = [seconds[step - 1] for step in profiler.profiled_steps]
    unprofiled = [s for i, s in enumerate(seconds)
                  if i + 1 not in profiler.profiled_steps and
                  i not in profiler.profiled_steps]
    fit = {
        'median_step_ms_profiled': 1000 * statistics.median(profiled),
        'median_step_ms_unprofiled_same_epoch':
            1000 * statistics.median(unprofiled),
        **attribute(*read_xspace(logdir))['summary'],
    }
    call = profile_calls(
        os.path.join(profile_root, f'{self.precision}_step_function'),
        lambda: self.step_fn(self.images), args.profile_steps)['summary']
    loop = profile_calls(
        os.path.join(profile_root, f'{self.precision}_loop'),
        lambda: self.loop(self.images, self.loop_n), 1)['summary']
    loop['note'] = (f'one window = one call of {args.loop_steps} steps: the '
                    'ms figures are per call')
    return {'fit': fit, 'step_function': call, 'in_graph_loop': loop}

  def result(self, profiles: Dict[str, Any]) -> Dict[str, Any]:
    """Everything measured for this precision."""
    per_step = self.flops['analytic_per_step']
    paths = {}
    for path in ('fit', 'step_function', 'in_graph_loop'):
      per_round = [r[path] for r in self.rounds]
      median = statistics.median(per_round)
      paths[path] = {
          'median_step_ms': 1000 * median,
          'median_step_ms_per_round': [1000 * s for s in per_round],
          'gflops_per_s': per_step / median / 1e9,
          'profile': profiles[path],
      }
    # Ratios to the fit steps just before, chunk by chunk (same load).
    chunks = [c for r in self.rounds for c in r['chunks']]
    for path in ('step_function', 'in_graph_loop'):
      paths[path]['ratio_to_fit_per_chunk'] = [c[path] / c['fit']
                                               for c in chunks]
      paths[path]['ratio_to_fit'] = statistics.median(
          paths[path]['ratio_to_fit_per_chunk'])
    return {
        'precision': self.precision,
        'steps_per_epoch': self.steps_per_epoch,
        'flops': self.flops,
        'paths': paths,
        'round_load_averages': [r['load_average'] for r in self.rounds],
    }


def summarize(result: Dict[str, Any]) -> Dict[str, Any]:
  """Per precision: the headline figures and achieved / peak."""
  peaks = result['peak']
  summary = {}
  for precision, run in result['precisions'].items():
    dtype = 'float32' if precision == 'float32' else 'bfloat16'
    conv_peak = peaks[f'{PEAK_CONV}_{dtype}']['gflops_per_s']
    matmul_peak = peaks[f'{PEAK_MATMUL}_{dtype}']['gflops_per_s']
    flops = run['flops']
    entry = {
        'analytic_mflop_per_image':
            flops['analytic_per_image']['total'] / 1e6,
        'tensorflow_live_conv_matmul_mflop_per_image':
            flops['tensorflow_per_image']['live_conv_matmul'] / 1e6,
        'tensorflow_profiler_total_mflop_per_image':
            flops['tensorflow_per_image']['profiler_total'] / 1e6,
        'ratio_tf_live_conv_matmul_to_analytic':
            flops['ratio_tf_live_conv_matmul_to_analytic'],
        'peak_dtype': dtype,
        'conv_peak_gflops_per_s': conv_peak,
        'matmul_peak_gflops_per_s': matmul_peak,
        'paths': {},
    }
    for path, figures in run['paths'].items():
      profile = figures['profile']
      entry['paths'][path] = {
          'median_step_ms': figures['median_step_ms'],
          'gflops_per_s': figures['gflops_per_s'],
          'fraction_of_conv_peak': figures['gflops_per_s'] / conv_peak,
          'fraction_of_matmul_peak': figures['gflops_per_s'] / matmul_peak,
          'compute_share': profile['compute_share'],
          'input_pipeline_only_share': profile['input_pipeline_only_share'],
          'overhead_share': profile['overhead_share'],
          'conv_share': profile['categories']['conv']['share_of_wall'],
      }
    summary[precision] = entry
  return summary


PATH_NAMES = {'fit': 'Keras fit + input pipeline (Trainer)',
              'step_function': 'tf.function(train_step), one call per step',
              'in_graph_loop': 'train_step in a tf.while_loop'}


def markdown_lines(result: Dict[str, Any]) -> List[str]:
  """A short human rendering of a step_profile result."""
  loads = result['load_averages']
  lines = [
      f'### `{result["run_name"]}`: step profile of the train step, batch '
      f'{result["batch_size"]}',
      '',
      *recording.header_lines(result),
      f'- 1-min load average: {loads["start"]} at the start, '
      f'{loads["end"]} at the end (the cores are shared with other runs).',
      f'- {result["rounds"]} measured fit epochs per precision (after a '
      'warm-up epoch), the tight paths run in chunks between fit steps; '
      'step times are medians over epochs of per-epoch medians.',
      '- FLOPs: a multiply-add is 2 FLOPs; conv, transposed conv and dense '
      'layers only; a step = 3 x forward - the first Conv2D\'s input '
      'gradient. TensorFlow: its op FLOP statistics over the traced '
      'train_step graph (the conv and matmul ops the step depends on; all '
      'ops for the profiler total).',
      '',
      '| Precision | MFLOP/image, analytic | TF, conv + matmul | TF / '
      'analytic | TF profiler total (all ops) |',
      '| --- | --- | --- | --- | --- |',
  ]
  for precision, s in result['summary'].items():
    lines.append(
        f'| {precision} | {s["analytic_mflop_per_image"]:.2f} | '
        f'{s["tensorflow_live_conv_matmul_mflop_per_image"]:.2f} | '
        f'{s["ratio_tf_live_conv_matmul_to_analytic"]:.4f} | '
        f'{s["tensorflow_profiler_total_mflop_per_image"]:.2f} |')
  lines += [
      '',
      'Step time and GFLOP/s (analytic FLOPs / median step); shares of the '
      'profiled steps\' wall time: compute kernels running / only the input '
      'pipeline running / no kernel (framework overhead).',
      '',
      '| Precision | Path | Median step (ms) | GFLOP/s | / conv peak | '
      'Compute | Input only | Overhead | Conv kernels |',
      '| --- | --- | --- | --- | --- | --- | --- | --- | --- |',
  ]
  for precision, s in result['summary'].items():
    for path, p in s['paths'].items():
      lines.append(
          f'| {precision} | {PATH_NAMES[path]} | {p["median_step_ms"]:.1f} | '
          f'{p["gflops_per_s"]:.0f} | {100 * p["fraction_of_conv_peak"]:.0f}%'
          f' | {100 * p["compute_share"]:.0f}% | '
          f'{100 * p["input_pipeline_only_share"]:.0f}% | '
          f'{100 * p["overhead_share"]:.0f}% | {100 * p["conv_share"]:.0f}% |')
  for precision, run in result['precisions'].items():
    fit = run['paths']['fit']['profile']
    unprofiled = fit['median_step_ms_unprofiled_same_epoch']
    lines.append(
        f'- {precision}: profiled fit steps took '
        f'{fit["median_step_ms_profiled"]:.1f} ms (median), the unprofiled '
        f'steps of the same epoch {unprofiled:.1f} ms.')
  for precision, run in result['precisions'].items():
    paths = run['paths']
    lines.append(
        f'- {precision}, step time / the fit steps just before, median over '
        f'chunks: one call per step '
        f'{paths["step_function"]["ratio_to_fit"]:.2f}, in-graph loop '
        f'{paths["in_graph_loop"]["ratio_to_fit"]:.2f}.')
  if 'bf16_speedup_per_round' in result:
    speedups = ', '.join(
        f'{PATH_NAMES[path]} '
        f'{statistics.median(ratios):.2f}x'
        for path, ratios in result['bf16_speedup_per_round'].items())
    lines.append(f'- mixed_bfloat16 vs float32, median of per-round ratios: '
                 f'{speedups}.')
  lines += ['', '| Peak kernel | GFLOP/s: median (start, end) | best call |',
            '| --- | --- | --- |']
  for name, peak in result['peak'].items():
    per_run = ', '.join(f'{g:.0f}' for g in peak['gflops_per_s_per_run'])
    lines.append(f'| {name} | {peak["gflops_per_s"]:.0f} ({per_run}) | '
                 f'{peak["best_call_gflops_per_s"]:.0f} |')
  lines += ['', 'Share of the profiled fit steps\' wall time per op category '
            '(union of the category\'s kernel intervals / wall; categories '
            'overlap on 2 threads) and, in brackets, its thread time per '
            'step (ms):', '',
            '| Precision | ' + ' | '.join(CATEGORIES) + ' |',
            '| --- ' * (len(CATEGORIES) + 1) + '|']
  for precision, run in result['precisions'].items():
    profile = run['paths']['fit']['profile']
    cells = [f'{100 * profile["categories"][c]["share_of_wall"]:.1f}% '
             f'({profile["categories"][c]["thread_ms_per_step"]:.1f})'
             for c in CATEGORIES]
    lines.append(f'| {precision} | ' + ' | '.join(cells) + ' |')
  return lines


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
  """The command-line flags."""
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  parser.add_argument('--precisions', nargs='+', choices=PRECISIONS,
                      default=list(PRECISIONS))
  parser.add_argument('--batch-size', type=int, default=128)
  parser.add_argument('--examples-dir', default='',
                      help='ExampleGen Examples artifact dir with Split-train/ '
                           '(default: written from data/mnist to a temp dir)')
  parser.add_argument('--max-images', type=int, default=0,
                      help='use only the first N training images (0 = all)')
  parser.add_argument('--rounds', type=int, default=3,
                      help='measured rounds (fit epochs), after a warm-up '
                           'epoch, per precision')
  parser.add_argument('--interleave-every', type=int, default=50,
                      help='fit steps between two chunks of the tight paths')
  parser.add_argument('--call-steps', type=int, default=20,
                      help='calls of tf.function(train_step) per chunk')
  parser.add_argument('--warmup-calls', type=int, default=20)
  parser.add_argument('--loop-steps', type=int, default=20,
                      help='train steps per call of the in-graph loop (one '
                           'call per chunk)')
  parser.add_argument('--profile-steps', type=int, default=20,
                      help='steps recorded by the TensorFlow profiler, per '
                           'precision and path (the in-graph loop: one call)')
  parser.add_argument('--peak-repeats', type=int, default=8,
                      help='timed calls per peak kernel, at start and end')
  parser.add_argument('--seed', type=int, default=42)
  parser.add_argument('--tag', default='')
  parser.add_argument('--keep-profiles', default='',
                      help='directory to keep the profiles in (default: a '
                           'temporary one, deleted)')
  parser.add_argument('--results-dir',
                      default=str(REPO_ROOT / 'benchmarks' / 'results'))
  args = parser.parse_args(argv)
  if args.rounds < 1:
    parser.error('--rounds must be at least 1')
  return args


def main(argv: Optional[Sequence[str]] = None) -> Dict[str, Any]:
  """Measures every precision; writes the JSON result."""
  args = parse_args(argv)
  now = datetime.datetime.now(datetime.timezone.utc)
  run_name = (f'step_profile_{now:%Y-%m-%d}' +
              (f'_{args.tag}' if args.tag else ''))
  script_start = time.perf_counter()
  loads = {'start': load_average()}
  with tempfile.TemporaryDirectory(prefix='step_profile_') as tmp:
    if args.examples_dir:
      train_files = os.path.join(args.examples_dir, 'Split-train', '*')
    else:
      train_files = write_training_tfrecords(tmp, args.max_images)
    profile_root = args.keep_profiles or os.path.join(tmp, 'profiles')
    peak_runs = [peak_benchmarks(args.batch_size, args.peak_repeats)]
    loads['after_first_peak'] = load_average()
    runs = {p: PrecisionRun(p, train_files, args) for p in args.precisions}
    for run in runs.values():
      run.warm_up()
    loads['after_warm_up'] = load_average()
    for round_index in range(args.rounds):
      order = list(runs)
      shift = round_index % len(order)
      for precision in order[shift:] + order[:shift]:
        runs[precision].time_round()
    loads['after_rounds'] = load_average()
    profiles = {p: run.profile(profile_root) for p, run in runs.items()}
    loads['after_profiles'] = load_average()
    peak_runs.append(peak_benchmarks(args.batch_size, args.peak_repeats))
  loads['end'] = load_average()
  result = {
      **recording.result_header(MODULE, run_name, now, argv),
      'batch_size': args.batch_size,
      'rounds': args.rounds,
      'train_files': args.examples_dir or 'data/mnist training split, '
                                           'written as GZIP TFRecords to a '
                                           'temp dir',
      'load_averages': loads,
      'peak': merge_peaks(peak_runs),
      'peak_runs': peak_runs,
      'precisions': {p: run.result(profiles[p]) for p, run in runs.items()},
      'total_seconds': time.perf_counter() - script_start,
  }
  if len(runs) == 2:
    fp32, bf16 = (runs[p].rounds for p in PRECISIONS)
    result['bf16_speedup_per_round'] = {
        path: [a[path] / b[path] for a, b in zip(fp32, bf16)]
        for path in PATH_NAMES}
  result['summary'] = summarize(result)
  recording.write_results(result, args.results_dir)
  for line in markdown_lines(result):
    print(line)
  return result


if __name__ == '__main__':
  logging.basicConfig(level=logging.INFO,
                      format='%(asctime)s %(levelname)s %(name)s: %(message)s')
  main()
