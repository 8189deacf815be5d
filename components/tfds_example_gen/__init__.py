"""TFDS ExampleGen: prepared TensorFlow Datasets data sets as tf.Examples."""
