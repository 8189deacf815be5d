# The image every task of the Kubeflow / Vertex AI pipeline runs in (see
# docs/kubeflow.md, "Build and push the image"): a plain Python 3.10 on Debian
# bookworm, this project's exact dependency versions (requirements.lock, the
# whole closure, TFX included) and the project installed as packages, so the
# compiled pipeline's executor class paths (components.*.executor.Executor,
# TFX's own) and the Trainer's run_fn (models.trainer.run_fn) import by
# module path from any working directory, with no source tree.
#
#   docker build -t REGISTRY/mnist-vae-tfx:TAG .
#   docker push REGISTRY/mnist-vae-tfx:TAG
#
# Build arguments:
#   BASE_IMAGE      a Python 3.10 image on Debian bookworm (default: the
#                   official python:3.10-slim-bookworm). The lock's wheels
#                   need glibc 2.36, the interpreter must be 3.10.
#   PIP_INDEX_URL, PIP_EXTRA_INDEX_URL, PIP_TRUSTED_HOST, PIP_CERT,
#   PIP_DEFAULT_TIMEOUT
#                   pip's own settings, for a build behind a private index
#                   or proxy; unset, pip uses PyPI. (PIP_CERT names a file
#                   the build can read, e.g. mounted with --volume.)
#   BEAM_SDK_IMAGE  the Beam SDK image whose worker boot the optional
#                   `beam-worker` target copies (see below).
#
# Tasks start with the command kubeflow_runner.py compiles into the pipeline,
#   python -m pipeline.kfp_entrypoint
# (it repairs the executor input open-source KFP passes, then runs TFX's
# tfx.orchestration.kubeflow.v2.container.kubeflow_v2_run_executor), which
# overrides the image's ENTRYPOINT and CMD.
#
# Dataflow and Flink workers run the SDK harness boot, /opt/apache/beam/boot,
# as their entrypoint. Build the `beam-worker` target for them, which adds
# it the way Beam documents for custom containers (a COPY --from of the
# apache/beam_python3.10_sdk image of the locked Beam version):
#   docker build --target beam-worker -t REGISTRY/mnist-vae-tfx:TAG-beam .
# and pass that tag as --sdk_container_image (docs/kubeflow.md, "Beam"). The
# default build skips that stage and never pulls the Beam image (BuildKit and
# podman skip the stages the target does not need).
ARG BASE_IMAGE=python:3.10-slim-bookworm
ARG BEAM_SDK_IMAGE=apache/beam_python3.10_sdk:2.59.0

FROM ${BEAM_SDK_IMAGE} AS beam-sdk

# The build stage: the lock and the project in a virtual environment, built
# with a C/C++ compiler, because PyPI has no wheel of some locked packages
# (pyfarmhash, which tfx-bsl needs; crcmod's extension). Only the virtual
# environment leaves this stage; the compiler does not.
FROM ${BASE_IMAGE} AS build
ARG PIP_INDEX_URL
ARG PIP_EXTRA_INDEX_URL
ARG PIP_TRUSTED_HOST
ARG PIP_CERT
ARG PIP_DEFAULT_TIMEOUT

# requirements.lock was frozen from Python 3.10 (.python-version); fail early
# if the base image brings another Python.
RUN python -c "import sys; assert sys.version_info[:2] == (3, 10), sys.version"
RUN apt-get update \
 && apt-get install -y --no-install-recommends g++ \
 && rm -rf /var/lib/apt/lists/*
RUN python -m venv /opt/mnist-vae-tfx
ENV PATH=/opt/mnist-vae-tfx/bin:$PATH

# Dependencies first, so this layer is rebuilt only when the lock changes.
# --no-deps installs exactly the locked versions, as ./bootstrap.sh does; the
# virtual environment holds nothing else (its pip and setuptools are
# replaced by the locked ones), so `pip check` checks the whole set.
COPY requirements.lock /tmp/mnist-vae-tfx/requirements.lock
RUN python -m pip install --no-cache-dir --no-deps --disable-pip-version-check \
      -r /tmp/mnist-vae-tfx/requirements.lock \
 && python -m pip check

# The project itself, as installed packages (components, pipeline, models,
# layouts), built with the locked setuptools; the sources do not stay.
COPY pyproject.toml README.md /tmp/mnist-vae-tfx/
COPY components /tmp/mnist-vae-tfx/components
COPY models /tmp/mnist-vae-tfx/models
COPY layouts /tmp/mnist-vae-tfx/layouts
COPY pipeline /tmp/mnist-vae-tfx/pipeline
RUN python -m pip install --no-cache-dir --no-deps --no-build-isolation \
      --disable-pip-version-check /tmp/mnist-vae-tfx \
 && rm -rf /tmp/mnist-vae-tfx \
 && python -m pip check

# The task image: the base and the virtual environment, first on the PATH,
# so the compiled command's `python` is its interpreter.
FROM ${BASE_IMAGE} AS image
COPY --from=build /opt/mnist-vae-tfx /opt/mnist-vae-tfx
ENV PATH=/opt/mnist-vae-tfx/bin:$PATH

# Tasks run here, away from any source tree: everything below imports from
# site-packages. The curated schema is the one file read by path
# (kubeflow_package.IMAGE_SCHEMA_FILE). The check fails the build if an
# executor or the run_fn does not import, the schema does not parse, or TFX
# is not the version the pipeline was compiled with.
WORKDIR /pipeline
COPY schema/schema.pbtxt /pipeline/schema/schema.pbtxt
RUN python -c "\
import tfx.version; assert tfx.version.__version__ == '1.16.0', tfx.version.__version__; \
import tfx.orchestration.kubeflow.v2.container.kubeflow_v2_run_executor; \
import pipeline.kfp_entrypoint; \
import tfx.orchestration.kubeflow.v2.file_based_example_gen.driver; \
from components.example_gen.idx_executor import Executor; \
from components.example_gen.tfds_executor import Executor; \
from components.data_gate.executor import Executor; \
from tfx.utils import io_utils; io_utils.SchemaReader().read('/pipeline/schema/schema.pbtxt'); \
from components.vae_evaluator.executor import Executor; \
from components.atomic_pusher.executor import Executor; \
from components.vae_trainer.executor import Executor; \
from models.trainer import run_fn"

# Optional (--target beam-worker): the same image with Beam's SDK harness
# boot as its entrypoint, for Dataflow's and Flink's workers. Not built by
# default.
FROM image AS beam-worker
COPY --from=beam-sdk /opt/apache/beam /opt/apache/beam
ENTRYPOINT ["/opt/apache/beam/boot"]

# The default target: the task image.
FROM image
