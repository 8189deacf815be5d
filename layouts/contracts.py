"""What crosses component boundaries, defined once: every producer and
consumer imports it from here. Plain values, no TensorFlow, so that a
runner may import it before it configures logging.

* The example format: what both ExampleGens write (one writer,
  `writer.iter_examples`), what the schema describes, what the data gate, the
  Trainer and the evaluator parse (`models.data`).
* Artifact files: what one component writes into its output artifact and
  another component, or the run summary, reads.
* Execution and custom properties several components or the run summary
  share, the pipeline's component ids, and the metrics the blessing checks.

The serving root's layout (versions, records, the anchor, the journals) is
in `layouts.serving`, `layouts.anchor` and `layouts.spans`.
"""

from typing import Dict, Tuple

# --- The example format: one tf.train.Example per image, GZIP TFRecords.
IMAGE_KEY = 'image'  # int64 x 784: the pixels 0..255, row-major 28 x 28.
LABEL_KEY = 'label'  # int64 x 1: the digit 0..9 (categorical).
IMAGE_ROWS = 28
IMAGE_COLS = 28
IMAGE_PIXELS = IMAGE_ROWS * IMAGE_COLS
# What the model sees: one channel, float32 in [0, 1].
IMAGE_SHAPE = (IMAGE_ROWS, IMAGE_COLS, 1)
MAX_PIXEL = 255
NUM_CLASSES = 10
# The splits ExampleGen writes: the newest span's train and eval, and (with
# a window of spans) the earlier spans' images in `history`.
TRAIN_SPLIT = 'train'
EVAL_SPLIT = 'eval'
HISTORY_SPLIT = 'history'
# The parse spec: key -> (shape, dtype) of a fixed-length feature, which
# models.data turns into tf.io.FixedLenFeature.
FEATURES: Dict[str, Tuple[Tuple[int, ...], str]] = {
    IMAGE_KEY: ((IMAGE_PIXELS,), 'int64'),
    LABEL_KEY: ((), 'int64'),
}


# --- Artifact files.
# DataGate's ExampleAnomalies: its verdict, findings and drift per reference.
GATE_REPORT_FILE = 'gate.json'
# VaeEvaluator's ModelEvaluation.
METRICS_FILE = 'metrics.json'
REPORT_FILE = 'report.html'
MANIFOLD_FILE = 'manifold.png'
CLUSTERS_FILE = 'clusters.png'
# What the run summary links to, by name: the evaluation's files above.
PLOT_FILES: Dict[str, str] = {'manifold': MANIFOLD_FILE,
                              'clusters': CLUSTERS_FILE,
                              'report': REPORT_FILE}

# --- Properties.
# Every project component's execution property with the fingerprint of the
# code it runs (pipeline/code_fingerprint.py), for the cache key only.
CODE_FINGERPRINT_KEY = 'code_fingerprint'
# The served version when the pipeline was built (local runs), for the gate's
# and the evaluator's cache keys only.
SERVED_VERSION_KEY = 'served_version'
# PushedModel custom property: why a blessed model was not pushed.
NOT_PUSHED_REASON_KEY = 'not_pushed_reason'
# The Trainer's custom_config (pipeline/trainer_config.py): the
# hyperparameters (models.vae.Hyperparameters.to_dict()); the push
# destination, for the training identity (read by the Trainer's executor;
# the run_fn ignores it); a push destination whose served model to
# warm-start from.
TRAINER_HYPERPARAMETERS_KEY = 'hyperparameters'
TRAINER_SERVING_DIR_KEY = 'serving_dir'
WARM_START_SERVING_DIR_KEY = 'warm_start_serving_dir'
# Examples custom property (IdxExampleGen): the digest of exactly what was
# read, every span of the window and --max-examples (layouts/lineage.py).
DATA_DIGEST_KEY = 'data_digest'
# Model custom property (Trainer), and the version record's key (Pusher):
# what a model was trained on, its data digest and its training's
# fingerprint (layouts/lineage.py), as JSON.
TRAINED_ON_KEY = 'trained_on'
# Custom property of the Trainer's, the evaluator's and the Pusher's outputs
# when the served model was trained on exactly this run's data and
# configuration: why nothing was trained, measured or pushed.
NOTHING_NEW_KEY = 'nothing_new'
# Examples custom property: the newest span read (TFX's own `span`, as TFX
# 1.16's ExampleGen driver writes it, example_gen/driver.py
# `update_output_artifact`).
SPAN_PROPERTY = 'span'

# --- Component ids, as ML Metadata and the run summary name them.
IDX_EXAMPLE_GEN = 'IdxExampleGen'
TFDS_EXAMPLE_GEN = 'TfdsExampleGen'
DATA_GATE = 'DataGate'
TRAINER = 'Trainer'
EVALUATOR = 'VaeEvaluator'
PUSHER = 'Pusher'

# --- Metrics, in nats per image, that the evaluator writes and the blessing
# and the run summary read.
METRIC_KEYS = ('neg_elbo', 'reconstruction', 'kl', 'iwae_bound')
