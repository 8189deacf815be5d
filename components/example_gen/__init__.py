"""IdxExampleGen: MNIST-style IDX files -> tf.Example TFRecords."""
