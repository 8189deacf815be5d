"""TFX's GenericExecutor, with the `epochs` parameter put into the run_fn's
hyperparameters (`custom_config['hyperparameters']['epochs']`)."""

import json
import logging
from typing import Any, Dict, List

from tfx import types
from tfx.components.trainer import executor as trainer_executor
from tfx.types import standard_component_specs

from models import trainer as trainer_lib

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
  config.setdefault(trainer_lib.HYPERPARAMETERS_KEY, {})['epochs'] = int(epochs)
  return json.dumps(config, sort_keys=True)


class Executor(trainer_executor.GenericExecutor):
  """Runs the run_fn for `epochs` epochs (when given), else as configured."""

  def Do(self, input_dict: Dict[str, List[types.Artifact]],
         output_dict: Dict[str, List[types.Artifact]],
         exec_properties: Dict[str, Any]) -> None:
    exec_properties = dict(exec_properties)
    epochs = exec_properties.pop(EPOCHS_KEY, None)
    if epochs is not None:
      key = standard_component_specs.CUSTOM_CONFIG_KEY
      exec_properties[key] = with_epochs(exec_properties.get(key), epochs)
      logger.info('Training for %d epochs', epochs)
    super().Do(input_dict, output_dict, exec_properties)
