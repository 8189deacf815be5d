"""One run of the pipeline on this machine, for `local_runner.py`.

Imported by the runner only once logging is configured: TensorFlow, which
this module imports, reads its log level when imported.

  LocalRun.run      checks the data source, the served version and the drift
                    anchor; ends at once with exit 0 when the served version
                    was trained on exactly this data and configuration
                    ("nothing new", layouts/lineage.py); otherwise runs the
                    pipeline (LocalDagRunner) under the output directory's
                    lock and writes the run summary;
  LocalRun.stopped  what a documented error (STOPS) ends the run with: the
                    exit code and the lines the operator reads (OUTCOMES).

Nothing else is caught: any other exception is a failure with a traceback
(exit code 1).

The checks, and with them this module, need TensorFlow but not TFX, TFDV or
the components' executors: those are imported only when the pipeline runs,
so that a night with nothing new does not pay for them (BENCHMARKS.md,
"Nights with nothing new").
"""

import logging
import os
from typing import Any, Callable, Dict, NamedTuple, Optional, Sequence

from components.data_gate import errors as gate_errors
from components.example_gen import idx
from components.example_gen import inputs
from components.example_gen import window as window_lib
from components.vae_evaluator import errors as evaluator_errors
from layouts import anchor as anchor_layout
from layouts import lineage
from layouts import serving as serving_layout
from layouts import serving_lock
from pipeline import exit_codes
from pipeline import run_lock
from pipeline import run_summary
from pipeline import trainer_config


class DataSourceError(ValueError):
  """The data directory or TFDS data set the flags name cannot be used;
  found before anything ran (the message names it)."""


def _gate_advice(error: gate_errors.DataGateError) -> str:
  """What an operator can do about what stopped the run."""
  from components.data_gate import gate  # pylint: disable=g-import-not-at-top
  kinds = {finding['kind'] for split in error.report['splits'].values()
           for finding in split.get('findings', ())}
  if kinds & {gate.SCHEMA, gate.SANITY}:
    return ('Schema and split sanity findings are data bugs that '
            '--accept-drift does not let through: fix the drop.')
  return ('If the change of distribution is intended, rerun with '
          '--accept-drift (its pushed data becomes the new anchor), or '
          're-anchor with python -m pipeline.anchor.')


class Outcome(NamedTuple):
  """What a documented error ends a run with.

  `message` is logged first, `after_summary` (if any) after the run summary
  the run wrote is printed. Their fields: {error} (the error's message),
  {code}, {serving_dir}, {summary_path} and {advice} (`advice(error)`).
  """
  code: int
  message: str
  after_summary: str = ''
  advice: Optional[Callable[[Any], str]] = None


# The errors that end a run with a documented exit code (pipeline/exit_codes.py
# says what each code means; a subclass, such as the IDX reader's SpanError,
# gets its nearest base's entry). Each is raised by this module's checks or by
# a component through LocalDagRunner.
OUTCOMES: Dict[type, Outcome] = {
    # Before anything ran: a missing data directory, an unknown, unprepared
    # or unfit TFDS data set.
    DataSourceError: Outcome(exit_codes.BAD_INPUT, '{error}'),
    # ExampleGen: the IDX files (or spans), or the TFDS data set, are bad.
    idx.IdxFormatError: Outcome(exit_codes.BAD_INPUT,
                                'bad input data: {error}'),
    inputs.TfdsSourceError: Outcome(exit_codes.BAD_INPUT,
                                         'bad input data: {error}'),
    run_lock.RunLockedError: Outcome(exit_codes.OUTPUT_DIR_LOCKED, '{error}'),
    # DataGate; the run summary says what was found.
    gate_errors.DataGateError: Outcome(
        exit_codes.DATA_GATE, '{error}',
        after_summary='Nothing was trained or pushed (exit code {code}). '
        'Summary: {summary_path}. {advice}',
        advice=_gate_advice),
    # The served version or the anchor, checked before the run and read by
    # DataGate, the Trainer and the evaluator.
    serving_layout.VersionCorruptError: Outcome(
        exit_codes.SERVED_VERSION_CORRUPT,
        '{error}. Nothing was trained or pushed (exit code {code}). Roll back '
        'past it, which publishes an intact earlier version above it: '
        'python -m pipeline.rollback --serving-dir {serving_dir}'),
    anchor_layout.AnchorCorruptError: Outcome(
        exit_codes.ANCHOR_REFUSED,
        '{error}. Nothing was trained or pushed (exit code {code}). Re-anchor '
        'to the served version\'s data: python -m pipeline.anchor '
        '--serving-dir {serving_dir} --set'),
    # The Pusher.
    serving_lock.ServingLockedError: Outcome(
        exit_codes.SERVING_ROOT_LOCKED,
        '{error}. Nothing was pushed (exit code {code}); the next run '
        'measures against whatever that writer published.'),
    # The evaluator, after its retries.
    evaluator_errors.ServedModelError: Outcome(
        exit_codes.FAILURE,
        '{error}. Nothing was pushed; the error was an I/O error each time: '
        'check the storage and run again.'),
}
STOPS = tuple(OUTCOMES)


def outcome_of(error: BaseException) -> Outcome:
  """The Outcome of the nearest of `error`'s types in OUTCOMES."""
  for cls in type(error).__mro__:
    if cls in OUTCOMES:
      return OUTCOMES[cls]
  raise KeyError(f'{type(error).__name__} has no documented exit code')


def local_or_uri(path: Optional[str]) -> Optional[str]:
  """An absolute path, or the URI (gs://, s3://) as it is."""
  if not path or '://' in path:
    return path
  return os.path.abspath(path)


class LocalRun:
  """The run the parsed flags describe.

  Args:
    args: local_runner.parse_args()'s result.
    log: the runner's logger: what the operator reads comes from the command.
    serving_subdir: the serving directory inside --output-dir, unless
      --serving-dir says.
    beam_args: the Beam pipeline arguments.
  """

  def __init__(self, args: Any, log: logging.Logger, serving_subdir: str,
               beam_args: Sequence[str]):
    self.args, self.log, self.beam_args = args, log, list(beam_args)
    self.output_dir = os.path.abspath(args.output_dir)
    self.pipeline_root = os.path.join(self.output_dir, 'pipeline')
    self.serving_dir = local_or_uri(args.serving_dir) or os.path.join(
        self.output_dir, serving_subdir)
    self.metadata_path = os.path.join(self.output_dir, 'metadata.sqlite')
    self.summary: Optional[Dict[str, Any]] = None
    self.summary_path: Optional[str] = None

  def _data_source(self):
    """(data_root, tfds source, use_spans, name) of the flags' data."""
    args = self.args
    try:
      if args.tfds:
        from components.example_gen import tfds_source  # pylint: disable=g-import-not-at-top
        source = tfds_source.prepare(
            args.tfds,
            data_dir=local_or_uri(args.tfds_data_dir),
            manual_dir=args.tfds_manual_dir)
        return (None, source, False,
                f'TFDS {source.name} {source.version} ({source.dataset_dir})')
      data_root = os.path.abspath(args.data_dir)
      use_spans = inputs.check_data_dir(data_root)
      return data_root, None, use_spans, data_root
    except (inputs.DataDirError, inputs.TfdsSourceError) as e:
      raise DataSourceError(str(e)) from e

  def _write_summary(self, **extra: Any) -> None:
    summary = run_summary.summarize(self.metadata_path)
    summary.update(output_dir=self.output_dir, **extra)
    self.summary = summary
    self.summary_path = run_summary.write_summary(summary, self.output_dir)

  def _nothing_new(self, data_root: str, use_spans: bool) -> Optional[str]:
    """Why this run has nothing new to train, or None: the rule the Trainer
    applies (layouts/lineage.py), checked before the pipeline starts, on the
    window IdxExampleGen would read."""
    config = self.args.config
    patterns = {split.name: os.path.basename(split.pattern)
                for split in inputs.make_input_config(
                    use_spans, config.data.train_spans).splits}
    window = window_lib.resolve_window(data_root, patterns,
                                       config.data.train_spans,
                                       self.serving_dir)
    return lineage.nothing_new(self.serving_dir, lineage.training_identity(
        window_lib.data_digest(window, self.args.max_examples),
        trainer_config.trainer_custom_config(config.training,
                                             self.serving_dir)))

  def run(self) -> int:
    """Runs the pipeline; exit code 0, or raises one of STOPS."""
    args = self.args
    data_root, source, use_spans, data_name = self._data_source()
    if serving_layout.is_object_store(self.serving_dir):
      import tensorflow_io  # pylint: disable=g-import-not-at-top,unused-import
    enable_cache = not args.no_cache
    if (enable_cache and os.path.exists(self.metadata_path) and
        not os.path.isdir(self.pipeline_root)):
      # ML Metadata would serve outputs whose files are gone.
      self.log.warning('%s is gone but %s remains: running without the cache '
                       'this time', self.pipeline_root, self.metadata_path)
      enable_cache = False
    served_dir = serving_layout.latest_version_dir(self.serving_dir)
    if served_dir:
      # Checked here too: a run whose components are all cached reads no
      # version, and would not notice that the served one was damaged.
      serving_layout.verify_version(served_dir)
    anchor_layout.read_anchor(self.serving_dir)
    reason = served_dir and data_root and self._nothing_new(data_root,
                                                            use_spans)
    if reason:
      self.summary = run_summary.nothing_new_summary(reason, served_dir,
                                                     self.output_dir)
      self.summary_path = run_summary.write_summary(self.summary,
                                                    self.output_dir)
      print(run_summary.format_summary(self.summary))
      self.log.info('Nothing to run: %s. Summary: %s', reason,
                    self.summary_path)
      return exit_codes.OK
    # pylint: disable=g-import-not-at-top
    from pipeline import pipeline as pipeline_lib
    # TFX's modules themselves, not its public `tfx.v1` facade, whose
    # extensions import Google Cloud's clients: seconds of every start-up.
    from tfx.orchestration import metadata
    from tfx.orchestration.local import local_dag_runner
    # pylint: enable=g-import-not-at-top
    pipeline = pipeline_lib.create_pipeline(
        pipeline_name=pipeline_lib.PIPELINE_NAME,
        pipeline_root=self.pipeline_root,
        data_root=data_root,
        tfds_source=source,
        serving_dir=self.serving_dir,
        use_spans=use_spans,
        max_examples=args.max_examples,
        config=args.config,
        beam_pipeline_args=self.beam_args,
        metadata_connection_config=(
            metadata.sqlite_metadata_connection_config(
                self.metadata_path)),
        enable_cache=enable_cache,
        # The served version is part of the gate's and evaluator's cache keys.
        served_version=serving_layout.version_name(served_dir),
    )
    self.log.info('Running pipeline %s on %s (%s examples per split), %s',
                  pipeline_lib.PIPELINE_NAME, data_name,
                  args.max_examples or 'all',
                args.config.training.hyperparameters)
    with run_lock.run_lock(self.output_dir):
      try:
        local_dag_runner.LocalDagRunner().run(pipeline)
      except gate_errors.DataGateError as e:
        # Nothing was trained or pushed; the summary says what was found.
        self._write_summary(data_gate=e.report)
        raise
      self._write_summary()
    print(run_summary.format_summary(self.summary))
    self.log.info('Pipeline finished. Outputs: %s (component outputs in %s, '
                  'ML Metadata in %s, summary in %s)', self.output_dir,
                  self.pipeline_root, self.metadata_path, self.summary_path)
    return exit_codes.OK

  def stopped(self, error: BaseException) -> int:
    """Tells the operator what stopped the run; returns its exit code."""
    outcome = outcome_of(error)
    fields = dict(error=error, code=outcome.code,
                  serving_dir=self.serving_dir,
                  summary_path=self.summary_path,
                  advice=outcome.advice(error) if outcome.advice else '')
    self.log.error('%s', outcome.message.format(**fields))
    if outcome.after_summary and self.summary is not None:
      print(run_summary.format_summary(self.summary))
      self.log.error('%s', outcome.after_summary.format(**fields))
    return outcome.code
