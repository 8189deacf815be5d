"""Runs the mnist-vae-tfx pipeline on this machine.

LocalDagRunner executes the components one after another; Beam-based ones use
the DirectRunner with one worker process per core; ML Metadata is a SQLite
file in the output directory. The run itself, and which error ends it with
which exit code, is pipeline/local_run.py. Run `python local_runner.py --help`
for flags.
"""

import argparse
import logging
import os
import sys
from typing import List, Optional, Sequence

from pipeline import console
from pipeline import exit_codes

logger = logging.getLogger(__name__)

_HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_DATA_DIR = os.path.join(_HERE, 'data', 'mnist')
# The serving directory inside --output-dir, unless --serving-dir says.
SERVING_SUBDIR = 'serving_model'


def build_parser() -> argparse.ArgumentParser:
  """The command line, its flags generated from pipeline/runner_config.py's
  LocalRunnerConfig."""
  from pipeline import flags  # pylint: disable=g-import-not-at-top
  from pipeline import runner_config  # pylint: disable=g-import-not-at-top
  parser = exit_codes.ArgumentParser(
      description='Train the MNIST convolutional VAE with a local TFX '
      'pipeline (LocalDagRunner, Beam DirectRunner, SQLite ML Metadata).',
      formatter_class=argparse.ArgumentDefaultsHelpFormatter,
      epilog='Exit codes: ' + exit_codes.describe(*exit_codes.MEANINGS) + '.')
  flags.add_flags(parser, runner_config.LocalRunnerConfig,
                  serving='the serving directory',
                  serving_subdir=SERVING_SUBDIR)
  return parser


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
  """Parses and checks the command line; exits with usage on a bad value."""
  from pipeline import flags  # pylint: disable=g-import-not-at-top
  from pipeline import runner_config  # pylint: disable=g-import-not-at-top
  parser = build_parser()
  args = parser.parse_args(argv)
  if args.tfds and args.data_dir:
    parser.error('--data-dir and --tfds are two data sources: give one')
  if not args.tfds and (args.tfds_data_dir or args.tfds_manual_dir):
    parser.error('--tfds-data-dir and --tfds-manual-dir need --tfds')
  if not args.tfds:
    args.data_dir = args.data_dir or DEFAULT_DATA_DIR
  elif not args.tfds_manual_dir and args.tfds == 'mnist':
    args.tfds_manual_dir = DEFAULT_DATA_DIR
  try:
    args.config = flags.config_from_args(
        args, runner_config.LocalRunnerConfig).pipeline
  except ValueError as e:
    parser.error(str(e))
  return args


def default_beam_args() -> List[str]:
  """DirectRunner in multi-processing mode, one worker per core."""
  return [
      '--direct_running_mode=multi_processing',
      f'--direct_num_workers={os.cpu_count() or 1}',
  ]


def main(argv: Optional[Sequence[str]] = None) -> int:
  argv = sys.argv[1:] if argv is None else list(argv)
  # TensorFlow reads its log level when imported: configure logging first,
  # then import what runs the pipeline (and TensorFlow with it).
  console.configure_logging(console.verbose_requested(argv))
  args = parse_args(argv)
  from pipeline import local_run  # pylint: disable=g-import-not-at-top
  run = local_run.LocalRun(args, logger, SERVING_SUBDIR,
                           default_beam_args() + list(args.beam_arg))
  try:
    return run.run()
  except local_run.STOPS as error:  # Documented errors only; see OUTCOMES.
    return run.stopped(error)


if __name__ == '__main__':
  # tensorflow-io is imported only for object stores (see exit_process).
  exit_codes.exit_process(main(), 'tensorflow_io' in sys.modules)
