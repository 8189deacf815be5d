# The image every task of the Kubeflow / Vertex AI pipeline runs in (see
# docs/kubeflow.md): TFX 1.16.0 with this project's exact dependency versions
# (requirements.lock) and the project installed as packages, so the compiled
# pipeline's executor class paths (components.*.executor.Executor, TFX's own)
# and the Trainer's run_fn (models.trainer.run_fn) import by module path from
# any working directory.
#
#   docker build -t REGISTRY/mnist-vae-tfx:TAG .
#   docker push REGISTRY/mnist-vae-tfx:TAG
#
# Tasks start with the command kubeflow_runner.py compiles into the pipeline,
#   python -m pipeline.kfp_entrypoint
# (it repairs the executor input open-source KFP passes, then runs TFX's
# tfx.orchestration.kubeflow.v2.container.kubeflow_v2_run_executor), which
# overrides the ENTRYPOINT. The ENTRYPOINT stays the base image's Beam
# SDK harness boot, so the same image can serve as Dataflow's or Flink's
# worker image (--beam-arg=--sdk_container_image=REGISTRY/mnist-vae-tfx:TAG).
FROM tensorflow/tfx:1.16.0

# requirements.lock was frozen from Python 3.10 (.python-version); fail early
# if the base image ever brings another Python.
RUN python -c "import sys; assert sys.version_info[:2] == (3, 10), sys.version"

# Dependencies first, so this layer is rebuilt only when the lock changes.
# --no-deps installs exactly the locked versions, as ./bootstrap.sh does, over
# whatever versions the base image has. (No `pip check`: the base image ships
# extra packages outside the lock whose requirements are not ours to satisfy.)
COPY requirements.lock /tmp/mnist-vae-tfx/requirements.lock
RUN python -m pip install --no-cache-dir --no-deps \
      -r /tmp/mnist-vae-tfx/requirements.lock

# The project itself, as installed packages (components, pipeline, models,
# layouts), built with the locked setuptools; the sources do not stay in the
# image.
COPY pyproject.toml README.md /tmp/mnist-vae-tfx/
COPY components /tmp/mnist-vae-tfx/components
COPY models /tmp/mnist-vae-tfx/models
COPY layouts /tmp/mnist-vae-tfx/layouts
COPY pipeline /tmp/mnist-vae-tfx/pipeline
RUN python -m pip install --no-cache-dir --no-deps --no-build-isolation \
      /tmp/mnist-vae-tfx \
 && rm -rf /tmp/mnist-vae-tfx

# Tasks run here, away from any source tree: everything below imports from
# site-packages. The curated schema is the one file read by path
# (kubeflow_runner.IMAGE_SCHEMA_FILE). The check fails the build if an
# executor or the run_fn does not import, the schema does not parse, or TFX
# is not the version the pipeline was compiled with.
WORKDIR /pipeline
COPY schema/schema.pbtxt /pipeline/schema/schema.pbtxt
RUN python -c "\
import tfx.version; assert tfx.version.__version__ == '1.16.0', tfx.version.__version__; \
import tfx.orchestration.kubeflow.v2.container.kubeflow_v2_run_executor; \
import pipeline.kfp_entrypoint; \
import tfx.orchestration.kubeflow.v2.file_based_example_gen.driver; \
from components.idx_example_gen.executor import Executor; \
from components.tfds_example_gen.executor import Executor; \
from components.data_gate.executor import Executor; \
from tfx.utils import io_utils; io_utils.SchemaReader().read('/pipeline/schema/schema.pbtxt'); \
from components.vae_evaluator.executor import Executor; \
from components.atomic_pusher.executor import Executor; \
from components.vae_trainer.executor import Executor; \
from models.trainer import run_fn"
