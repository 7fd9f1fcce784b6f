"""Turns a config into one whose data is on disk and whose classes are read: the runner's I/O before the pipeline.

The default preset trains on images the project generates itself (no network needed); `materialize_sample_data`
writes them once and points the config at them, so the pipeline factory stays free of I/O and the generated
folder is an ordinary `source_dir`. `resolve_classes` reads the class description the data brings (`--classes
FILE`, or `classes.json` in the source directory, or VOC's for a VOC export) into the config.
"""

import dataclasses
import json
import os

import tensorflow as tf

from components.tfds_example_gen import sample_data, sample_shapes, sources
from modules import classes
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
    kind = 'pets' if not sample.classes else f'shapes{sample.classes}_{sample.layout}'
    target = os.path.join(directory, f'{kind}_{sample.num_train}_{sample.num_test}_seed{sample.seed}')
    marker = os.path.join(target, _MARKER)
    if not os.path.exists(marker):
        if sample.classes:
            sample_shapes.write_shapes(target, sample.num_train, sample.num_test, sample.classes, sample.seed,
                                       sample.layout)
        else:
            sample_data.write_folders(target, sample.num_train, sample.num_test, sample.seed)
        with open(marker, 'w') as f:
            json.dump(dataclasses.asdict(sample), f)
    return dataclasses.replace(config, data=dataclasses.replace(data, source_dir=os.path.abspath(target)))


def resolve_classes(config: PipelineConfig) -> PipelineConfig:
    """The config with the classes of its data read: `data.classes` (a built-in name or a JSON file), else the
    source directory's `classes.json`, else VOC's for a VOC export, else Oxford-IIIT Pet's.

    Args:
      config: pipeline config, its data on disk (after `materialize_sample_data`).

    Returns:
      The config with `data.class_description` set, validated again (class weights against the classes).

    Raises:
      ValueError: the description file is missing or invalid (the message names it), the settings disagree, or
        a span source has no span.
    """
    data = config.data
    if data.class_description is not None:
        return config
    # The newest span, as ExampleGen will read it (not looked up where the classes are named).
    source_dir = sources.resolve_span(data.source_dir)[0] if data.classes is None else None
    if data.classes is not None:
        description = classes.load(data.classes)
    elif source_dir and tf.io.gfile.exists(os.path.join(source_dir, classes.FILE_NAME)):
        description = classes.load(os.path.join(source_dir, classes.FILE_NAME))
    elif source_dir and sources.detect_layout(source_dir, data.source_layout) == sources.VOC:
        description = classes.PASCAL_VOC
    else:
        description = classes.OXFORD_IIIT_PET
    return dataclasses.replace(config, data=dataclasses.replace(data, class_description=description)).validate()


def prepare_data(config: PipelineConfig, directory: str) -> PipelineConfig:
    """`materialize_sample_data`, then `resolve_classes`: what every runner does before `create_pipeline`."""
    return resolve_classes(materialize_sample_data(config, directory))
