"""The configuration tree: every setting of the pipeline and its default.

One frozen dataclass a part, each field with its default and, in its
metadata, the help text of its flag and the bounds `models.validation`
checks. Both runners generate their flags from these fields
(`pipeline/flags.py`), and each component receives its part as one JSON
execution property (`to_json`), which its executor parses back (`from_json`):

  PipelineConfig
    data        DataConfig         the window of spans (IdxExampleGen)
    gate        GateConfig         thresholds, anchor, split sanity (DataGate)
    training    TrainingConfig     warm start, and models.vae.Hyperparameters
                                   (the model's own config, in the model file)
    evaluation  EvaluationConfig   blessing (VaeEvaluator)
    serving     ServingConfig      retention (Pusher)
  KubeflowResources                what each Kubeflow task requests

Metadata keys: `help` (may name `{serving}`, the runner's push
destination), `metavar`, `flag` (the flag's name, when not the field's),
`choices`, bounds (`min`, `max`, `above`, `below`); a nested part's field
has `prefix` (put before its fields' flag names) and `help_template` (its
fields' help, from `{flag}` and `{help}`).
"""

import dataclasses
import json
from typing import Any, Mapping, Type, TypeVar

from models import vae
from models import validation

T = TypeVar('T')


setting = validation.setting
part = validation.part


@dataclasses.dataclass(frozen=True)
class Thresholds(validation.Checked):
  """Largest drift a drop may show against a reference.

  Calibrated with benchmarks/data_gate.py (docs/data_gate.md has the
  measured values and BENCHMARKS.md the result files).
  """
  max_label_linf: float = setting(
      0.1, 'largest L-infinity distance between the label distribution of a '
      'new drop and that of the data the served model was trained on',
      min=0, max=1, metavar='D')
  max_pixel_jsd: float = setting(
      0.01, 'largest Jensen-Shannon divergence between the pixel-value '
      'histograms of a new drop and of the data the served model was '
      'trained on', min=0, max=1, metavar='D')
  max_mean_image_linf: float = setting(
      0.3, 'largest difference, at any pixel position, between the mean '
      'image (0..1) of a new drop and that of the data the served model was '
      'trained on: catches data whose pixel histogram looks like MNIST but '
      'whose ink is elsewhere (rotated digits, another digit data set)',
      min=0, max=1, metavar='D')


@dataclasses.dataclass(frozen=True)
class SanityLimits(validation.Checked):
  """What every split of a drop must satisfy, whatever the references."""
  max_eval_in_train: float = setting(
      0.01, 'largest share of the eval images that may also occur, exactly, '
      "among the images trained on (MNIST's own: 0); above it the blessing "
      'would score the candidate on images it trained on', min=0, max=1,
      metavar='S')
  max_duplicate_share: float = setting(
      0.01, "largest share of a split's images that may repeat another of "
      "its images exactly (MNIST's own: 0)", min=0, max=1, metavar='S')
  # Fewer eval images make the blessing's comparison noise: the per-image
  # -ELBO of a trained model has a spread of about 40 nats.
  min_examples: int = setting(
      100, 'fewest examples a split may have (an empty or nearly empty split '
      'is a broken drop)', min=1, metavar='N', flag='min-split-examples')


@dataclasses.dataclass(frozen=True)
class GateConfig(validation.Checked):
  """Everything the data gate is configured with (components/data_gate)."""
  thresholds: Thresholds = part(Thresholds(), prefix='')
  anchor_thresholds: Thresholds = part(
      Thresholds(), prefix='anchor-', help_template=(
          'as --{flag}, against the drift anchor: the data of the first '
          'pushed version, or of the last pushed run that accepted drift '
          '(python -m pipeline.anchor shows and sets it); catches a creep in '
          'steps too small for the moving reference'))
  limits: SanityLimits = part(SanityLimits(), prefix='')
  accept_drift: bool = setting(
      False, 'let drift beyond the thresholds through, for an intended change '
      'of distribution (schema and split sanity findings still stop the '
      "run); once this run's model is pushed, its data is the new reference "
      'and the new anchor')


@dataclasses.dataclass(frozen=True)
class DataConfig(validation.Checked):
  """What ExampleGen reads (components/example_gen)."""
  train_spans: int = setting(
      1, 'train on the newest span-N/ folder of the data root and up to K-1 '
      'earlier spans the data gate passed when they arrived; only the newest '
      'is gated, and its eval split is what the blessing compares on',
      min=1, metavar='K')


@dataclasses.dataclass(frozen=True)
class TrainingConfig(validation.Checked):
  """The Trainer (components/vae_trainer, models/trainer.py)."""
  hyperparameters: vae.Hyperparameters = part(vae.Hyperparameters(),
                                              prefix='')
  warm_start: bool = setting(
      False, 'start training from the weights of the model currently served '
      'from {serving} (from scratch if none is), and stop early once the '
      'validation -ELBO stops improving (--patience, --min-improvement; at '
      'most --epochs)')

  def __post_init__(self):
    super().__post_init__()
    if self.warm_start and not self.hyperparameters.validation_fraction:
      raise ValueError('--warm-start stops early on the validation '
                       'carve-out: --validation-fraction must not be 0')


@dataclasses.dataclass(frozen=True)
class EvaluationConfig(validation.Checked):
  """The blessing (components/vae_evaluator)."""
  # A model that has learned digits is far below it; one that ignores its
  # latent code (the mean image under a Bernoulli model) is about 206.
  bless_threshold: float = setting(
      160.0, 'bless only a model whose held-out -ELBO is at most this (a '
      'model that ignores its latent code scores about 206; docs/model.md '
      'has what a default run reaches)', metavar='NATS')
  # 0: a worse model is never served; about 1 nat is the spread between
  # training seeds.
  bless_tolerance: float = setting(
      0.0, 'bless only a model at most this much worse (-ELBO) than the one '
      'served from {serving}, both measured on the same eval images (0: at '
      'least as good)', metavar='NATS')
  # Keeps the evaluator well under a minute for 10,000 images on 2 cores.
  iwae_samples: int = setting(
      8, 'importance samples per image for the IWAE bound', min=1,
      metavar='K')
  allow_signature_change: bool = setting(
      False, 'bless a model whose serving signature (input or output name, '
      'dtype or shape) differs from the one served from {serving}, e.g. after '
      'a change of --latent-dim; without it such a model is not pushed, so '
      'clients do not break silently')


@dataclasses.dataclass(frozen=True)
class ServingConfig(validation.Checked):
  """The push destination (components/atomic_pusher)."""
  # Enough to roll back a few retrainings.
  keep_versions: int = setting(
      5, 'versions kept in {serving} after a push; older ones are removed '
      '(never the newest or the one just pushed)', min=1, metavar='N')


@dataclasses.dataclass(frozen=True)
class PipelineConfig(validation.Checked):
  """Every part: what `create_pipeline` takes besides paths."""
  data: DataConfig = part(DataConfig(), prefix='',
                          group='data window (docs/operations.md)')
  gate: GateConfig = part(GateConfig(), prefix='',
                          group='data gate (docs/data_gate.md)')
  training: TrainingConfig = part(
      TrainingConfig(), prefix='',
      group='training (models/vae.py, Hyperparameters; docs/model.md)')
  evaluation: EvaluationConfig = part(
      EvaluationConfig(), prefix='', group='evaluation and blessing')
  serving: ServingConfig = part(ServingConfig(), prefix='', group='push')


@dataclasses.dataclass(frozen=True)
class KubeflowResources(validation.Checked):
  """CPU (cores) and memory (GB, 10^9 bytes: KFP's unit) each heavy Kubeflow
  task requests and is limited to.

  Measured on all 70,000 images with 2 Beam workers
  (benchmarks/kubeflow_tasks.py; BENCHMARKS.md has the peaks): the defaults
  leave about 2x of the peak memory.
  """
  trainer_cpu: float = setting(
      2.0, 'CPU cores the Trainer task requests and is limited to', above=0,
      metavar='CORES')
  trainer_memory_gb: float = setting(
      3.0, 'memory (GB) the Trainer task requests and is limited to',
      above=0, metavar='GB')
  data_cpu: float = setting(
      2.0, 'CPU cores each data task (ExampleGen, StatisticsGen, DataGate, '
      'VaeEvaluator) requests and is limited to; also its Beam workers',
      above=0, metavar='CORES')
  data_memory_gb: float = setting(
      6.0, 'memory (GB) each data task requests and is limited to', above=0,
      metavar='GB')


def to_json(config: Any) -> str:
  """The execution property a component receives its part as."""
  return json.dumps(dataclasses.asdict(config), sort_keys=True)


def from_dict(cls: Type[T], value: Mapping[str, Any]) -> T:
  """`cls` from `dataclasses.asdict`'s output; missing keys take their
  defaults.

  Raises:
    ValueError: an unknown key, or a value the part's checks reject.
  """
  value = dict(value)
  for field in dataclasses.fields(cls):
    if validation.is_part(field) and field.name in value:
      value[field.name] = from_dict(type(field.default), value[field.name])
  return validation.from_dict(cls, value, f'{cls.__name__} field')


def from_json(cls: Type[T], text: str) -> T:
  """What an executor parses its execution property back into."""
  return from_dict(cls, json.loads(text))
