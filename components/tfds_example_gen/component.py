"""TfdsExampleGen: a TFX ExampleGen that reads any TFDS dataset with an image and a segmentation mask.

    TfdsExampleGen(dataset='oxford_iiit_pet', splits={'train': 'train', 'eval': 'test'},
                   source_dir='/data/oxford-pets')   # images.tar.gz + annotations.tar.gz

Splits map TFX split names to TFDS split strings, slicing included (`'train[:90%]'`). Output:
one `Examples` artifact of gzipped tf.Example TFRecords with the image under `keys.IMAGE_KEY`, the
mask under `keys.MASK_KEY` and every other scalar/array feature of the dataset as it is.
"""

from typing import Mapping, Optional

from tfx import types
from tfx.dsl.components.base import base_beam_component, executor_spec
from tfx.proto import example_gen_pb2, range_config_pb2
from tfx.types import component_spec, standard_artifacts, standard_component_specs

from components.tfds_example_gen import driver, executor
from modules import keys

DEFAULT_SPLITS = {'train': 'train', 'eval': 'test'}


class TfdsExampleGenSpec(component_spec.ComponentSpec):
    """Parameters of TfdsExampleGen: the base ExampleGen's plus where the TFDS data lives."""

    PARAMETERS = {
        standard_component_specs.INPUT_CONFIG_KEY: component_spec.ExecutionParameter(type=example_gen_pb2.Input),
        standard_component_specs.OUTPUT_CONFIG_KEY: component_spec.ExecutionParameter(type=example_gen_pb2.Output),
        standard_component_specs.OUTPUT_DATA_FORMAT_KEY: component_spec.ExecutionParameter(type=int),
        standard_component_specs.OUTPUT_FILE_FORMAT_KEY: component_spec.ExecutionParameter(type=int),
        standard_component_specs.RANGE_CONFIG_KEY: component_spec.ExecutionParameter(
            type=range_config_pb2.RangeConfig, optional=True),
        executor.DATASET_KEY: component_spec.ExecutionParameter(type=str),
        executor.DATA_DIR_KEY: component_spec.ExecutionParameter(type=str, optional=True),
        executor.SOURCE_DIR_KEY: component_spec.ExecutionParameter(type=str, optional=True),
        executor.IMAGE_FEATURE_KEY: component_spec.ExecutionParameter(type=str),
        executor.MASK_FEATURE_KEY: component_spec.ExecutionParameter(type=str),
        executor.MAX_SKIPPED_FRACTION_KEY: component_spec.ExecutionParameter(type=float),
        executor.CLASSES_KEY: component_spec.ExecutionParameter(type=str, optional=True),
        executor.SOURCE_LAYOUT_KEY: component_spec.ExecutionParameter(type=str, optional=True),
        executor.EVAL_FRACTION_KEY: component_spec.ExecutionParameter(type=float, optional=True),
    }
    INPUTS = {}
    OUTPUTS = {standard_component_specs.EXAMPLES_KEY: component_spec.ChannelParameter(type=standard_artifacts.Examples)}


class TfdsExampleGen(base_beam_component.BaseBeamComponent):
    """Reads TFDS splits (prepared, from local Oxford-IIIT Pet files, or downloaded) into Examples."""

    SPEC_CLASS = TfdsExampleGenSpec
    EXECUTOR_SPEC = executor_spec.BeamExecutorSpec(executor.Executor)
    DRIVER_CLASS = driver.Driver

    def __init__(self,
                 dataset: str = 'oxford_iiit_pet',
                 *,
                 splits: Optional[Mapping[str, str]] = None,
                 data_dir: Optional[str] = None,
                 source_dir: Optional[str] = None,
                 image_feature: str = keys.IMAGE_KEY,
                 mask_feature: str = keys.MASK_KEY,
                 max_skipped_fraction: float = 0.05,
                 classes: Optional[str] = None,
                 source_layout: str = 'auto',
                 eval_fraction: float = 0.2):
        """Configures the component.

        Args:
          dataset: TFDS name with optional version spec, e.g. `oxford_iiit_pet:4.*.*`.
          splits: TFX split name -> TFDS split or slice; default train->train, eval->test.
          data_dir: TFDS data dir holding the prepared dataset (or to download into).
          source_dir: local data prepared offline: Oxford-IIIT Pet archives or folders, an images/ + masks/
            folder, or a Pascal VOC export (`sources.source_layout`).
          image_feature: the dataset's image feature name.
          mask_feature: the dataset's segmentation mask feature name.
          max_skipped_fraction: fail when more than this fraction of a split is unusable.
          classes: the dataset's class description as JSON (`modules.classes.ClassDescription.to_json`);
            None: Oxford-IIIT Pet's trimap classes.
          source_layout: how `source_dir` is laid out: 'oxford', 'folders', 'voc' or 'auto' (detected).
          eval_fraction: the share of a split-less `folders` source that becomes the eval split.
        """
        splits = dict(splits or DEFAULT_SPLITS)
        input_config = example_gen_pb2.Input(splits=[
            example_gen_pb2.Input.Split(name=name, pattern=pattern) for name, pattern in splits.items()])
        spec = TfdsExampleGenSpec(
            input_config=input_config,
            output_config=example_gen_pb2.Output(),
            output_data_format=example_gen_pb2.FORMAT_TF_EXAMPLE,
            output_file_format=example_gen_pb2.FORMAT_TFRECORDS_GZIP,
            dataset=dataset,
            data_dir=data_dir,
            source_dir=source_dir,
            image_feature=image_feature,
            mask_feature=mask_feature,
            max_skipped_fraction=max_skipped_fraction,
            classes=classes,
            source_layout=source_layout,
            eval_fraction=eval_fraction,
            examples=types.Channel(type=standard_artifacts.Examples),
        )
        super().__init__(spec=spec)
