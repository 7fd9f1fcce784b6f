"""TFDS-backed ExampleGen for image segmentation datasets (component, executor, driver, sources)."""
