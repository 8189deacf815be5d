"""Command-line flags shared by the runners: training and the blessing gate.

Every field of `models.vae.Hyperparameters` gets a flag (`--field-name`, with
the dataclass default), so a new hyperparameter needs no runner change.
"""

import argparse
import dataclasses
from typing import Any, Dict

from components.vae_evaluator import component as evaluator
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


def add_training_flags(parser: argparse.ArgumentParser,
                       serving_flag: str) -> None:
  """Hyperparameter, warm-start and blessing flags.

  Args:
    parser: the parser to add them to.
    serving_flag: how the runner names the push destination in help texts.
  """
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
  gate = parser.add_argument_group('evaluation and blessing')
  gate.add_argument(
      '--bless-threshold', type=float,
      default=evaluator.DEFAULT_BLESS_THRESHOLD, metavar='NATS',
      help='bless only a model whose held-out -ELBO is at most this; the '
      'default 30-epoch run reaches about 151, a model that ignores its '
      'latent code about 206.')
  gate.add_argument(
      '--bless-tolerance', type=float,
      default=evaluator.DEFAULT_BLESS_TOLERANCE, metavar='NATS',
      help='bless only a model at most this much worse (-ELBO) than the one '
      f'served from {serving_flag}, both measured on the same eval images '
      '(0: at least as good).')
  gate.add_argument(
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


def training_kwargs(args: argparse.Namespace) -> Dict[str, Any]:
  """The `create_pipeline()` arguments the training and gate flags set.

  Expects `args.hyperparameters` from `hyperparameters_from_args`.
  """
  return {
      'hyperparameters': args.hyperparameters,
      'bless_threshold': args.bless_threshold,
      'bless_tolerance': args.bless_tolerance,
      'iwae_samples': args.iwae_samples,
      'warm_start': args.warm_start,
  }
