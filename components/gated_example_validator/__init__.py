"""ExampleValidator whose anomalies can stop the pipeline before training."""
