"""TFX's GenericExecutor, with the `epochs` parameter put into the run_fn's
hyperparameters (`custom_config['hyperparameters']['epochs']`), and the
training identity (layouts/lineage.py) on the Model it writes.

When the version served from `custom_config['serving_dir']` was trained on
exactly these examples with exactly this custom_config, there is nothing new
to learn: nothing is trained, and the Model (an empty directory) carries
`contracts.NOTHING_NEW_KEY`, which the evaluator and the Pusher pass on. This
is how a scheduled Kubeflow run, which has no cache, ends early; a local run
checks the same rule before it starts (pipeline/local_run.py).
"""

import json
import logging
from typing import Any, Dict, List, Optional

from tfx import types
from tfx.components.trainer import executor as trainer_executor
from tfx.types import standard_component_specs

from layouts import contracts
from layouts import lineage

logger = logging.getLogger(__name__)

EPOCHS_KEY = 'epochs'


def with_epochs(custom_config: str, epochs: int) -> str:
  """The Trainer's JSON custom_config with `epochs` in its hyperparameters.

  Raises:
    ValueError: `epochs` is not a positive integer.
  """
  if int(epochs) != epochs or epochs < 1:
    raise ValueError(f'epochs must be a positive integer, got {epochs}')
  config = json.loads(custom_config or '{}') or {}
  config.setdefault(contracts.TRAINER_HYPERPARAMETERS_KEY, {})['epochs'] = int(epochs)
  return json.dumps(config, sort_keys=True)


class Executor(trainer_executor.GenericExecutor):
  """Runs the run_fn for `epochs` epochs (when given), else as configured."""

  def Do(self, input_dict: Dict[str, List[types.Artifact]],
         output_dict: Dict[str, List[types.Artifact]],
         exec_properties: Dict[str, Any]) -> None:
    exec_properties = dict(exec_properties)
    epochs = exec_properties.pop(EPOCHS_KEY, None)
    key = standard_component_specs.CUSTOM_CONFIG_KEY
    if epochs is not None:
      exec_properties[key] = with_epochs(exec_properties.get(key), epochs)
      logger.info('Training for %d epochs', epochs)
    custom_config = json.loads(exec_properties.get(key) or '{}') or {}
    trained_on = training_identity(
        input_dict[standard_component_specs.EXAMPLES_KEY], custom_config)
    models = (output_dict[standard_component_specs.MODEL_KEY] +
              output_dict[standard_component_specs.MODEL_RUN_KEY])
    serving_dir = custom_config.get(contracts.TRAINER_SERVING_DIR_KEY)
    if trained_on is not None and serving_dir:
      reason = lineage.nothing_new(serving_dir, trained_on)
      if reason:
        logger.info('Nothing trained: %s', reason)
        for artifact in models:
          artifact.set_string_custom_property(contracts.NOTHING_NEW_KEY,
                                              reason)
        return
    super().Do(input_dict, output_dict, exec_properties)
    if trained_on is not None:
      for artifact in models:
        artifact.set_string_custom_property(contracts.TRAINED_ON_KEY,
                                            json.dumps(trained_on))


def training_identity(examples: List[types.Artifact],
                      custom_config: Dict[str, Any]
                      ) -> Optional[Dict[str, str]]:
  """The identity of training on `examples` with `custom_config`, or None
  where the examples carry no data digest (e.g. TFDS's)."""
  digests = [e.get_string_custom_property(contracts.DATA_DIGEST_KEY)
             for e in examples]
  if not digests or not all(digests):
    return None
  return lineage.training_identity(','.join(digests), custom_config)
