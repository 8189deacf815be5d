"""Command-line flags shared by the runners: data gate, training, blessing.

Every field of `models.vae.Hyperparameters` gets a flag (`--field-name`, with
the dataclass default), so a new hyperparameter needs no runner change.
"""

import argparse
import dataclasses
from typing import Any, Dict

from components.atomic_pusher import component as pusher
from components.data_gate import gate
from components.vae_evaluator import component as evaluator
from layouts import spans as spans_layout
from models import precision
from models import vae

HYPERPARAMETER_HELP = {
    'latent_dim': 'size of the latent space z',
    'epochs': 'passes over the train split',
    'batch_size': 'images per training step',
    'learning_rate': 'Adam learning rate',
    'seed': 'random seed for initialisation, shuffling and sampling',
    'precision': 'numeric precision of training: mixed_bfloat16 is about '
                 '1.5x faster on CPUs with AMX/AVX512-BF16; auto picks it '
                 'only there (the model is exported in float32 either way)',
}
HYPERPARAMETER_CHOICES = {
    'lr_schedule': vae.LR_SCHEDULES,
    'precision': precision.PRECISIONS,
}


def positive_int(text: str) -> int:
  """argparse type: an int > 0."""
  value = int(text)
  if value <= 0:
    raise argparse.ArgumentTypeError(f'must be a positive integer: {text}')
  return value


def positive_float(text: str) -> float:
  """argparse type: a float > 0."""
  value = float(text)
  if not value > 0:
    raise argparse.ArgumentTypeError(f'must be a positive number: {text}')
  return value


def fraction(text: str) -> float:
  """argparse type: a float in [0, 1]."""
  value = float(text)
  if not 0 <= value <= 1:
    raise argparse.ArgumentTypeError(f'must be between 0 and 1: {text}')
  return value


def add_training_flags(parser: argparse.ArgumentParser,
                       serving_flag: str) -> None:
  """Data gate, hyperparameter, warm-start and blessing flags.

  Args:
    parser: the parser to add them to.
    serving_flag: how the runner names the push destination in help texts.
  """
  data_gate = parser.add_argument_group(
      'data gate (components/data_gate; README "Data gate")')
  data_gate.add_argument(
      '--max-label-linf', type=fraction, default=gate.DEFAULT_MAX_LABEL_LINF,
      metavar='D',
      help='largest L-infinity distance between the label distribution of '
      'a new drop and that of the data the served model was trained on '
      '(README, "Data gate", has the measured values).')
  data_gate.add_argument(
      '--max-pixel-jsd', type=fraction, default=gate.DEFAULT_MAX_PIXEL_JSD,
      metavar='D',
      help='largest Jensen-Shannon divergence between the pixel-value '
      'histograms of a new drop and of the data the served model was '
      'trained on.')
  data_gate.add_argument(
      '--max-mean-image-linf', type=fraction,
      default=gate.DEFAULT_MAX_MEAN_IMAGE_LINF, metavar='D',
      help='largest difference, at any pixel position, between the mean '
      'image (0..1) of a new drop and that of the data the served model was '
      'trained on: catches data whose pixel histogram looks like MNIST but '
      'whose ink is elsewhere (rotated digits, another digit data set).')
  for field in ('max_label_linf', 'max_pixel_jsd', 'max_mean_image_linf'):
    data_gate.add_argument(
        '--anchor-' + field.replace('_', '-'), type=fraction,
        default=getattr(gate.Thresholds(), field), metavar='D',
        help=f'as --{field.replace("_", "-")}, against the drift anchor: the '
        'data of the first pushed version, or of the last pushed run that '
        'accepted drift (python -m pipeline.anchor shows and sets it); '
        'catches a creep in steps too small for the moving reference.')
  data_gate.add_argument(
      '--max-eval-in-train', type=fraction,
      default=gate.DEFAULT_MAX_EVAL_IN_TRAIN, metavar='S',
      help='largest share of the eval images that may also occur, exactly, '
      'among the images trained on (MNIST\'s own: 0); above it the blessing '
      'would score the candidate on images it trained on.')
  data_gate.add_argument(
      '--max-duplicate-share', type=fraction,
      default=gate.DEFAULT_MAX_DUPLICATE_SHARE, metavar='S',
      help='largest share of a split\'s images that may repeat another of '
      'its images exactly (MNIST\'s own: 0).')
  data_gate.add_argument(
      '--min-split-examples', type=positive_int,
      default=gate.DEFAULT_MIN_SPLIT_EXAMPLES, metavar='N',
      help='fewest examples a split may have (an empty or nearly empty split '
      'is a broken drop).')
  data_gate.add_argument(
      '--accept-drift', action='store_true',
      help='let drift beyond the thresholds through, for an intended change '
      'of distribution (schema and split sanity findings still stop the '
      "run); once this run's model is pushed, its data is the new reference "
      'and the new anchor.')
  data_gate.add_argument(
      '--train-spans', type=positive_int,
      default=spans_layout.DEFAULT_TRAIN_SPANS, metavar='K',
      help='train on the newest span-N/ folder of the data root and up to '
      'K-1 earlier spans the data gate passed when they arrived; only the '
      'newest is gated, and its eval split is what the blessing compares '
      'on.')
  training = parser.add_argument_group(
      'training (models/vae.py, Hyperparameters)')
  for field in dataclasses.fields(vae.Hyperparameters):
    training.add_argument(
        '--' + field.name.replace('_', '-'), type=type(field.default),
        default=field.default, dest=field.name,
        choices=HYPERPARAMETER_CHOICES.get(field.name),
        help=HYPERPARAMETER_HELP.get(field.name,
                                     f'see Hyperparameters.{field.name}'))
  training.add_argument(
      '--warm-start', action='store_true',
      help='start training from the weights of the model currently served '
      f'from {serving_flag} (from scratch if none is).')
  blessing = parser.add_argument_group('evaluation, blessing and push')
  blessing.add_argument(
      '--bless-threshold', type=float,
      default=evaluator.DEFAULT_BLESS_THRESHOLD, metavar='NATS',
      help='bless only a model whose held-out -ELBO is at most this; the '
      'default 30-epoch run reaches about 151, a model that ignores its '
      'latent code about 206.')
  blessing.add_argument(
      '--bless-tolerance', type=float,
      default=evaluator.DEFAULT_BLESS_TOLERANCE, metavar='NATS',
      help='bless only a model at most this much worse (-ELBO) than the one '
      f'served from {serving_flag}, both measured on the same eval images '
      '(0: at least as good).')
  blessing.add_argument(
      '--allow-signature-change', action='store_true',
      help='bless a model whose serving signature (input or output name, '
      f'dtype or shape) differs from the one served from {serving_flag}, '
      'e.g. after a change of --latent-dim; without it such a model is not '
      'pushed, so clients do not break silently.')
  blessing.add_argument(
      '--keep-versions', type=positive_int,
      default=pusher.DEFAULT_KEEP_VERSIONS, metavar='N',
      help=f'versions kept in {serving_flag} after a push; older ones are '
      'removed (never the newest or the one just pushed).')
  blessing.add_argument(
      '--iwae-samples', type=positive_int,
      default=evaluator.DEFAULT_IWAE_SAMPLES, metavar='K',
      help='importance samples per image for the IWAE bound.')


def hyperparameters_from_args(args: argparse.Namespace) -> vae.Hyperparameters:
  """The Hyperparameters the flags describe.

  Raises:
    ValueError: a value Hyperparameters rejects.
  """
  return vae.Hyperparameters(**{
      field.name: getattr(args, field.name)
      for field in dataclasses.fields(vae.Hyperparameters)})


def gate_config_from_args(args: argparse.Namespace) -> gate.GateConfig:
  """The data gate's configuration the flags describe."""
  def thresholds(prefix: str) -> gate.Thresholds:
    return gate.Thresholds(**{
        field.name: getattr(args, prefix + field.name)
        for field in dataclasses.fields(gate.Thresholds)})

  return gate.GateConfig(
      thresholds=thresholds(''), anchor_thresholds=thresholds('anchor_'),
      limits=gate.SanityLimits(
          max_eval_in_train=args.max_eval_in_train,
          max_duplicate_share=args.max_duplicate_share,
          min_examples=args.min_split_examples),
      accept_drift=args.accept_drift)


def training_kwargs(args: argparse.Namespace) -> Dict[str, Any]:
  """The `create_pipeline()` arguments the gate, training and blessing flags
  set.

  Expects `args.hyperparameters` from `hyperparameters_from_args`.
  """
  return {
      'hyperparameters': args.hyperparameters,
      'bless_threshold': args.bless_threshold,
      'bless_tolerance': args.bless_tolerance,
      'iwae_samples': args.iwae_samples,
      'warm_start': args.warm_start,
      'gate_config': gate_config_from_args(args),
      'train_spans': args.train_spans,
      'allow_signature_change': args.allow_signature_change,
      'keep_versions': args.keep_versions,
  }
