"""Turns a config that asks for generated sample data into one that points at it.

The default preset trains on images the project generates itself (no network needed). The
runner calls `materialize_sample_data` once, before building the pipeline, so the pipeline
factory stays free of I/O and the generated folder is an ordinary `source_dir`.
"""

import dataclasses
import json
import os

from components.tfds_example_gen import sample_data
from pipeline.config import PipelineConfig

_MARKER = 'sample_data.json'


def materialize_sample_data(config: PipelineConfig, directory: str) -> PipelineConfig:
    """Generates the config's sample dataset under `directory` (once) and points the config at it.

    Args:
      config: pipeline config; unchanged unless `data.sample` is set and no other source is.
      directory: parent directory for generated datasets, e.g. `outputs/sample_data`.

    Returns:
      The config with `data.source_dir` set to the generated dataset.
    """
    data = config.data
    if data.sample is None or data.source_dir or data.data_dir:
        return config
    sample = data.sample
    target = os.path.join(directory, f'pets_{sample.num_train}_{sample.num_test}_seed{sample.seed}')
    marker = os.path.join(target, _MARKER)
    if not os.path.exists(marker):
        sample_data.write_folders(target, sample.num_train, sample.num_test, sample.seed)
        with open(marker, 'w') as f:
            json.dump(dataclasses.asdict(sample), f)
    return dataclasses.replace(config, data=dataclasses.replace(data, source_dir=os.path.abspath(target)))
