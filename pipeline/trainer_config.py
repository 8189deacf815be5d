"""What the Trainer is given, without TFX: its `run_fn` and its custom_config.

The custom_config is also half of a model's training identity
(layouts/lineage.py), which the local runner checks before it imports TFX,
TFDV or the components (pipeline/local_run.py): a night with nothing new
then costs little more than importing TensorFlow.
"""

from typing import Any, Dict

from components import config as config_lib
from layouts import contracts
from pipeline import code_fingerprint

# The Trainer imports its run_fn by module path, so the same code runs in a
# local process and in a Kubeflow container with the project installed.
TRAINER_RUN_FN = 'models.trainer.run_fn'
# The module of the Trainer's executor class (VaeTrainer's EXECUTOR_SPEC),
# named here so that its fingerprint needs no TFX import.
TRAINER_EXECUTOR_MODULE = 'components.vae_trainer.executor'


def trainer_custom_config(training: config_lib.TrainingConfig,
                          serving_dir: str) -> Dict[str, Any]:
  """The Trainer's custom_config: what its run_fn trains with, the push
  destination (whose served version's training identity tells whether there
  is anything new, layouts/lineage.py), and the fingerprint of the code it
  runs (its executor's module and the run_fn's, with all they import), for
  the cache key."""
  custom_config = {
      contracts.TRAINER_HYPERPARAMETERS_KEY:
          training.hyperparameters.to_dict(),
      contracts.TRAINER_SERVING_DIR_KEY: serving_dir,
      contracts.CODE_FINGERPRINT_KEY: code_fingerprint.fingerprint(
          (TRAINER_EXECUTOR_MODULE, TRAINER_RUN_FN.rpartition('.')[0])),
  }
  if training.warm_start:
    custom_config[contracts.WARM_START_SERVING_DIR_KEY] = serving_dir
  return custom_config
