"""Online features: the snapshot of dimensions and per-key aggregates that lets the
service take an ad server's raw impression, built by the pipeline with generate's code."""
