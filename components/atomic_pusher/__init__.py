"""AtomicPusher: versioned, all-or-nothing filesystem push of the decoder."""
