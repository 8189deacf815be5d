"""Benchmark: where the Trainer's train step spends its time, against a
roofline of these cores measured in the same run.

For each precision (float32 and mixed_bfloat16), in one process:

1. FLOPs of one training step, from the model's layer shapes: a multiply-add
   is 2 FLOPs; convolutions, transposed convolutions and dense layers only
   (activations, the loss, sampling and Adam are elementwise: about 1%); the
   backward pass of a layer is its weight gradient plus its input gradient
   (each as costly as its forward pass), except the first convolution, whose
   input is the image. `--check-flops` compares this count with TensorFlow's
   own op-level FLOP statistics of the traced train step.
2. The roofline, measured: the compute peak of each dtype (the faster of a
   2048 x 2048 x 2048 matmul and a 3x3, 64 -> 64 channel convolution over
   [64, 56, 56, 64]) and the memory bandwidth (an elementwise add over 32 Mi
   float32, bytes read and written); each timed call by call at the start
   and at the end of the run, medians. Then each of the model's own layers
   at the batch size, forward and both gradients, timed alone, against its
   bound: min(peak, arithmetic intensity x bandwidth), the intensity counting
   every tensor a pass reads or writes once.
3. The Trainer's step: `models.train.train` (the Trainer's data, validation
   carve-out, TensorBoard and `steps_per_execution`) on ExampleGen's
   `Split-train` for `--epochs` epochs; the first is warm-up, the last is
   profiled; the ones between are timed (EpochTimer, validation included).
   Achieved GFLOP/s = the epoch's training and validation FLOPs / its time.
4. Where a step's time goes: the profiled epoch (TensorFlow's profiler)
   parsed here. Kernels are the op events of the host threads (named
   `op_name:OpType`; function-call and loop ops, which only wrap other ops,
   are left out) and tf.data's own threads. Per category (CATEGORIES) the
   union of its kernels' intervals over the epoch's wall time; categories
   overlap (two threads), so their shares may add up to more than 1. The
   wall time with no kernel at all running is framework overhead.

Run from the repository root on an otherwise idle machine (about 4 minutes
on 2 cores); figures in BENCHMARKS.md, "Speed and cost targets":

  .venv/bin/python -m benchmarks.step_profile
"""

import dataclasses
import glob
import logging
import os
import pathlib
import re
import statistics
import tempfile
import time
from typing import Any, Callable, Dict, Iterable, List, Optional, Sequence
from typing import Tuple

import keras
import tensorflow as tf
from keras import layers as keras_layers
from tensorflow.python.framework import ops as tf_ops
from tensorflow.tsl.profiler.protobuf import xplane_pb2

from benchmarks import recipes
from benchmarks import recording
from models import data
from models import precision as precision_lib
from models import train as train_lib
from models import vae as vae_lib

logger = logging.getLogger(__name__)

PRECISIONS = (precision_lib.FLOAT32, 'mixed_bfloat16')
EPOCH_EVENT = 'step_profile_epoch'
MATMUL_N = 2048
CONV_INPUT = (64, 56, 56, 64)
BANDWIDTH_FLOATS = 32 * 2**20

# An interval on the profiler's timeline, in nanoseconds: (start, end).
Interval = Tuple[float, float]

################################################################################
# FLOPs (plain functions).
################################################################################


@dataclasses.dataclass(frozen=True)
class LayerSpec:
  """One layer, per image. kind: conv2d, conv2d_transpose or dense. For
  convolutions `kernel` is (k_h, k_w, c_in, c_out) and `in_hw`, `out_hw`
  (height, width); for dense layers `kernel` is (n_in, n_out). `stride` of
  a convolution; `needs_input_grad` False for the layer reading the image."""
  name: str
  kind: str
  kernel: Tuple[int, ...]
  in_hw: Tuple[int, int] = (1, 1)
  out_hw: Tuple[int, int] = (1, 1)
  stride: int = 1
  needs_input_grad: bool = True

  @property
  def forward_flops(self) -> int:
    """Per image: every tap of every output pixel of a Conv2D; of every
    input pixel of a Conv2DTranspose (the convolution whose input gradient
    it is); every weight of a Dense layer."""
    if self.kind == 'dense':
      return 2 * self.kernel[0] * self.kernel[1]
    if self.kind not in ('conv2d', 'conv2d_transpose'):
      raise ValueError(f'unknown layer kind {self.kind!r}')
    hw = self.out_hw if self.kind == 'conv2d' else self.in_hw
    k_h, k_w, c_in, c_out = self.kernel
    return 2 * hw[0] * hw[1] * k_h * k_w * c_in * c_out

  @property
  def passes(self) -> int:
    """Forward, weight gradient and (unless the image) input gradient."""
    return 3 if self.needs_input_grad else 2

  @property
  def training_flops(self) -> int:
    """Per image, over every pass; each costs the forward pass's FLOPs."""
    return self.forward_flops * self.passes

  def tensor_sizes(self) -> Tuple[int, int, int]:
    """Elements per image of the input and output, and of the kernel."""
    if self.kind == 'dense':
      return self.kernel[0], self.kernel[1], self.kernel[0] * self.kernel[1]
    k_h, k_w, c_in, c_out = self.kernel
    return (self.in_hw[0] * self.in_hw[1] * c_in,
            self.out_hw[0] * self.out_hw[1] * c_out, k_h * k_w * c_in * c_out)


def model_layer_specs(vae: vae_lib.VAE) -> List[LayerSpec]:
  """The convolution and dense layers of a built VAE, encoder then decoder."""
  specs = []
  image = vae.encoder.inputs[0]
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
      if kind == 'conv2d_transpose':  # Keras keeps (k_h, k_w, c_out, c_in).
        kernel = (kernel[0], kernel[1], kernel[3], kernel[2])
      hw = lambda shape: tuple(int(d) for d in shape[1:3]) if len(
          shape) == 4 else (1, 1)
      in_hw, out_hw = hw(layer.input.shape), hw(layer.output.shape)
      # Named by shape: Keras numbers unnamed layers per process.
      name = (f'{model.name} {kind} {kernel[0]} -> {kernel[1]}'
              if kind == 'dense' else
              f'{model.name} {kind} {in_hw[0]}x{in_hw[1]}x{kernel[2]} -> '
              f'{out_hw[0]}x{out_hw[1]}x{kernel[3]}')
      specs.append(LayerSpec(
          name, kind, kernel, in_hw, out_hw,
          int(layer.strides[0]) if kind != 'dense' else 1,
          layer.input is not image))
  return specs


def step_flops(specs: Sequence[LayerSpec], batch_size: int) -> int:
  """FLOPs of one training step of `batch_size` images."""
  return batch_size * sum(spec.training_flops for spec in specs)


def tensorflow_flops(vae: vae_lib.VAE, batch_size: int) -> float:
  """TensorFlow's FLOP statistics of the convolution and matmul ops that a
  traced train step's outputs and variable updates depend on (the graph
  also holds the first convolution's unused input gradient, which is pruned
  when it runs)."""
  vae.optimizer.build(vae.trainable_variables)
  graph = tf.function(vae.train_step).get_concrete_function(
      tf.TensorSpec((batch_size, 28, 28, 1), tf.float32)).graph
  live, stack = set(), [t.op for t in graph.outputs] + list(
      graph.control_outputs)
  while stack:
    op = stack.pop()
    if op.name not in live:
      live.add(op.name)
      stack.extend([t.op for t in op.inputs] + list(op.control_inputs))
  total = 0.0
  for op in graph.get_operations():
    if op.name in live and ('Conv2D' in op.type or 'MatMul' in op.type):
      total += tf_ops.get_stats_for_node_def(graph, op.node_def,
                                             'flops').value or 0
  return total


################################################################################
# The profile (plain functions).
################################################################################

CATEGORIES = {
    'conv': 'Conv2D and its two gradients (oneDNN variants included)',
    'matmul': 'MatMul (the dense layers)',
    'elementwise': 'every other op: bias, activations, loss, sampling, '
                   'reductions',
    'optimizer': "Adam's update: the ops under the optimizer's name scope",
    'cast': 'Cast between bfloat16 and float32',
    'layout': 'layout reorders: Transpose and oneDNN format conversions',
    'variables': 'variable reads and writes outside the optimizer',
    'input_pipeline': 'IteratorGetNext and the tf.data threads',
}
CONTAINER_OP_TYPES = frozenset({
    'PartitionedCall', 'StatefulPartitionedCall', 'While', 'StatelessWhile',
    'If', 'StatelessIf', 'Case', 'StatelessCase', 'RemoteCall'})
_OP_EVENT = re.compile(r'^([^:\s]+):([A-Za-z_][A-Za-z0-9_]*)$')


def op_category(op_name: str, op_type: str) -> Optional[str]:
  """The category of an op event; None for ops that only wrap others."""
  if op_type in CONTAINER_OP_TYPES:
    return None
  if 'Conv2D' in op_type:
    return 'conv'
  if 'MatMul' in op_type:
    return 'matmul'
  if op_type.startswith(('IteratorGetNext', 'OptionalGetValue',
                         'OptionalHasValue')):
    return 'input_pipeline'
  if 'adam' in op_name.lower():
    return 'optimizer'
  if op_type in ('Cast', '_MklCast'):
    return 'cast'
  if op_type in ('Transpose', '_MklToTf', '_MklTranspose') or (
      'Reorder' in op_type):
    return 'layout'
  if 'VariableOp' in op_type:
    return 'variables'
  return 'elementwise'


def event_category(name: str, line_name: str) -> Optional[str]:
  """The category of a host event named `name` on thread `line_name`."""
  match = _OP_EVENT.match(name)
  if match:
    return op_category(*match.groups())
  if name.startswith('Iterator::') and line_name.startswith('tf_data'):
    return 'input_pipeline'
  return None


def union_length(intervals: Iterable[Interval]) -> float:
  """The length of the union of [start, end) intervals."""
  total, end_so_far = 0.0, None
  for start, end in sorted(intervals):
    if end_so_far is None or start > end_so_far:
      total += end - start
      end_so_far = end
    elif end > end_so_far:
      total += end - end_so_far
      end_so_far = end
  return total


def shares(window: Interval,
           events: Sequence[Tuple[float, float, str]]) -> Dict[str, Any]:
  """Per category the union of its events within `window` / the window's
  length; `any_kernel` for all of them, `overhead` = 1 - any_kernel."""
  start, end = window
  clipped = [(max(s, start), min(e, end), c) for s, e, c in events
             if min(e, end) > max(s, start)]
  wall = end - start
  result = {category: union_length((s, e) for s, e, c in clipped
                                   if c == category) / wall
            for category in CATEGORIES}
  result['any_kernel'] = union_length((s, e) for s, e, _ in clipped) / wall
  result['overhead'] = 1 - result['any_kernel']
  result['wall_seconds'] = wall / 1e9
  return result


def read_profile(logdir: str) -> Tuple[Interval, List[Tuple[float, float,
                                                              str]]]:
  """The EPOCH_EVENT window and the categorised kernel events of the one
  profile (.xplane.pb) under `logdir`."""
  paths = glob.glob(os.path.join(logdir, 'plugins', 'profile', '*',
                                 '*.xplane.pb'))
  if len(paths) != 1:
    raise RuntimeError(f'expected one .xplane.pb under {logdir}, got {paths}')
  space = xplane_pb2.XSpace()
  space.ParseFromString(pathlib.Path(paths[0]).read_bytes())
  windows, events = [], []
  for plane in space.planes:
    if not plane.name.startswith('/host:'):
      continue
    for line in plane.lines:
      for event in line.events:
        name = plane.event_metadata[event.metadata_id].name
        start = line.timestamp_ns + event.offset_ps / 1000
        interval = (start, start + event.duration_ps / 1000)
        if name == EPOCH_EVENT:
          windows.append(interval)
        elif (category := event_category(name, line.name)) is not None:
          events.append((*interval, category))
  if len(windows) != 1:
    raise RuntimeError(f'expected one {EPOCH_EVENT} event, got {len(windows)}')
  return windows[0], events


################################################################################
# Measurements.
################################################################################


def call_seconds(call: Callable[[], Any], repeats: int) -> List[float]:
  """Wall times of `repeats` calls of `call`, after two untimed ones."""
  call()
  call()
  seconds = []
  for _ in range(repeats):
    start = time.perf_counter()
    call()
    seconds.append(time.perf_counter() - start)
  return seconds


def peaks(repeats: int) -> Dict[str, Dict[str, List[float]]]:
  """Seconds per call of the peak kernels, per dtype, and of the add."""
  rng = tf.random.Generator.from_seed(0)
  out = {}
  for dtype in (tf.float32, tf.bfloat16):
    a = tf.cast(rng.normal((MATMUL_N, MATMUL_N)), dtype)
    x = tf.cast(rng.normal(CONV_INPUT), dtype)
    w = tf.cast(rng.normal((3, 3, 64, 64)) * 0.05, dtype)
    matmul = tf.function(lambda a=a: tf.reduce_sum(tf.matmul(a, a)[0]))
    conv = tf.function(lambda x=x, w=w: tf.reduce_sum(
        tf.nn.conv2d(x, w, 1, 'SAME')[0]))
    out[dtype.name] = {'matmul': call_seconds(matmul, repeats),
                       'conv': call_seconds(conv, repeats)}
  big = tf.ones((BANDWIDTH_FLOATS,), tf.float32)
  add = tf.function(lambda: tf.add(big, 1.0))
  out['add_float32'] = call_seconds(lambda: add().shape, repeats)
  return out


def roofline(peak_runs: Sequence[Dict[str, Any]]) -> Dict[str, Any]:
  """GFLOP/s peaks per dtype and GB/s, medians over every timed call."""
  merged = lambda key, kind: statistics.median(
      s for run in peak_runs for s in run[key][kind])
  result = {}
  for dtype in ('float32', 'bfloat16'):
    # A matmul is a dense layer over MATMUL_N rows; the convolution keeps
    # its [56, 56] size (stride 1) over a batch of CONV_INPUT[0].
    matmul = (LayerSpec('matmul', 'dense', (MATMUL_N, MATMUL_N)).forward_flops
              * MATMUL_N / merged(dtype, 'matmul') / 1e9)
    conv = (LayerSpec('conv', 'conv2d', (3, 3, CONV_INPUT[3], 64),
                      CONV_INPUT[1:3], CONV_INPUT[1:3]).forward_flops *
            CONV_INPUT[0] / merged(dtype, 'conv') / 1e9)
    result[dtype] = {'matmul_gflops': round(matmul, 1),
                     'conv_gflops': round(conv, 1),
                     'peak_gflops': round(max(matmul, conv), 1)}
  add = statistics.median(s for run in peak_runs for s in run['add_float32'])
  result['bandwidth_gb_per_s'] = round(8 * BANDWIDTH_FLOATS / add / 1e9, 2)
  return result


def layer_roofline(specs: Sequence[LayerSpec], batch_size: int,
                   conv_dtype: tf.DType, measured: Dict[str, Any],
                   repeats: int) -> List[Dict[str, Any]]:
  """Each layer's forward and gradients at `batch_size`, timed alone,
  against min(its dtype's peak, intensity x bandwidth). The convolutions run
  in `conv_dtype`, the dense layers in float32 (as models.vae builds them)."""
  rng = tf.random.Generator.from_seed(1)
  rows = []
  for spec in specs:
    dtype = tf.float32 if spec.kind == 'dense' else conv_dtype
    x_size, y_size, k_size = spec.tensor_sizes()
    if spec.kind == 'dense':
      x = tf.cast(rng.normal((batch_size, spec.kernel[0])), dtype)
      w = tf.Variable(tf.cast(rng.normal(spec.kernel) * 0.05, dtype))
      forward = lambda x, w=w: tf.matmul(x, w)
    else:
      x = tf.cast(rng.normal((batch_size, *spec.in_hw, spec.kernel[2])), dtype)
      if spec.kind == 'conv2d':
        w = tf.Variable(tf.cast(rng.normal(spec.kernel) * 0.05, dtype))
        forward = lambda x, w=w, s=spec: tf.nn.conv2d(x, w, s.stride, 'SAME')
      else:
        k_h, k_w, c_in, c_out = spec.kernel
        w = tf.Variable(tf.cast(rng.normal((k_h, k_w, c_out, c_in)) * 0.05,
                                dtype))
        forward = lambda x, w=w, s=spec: tf.nn.conv2d_transpose(
            x, w, (batch_size, *s.out_hw, s.kernel[3]), s.stride, 'SAME')

    @tf.function
    def step(x=x, w=w, forward=forward, spec=spec):
      with tf.GradientTape() as tape:
        tape.watch(x)
        y = forward(x)
      grads = tape.gradient(y, [x, w] if spec.needs_input_grad else [w],
                            output_gradients=tf.ones_like(y))
      return [tf.reduce_sum(g[..., :1]) for g in grads]

    seconds = statistics.median(call_seconds(step, repeats))
    flops = batch_size * spec.training_flops
    moved = spec.passes * (batch_size * (x_size + y_size) + k_size) * (
        dtype.size)
    intensity = flops / moved
    bound = min(measured[dtype.name]['peak_gflops'],
                intensity * measured['bandwidth_gb_per_s'])
    rows.append({'layer': spec.name, 'dtype': dtype.name,
                 'mflop': round(flops / 1e6, 3), 'ms': round(1e3 * seconds, 3),
                 'gflops': round(flops / seconds / 1e9, 3),
                 'flop_per_byte': round(intensity, 1),
                 'bound_gflops': round(bound, 1),
                 'of_bound': round(flops / seconds / 1e9 / bound, 3)})
  return rows


class ProfileEpoch(keras.callbacks.Callback):
  """Profiles epoch `epoch` (0-based) into `logdir`, marked by EPOCH_EVENT."""

  def __init__(self, logdir: str, epoch: int):
    super().__init__()
    self.logdir, self.epoch, self._trace = logdir, epoch, None

  def on_epoch_begin(self, epoch, logs=None):
    if epoch == self.epoch:
      tf.profiler.experimental.start(self.logdir)
      self._trace = tf.profiler.experimental.Trace(EPOCH_EVENT, _r=1)
      self._trace.__enter__()

  def on_epoch_end(self, epoch, logs=None):
    if self._trace is not None:
      self._trace.__exit__(None, None, None)
      self._trace = None
      tf.profiler.experimental.stop()


def profile_precision(precision: str, examples: pathlib.Path, epochs: int,
                      tmp: str, check_flops: bool) -> Dict[str, Any]:
  """The Trainer's epochs and the profile of its last one, for one
  precision; `layers` holds the model's LayerSpecs (for layer_roofline)."""
  hp = vae_lib.Hyperparameters(precision=precision, epochs=epochs)
  timer = recording.EpochTimer()
  logdir = os.path.join(tmp, f'profile-{precision}')
  train_files = str(examples / 'Split-train' / '*')
  vae, history, _ = train_lib.train(
      hp, train_files, os.path.join(tmp, 'logs'),
      callbacks=[timer, ProfileEpoch(logdir, epochs - 1)], verbose=0)
  specs = model_layer_specs(vae)
  per_step = step_flops(specs, hp.batch_size)
  steps = history.params['steps']
  validation_images = 0
  if hp.validation_fraction:
    validation_images = sum(int(batch.shape[0]) for batch in data.make_dataset(
        train_files, hp.batch_size, shuffle=False,
        validation_fraction=hp.validation_fraction, part='validation'))
  epoch_flops = steps * per_step + validation_images * sum(
      spec.forward_flops for spec in specs)
  epoch_seconds = statistics.median(timer.seconds[1:-1])
  window, events = read_profile(logdir)
  result = {
      'precision': precision, 'batch_size': hp.batch_size,
      'steps_per_execution': hp.steps_per_execution,
      'train_steps_per_epoch': steps, 'validation_images': validation_images,
      'mflop_per_image': round(per_step / hp.batch_size / 1e6, 3),
      'epoch_seconds': [round(s, 2) for s in timer.seconds],
      'median_epoch_seconds': round(epoch_seconds, 2),
      'median_step_ms': round(1e3 * epoch_seconds / steps, 2),
      'images_per_second': round(steps * hp.batch_size / epoch_seconds, 1),
      'achieved_gflops': round(epoch_flops / epoch_seconds / 1e9, 1),
      'profiled_epoch_seconds': round(timer.seconds[-1], 2),
      'shares': {k: round(v, 4) for k, v in shares(window, events).items()},
      'layers': specs,
  }
  if check_flops:
    check = tensorflow_flops(vae_lib.build_vae(hp), hp.batch_size)
    result['tensorflow_flops_ratio'] = round(check / per_step, 6)
  logger.info('%s: %.1f ms a step, %.0f GFLOP/s, kernels %.0f%% of the wall '
              'time', precision, result['median_step_ms'],
              result['achieved_gflops'], 100 * result['shares']['any_kernel'])
  return result


def markdown_lines(result: Dict[str, Any]) -> List[str]:
  """The roofline, each precision's step and its split, as tables."""
  r = result['roofline']
  lines = [f'### `{result["run_name"]}`: the train step against the roofline',
           '', *recording.header_lines(result),
           f'- Load average (1 min): {result["load_average"]}.', '',
           *recording.table(
               ('dtype', 'matmul GFLOP/s', 'conv GFLOP/s'),
               [(d, r[d]['matmul_gflops'], r[d]['conv_gflops'])
                for d in ('float32', 'bfloat16')]),
           f'- Memory bandwidth: {r["bandwidth_gb_per_s"]} GB/s.', '',
           *recording.table(
               ('precision', 'step (ms)', 'images/s', 'GFLOP/s', 'of peak',
                *CATEGORIES, 'no kernel'),
               [(p['precision'], p['median_step_ms'], p['images_per_second'],
                 p['achieved_gflops'], f'{100 * p["of_peak"]:.0f}%',
                 *(f'{100 * p["shares"][c]:.0f}%' for c in CATEGORIES),
                 f'{100 * p["shares"]["overhead"]:.0f}%')
                for p in result['precisions']])]
  for p in result['precisions']:
    lines += ['', f'{p["precision"]}, layer by layer (forward + gradients):',
              '', *recording.table(
                  ('layer', 'dtype', 'MFLOP', 'ms', 'GFLOP/s', 'FLOP/byte',
                   'bound', 'of bound'),
                  [(l['layer'], l['dtype'], l['mflop'], l['ms'], l['gflops'],
                    l['flop_per_byte'], l['bound_gflops'],
                    f'{100 * l["of_bound"]:.0f}%') for l in p['layers']])]
  return lines


def main(argv: Optional[Sequence[str]] = None) -> Dict[str, Any]:
  parser = recording.parser(__doc__)
  parser.add_argument('--precisions', nargs='+', default=list(PRECISIONS),
                      choices=PRECISIONS)
  parser.add_argument('--epochs', type=int, default=4,
                      help='per precision: a warm-up, timed ones, a profiled '
                      'one (at least 3)')
  parser.add_argument('--repeats', type=int, default=10,
                      help='timed calls of each peak kernel and layer')
  parser.add_argument('--check-flops', action='store_true',
                      help="compare the FLOP count with TensorFlow's")
  parser.add_argument('--work-dir', type=pathlib.Path,
                      default=pathlib.Path(tempfile.gettempdir()) /
                      'mnist-vae-recipes',
                      help='where the examples are written once (as '
                      'benchmarks.recipes writes them)')
  args = parser.parse_args(argv)
  if args.epochs < 3:
    parser.error('--epochs must be at least 3')
  header = recording.result_header('benchmarks.step_profile', args.tag, argv)
  examples = recipes.ensure_examples(args.work_dir)
  load = [round(os.getloadavg()[0], 2)]
  peak_runs = [peaks(args.repeats)]
  with tempfile.TemporaryDirectory(prefix='step-profile-') as tmp:
    precisions = [profile_precision(p, examples, args.epochs, tmp,
                                    args.check_flops)
                  for p in args.precisions]
  peak_runs.append(peaks(args.repeats))
  measured = roofline(peak_runs)
  for p in precisions:
    dtype = tf.bfloat16 if 'bfloat16' in p['precision'] else tf.float32
    p['of_peak'] = round(
        p['achieved_gflops'] / measured[dtype.name]['peak_gflops'], 3)
    p['layers'] = layer_roofline(p['layers'], p['batch_size'], dtype,
                                 measured, args.repeats)
  load.append(round(os.getloadavg()[0], 2))
  result = {**header, 'load_average': load, 'roofline': measured,
            'peak_runs': peak_runs, 'precisions': precisions}
  return recording.report(result, args.results_dir, markdown_lines(result))


if __name__ == '__main__':
  recording.configure_logging()
  main()
