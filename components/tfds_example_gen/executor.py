"""TfdsExampleGen's executor: reads TFDS splits through Beam and writes validated tf.Examples.

TFX's `BaseExampleGenExecutor` gives the component contract; the splits are written here as gzipped TFRecords
in TFDS's (shuffled) order, without TFX's reshuffle, so memory stays flat as the data grows. This module adds
what is TFDS-specific: preparing the source (`sources.prepare_builder`), reading a split or a
TFDS slice such as `train[:90%]` with `tfds.beam.ReadFromTFDS`, checking every image/mask pair,
renaming the dataset's image and mask features to the canonical keys, and recording on the output
artifact the dataset, its version, its classes (`modules.classes`) and the example counts. A corrupt pair, or a
mask with values the class description does not know, is logged by file name, counted and skipped (the
artifact records each by split, name and reason); too many of them fail the run with the counts.
"""

import io
import json
import logging
import os
import tempfile
from typing import Any, Dict, Iterator, List, Mapping, Optional, Tuple

import apache_beam as beam
import numpy as np
import tensorflow as tf
import tensorflow_datasets as tfds
from PIL import Image, UnidentifiedImageError
from tfx import types
from tfx.components.example_gen import base_example_gen_executor, utils, write_split
from tfx.components.util import examples_utils
from tfx.proto import example_gen_pb2
from tfx.types import artifact_utils, standard_component_specs
from tfx.utils import proto_utils

from components.tfds_example_gen import sources
from modules import classes, keys

DATASET_KEY = 'dataset'
DATA_DIR_KEY = 'data_dir'
SOURCE_DIR_KEY = 'source_dir'
IMAGE_FEATURE_KEY = 'image_feature'
MASK_FEATURE_KEY = 'mask_feature'
MAX_SKIPPED_FRACTION_KEY = 'max_skipped_fraction'
CLASSES_KEY = 'classes'
SOURCE_LAYOUT_KEY = 'source_layout'
EVAL_FRACTION_KEY = 'eval_fraction'

# The base executor hands `exec_properties` to the per-split PTransform; the prepared builder
# travels the same way (the base class passes `_beam_pipeline_args` like this too).
_METRICS_NAMESPACE = 'TfdsExampleGen'
_SKIPPED_NAME, _SEP = 'skipped_example:', '\x1f'
_IMAGE_FORMATS = ('JPEG', 'PNG', 'GIF', 'BMP')  # what tf.io.decode_image reads in preprocessing
_MASK_MODES = ('L', 'P', '1', 'I', 'I;16')


def inspect_image_and_mask(image: bytes, mask: bytes,
                           description: classes.ClassDescription = classes.OXFORD_IIIT_PET
                           ) -> Tuple[Optional[str], Dict[str, Any]]:
    """Says what is wrong with an encoded image/mask pair, and measures it when nothing is.

    Args:
      image: encoded image bytes.
      mask: encoded single-channel mask bytes.
      description: the dataset's classes: which mask values exist, which class every mask must show.

    Returns:
      (a short reason such as 'image is truncated', {}) or (None, the pair's numeric features: image
      height, width and channels, and the fraction of each class, `description.fraction_keys`).
    """
    decoded = {}
    for role, data in (('image', image), ('mask', mask)):
        if not data:
            return f'{role} is empty', {}
        try:
            with Image.open(io.BytesIO(data)) as picture:
                picture_format = picture.format
                picture.load()
                decoded[role] = (picture_format, picture.mode, picture.size, len(picture.getbands()),
                                 np.asarray(picture) if role == 'mask' else None)
        except UnidentifiedImageError:
            return f'{role} is not an image file', {}
        except Exception as e:  # PIL raises OSError, SyntaxError, ValueError... for damaged files.
            return (f'{role} is truncated' if 'truncated' in str(e) else f'{role} cannot be decoded ({e})'), {}
    if decoded['image'][0] not in _IMAGE_FORMATS:
        return f'image format {decoded["image"][0]} is not one of {", ".join(_IMAGE_FORMATS)}', {}
    if decoded['mask'][1] not in _MASK_MODES:
        return f'mask has mode {decoded["mask"][1]}, expected a single-channel image', {}
    if decoded['image'][2] != decoded['mask'][2]:
        return f'mask size {decoded["mask"][2]} differs from image size {decoded["image"][2]}', {}
    width, height = decoded['image'][2]
    values = decoded['mask'][4]
    present = np.unique(values)
    unknown = sorted(set(present.tolist()) - description.known_values())
    if unknown:
        return (f'mask values {unknown[:10]} are not in the class description (known: '
                f'{sorted(description.known_values())[:20]})'), {}
    class_ids = description.lookup_table()[values]
    features = {keys.IMAGE_HEIGHT_KEY: height, keys.IMAGE_WIDTH_KEY: width, keys.IMAGE_CHANNELS_KEY: decoded['image'][3]}
    for class_id, key in enumerate(description.fraction_keys):
        features[key] = float(np.mean(class_ids == class_id))
    if description.required is not None:
        required = description.names.index(description.required)
        if features[description.fraction_keys[required]] == 0.0:
            # Every Oxford-IIIT Pet image shows a pet; a trimap without one (the archive's Abyssinian_34) is a
            # broken annotation that would teach the model to call a whole cat background.
            return f'mask marks no {description.required} pixel (a broken annotation)', {}
    if not np.any(class_ids != classes.IGNORE_LABEL):
        return 'mask marks every pixel ignored', {}
    return None, features


def check_image_and_mask(image: bytes, mask: bytes,
                         description: classes.ClassDescription = classes.OXFORD_IIIT_PET) -> Optional[str]:
    """Says what is wrong with an encoded image/mask pair, or None when it can be trained on."""
    return inspect_image_and_mask(image, mask, description)[0]


def _to_feature(value: Any) -> Optional[tf.train.Feature]:
    array = np.asarray(value)
    if array.dtype.kind in 'SUO':
        values = [v if isinstance(v, bytes) else str(v).encode() for v in array.ravel()]
        return tf.train.Feature(bytes_list=tf.train.BytesList(value=values))
    if array.dtype.kind in 'iub':
        return tf.train.Feature(int64_list=tf.train.Int64List(value=array.ravel().astype(np.int64)))
    if array.dtype.kind == 'f':
        return tf.train.Feature(float_list=tf.train.FloatList(value=array.ravel()))
    return None


def _flatten(record: Mapping[str, Any], prefix: str = '') -> Iterator[tuple]:
    for key, value in record.items():
        if isinstance(value, Mapping):
            yield from _flatten(value, f'{prefix}{key}/')
        else:
            yield f'{prefix}{key}', value


def to_example(record: Mapping[str, Any], image_feature: str, mask_feature: str) -> tf.train.Example:
    """Converts one TFDS record (images still encoded) to a tf.Example with the canonical keys.

    Args:
      record: TFDS example as numpy values; nested feature dicts become `parent/child` keys.
      image_feature: the dataset's image feature, written as `keys.IMAGE_KEY`.
      mask_feature: the dataset's mask feature, written as `keys.MASK_KEY`.

    Returns:
      The tf.Example.
    """
    renames = {image_feature: keys.IMAGE_KEY, mask_feature: keys.MASK_KEY}
    example = tf.train.Example()
    for key, value in _flatten(record):
        feature = _to_feature(value)
        if feature is not None:
            example.features.feature[renames.get(key, key)].CopyFrom(feature)
    return example


class _CheckAndConvert(beam.DoFn):
    """Skips (and counts) unusable image/mask pairs and converts the rest to tf.Examples."""

    def __init__(self, image_feature: str, mask_feature: str, split_pattern: str,
                 description: classes.ClassDescription):
        self._description = description
        self._image_feature = image_feature
        self._mask_feature = mask_feature
        self._split_pattern = split_pattern
        self._written = beam.metrics.Metrics.counter(_METRICS_NAMESPACE, f'written:{split_pattern}')
        self._skipped = beam.metrics.Metrics.counter(_METRICS_NAMESPACE, f'skipped:{split_pattern}')

    def _name_skip(self, name: str, problem: str) -> None:
        # One counter per skipped pair: Beam brings its name back to the executor, which records it.
        beam.metrics.Metrics.counter(_METRICS_NAMESPACE, f'{_SKIPPED_NAME}{self._split_pattern}{_SEP}{name}: {problem}').inc()

    def process(self, record: Dict[str, Any]) -> Iterator[tf.train.Example]:
        record = tf.nest.map_structure(lambda value: value.numpy(), record)  # ReadFromTFDS yields eager tensors
        problem, measured = inspect_image_and_mask(record[self._image_feature], record[self._mask_feature],
                                                   self._description)
        if problem:
            name = record.get(keys.FILE_NAME_KEY, b'<unnamed>')
            name = name.decode() if isinstance(name, bytes) else str(name)
            logging.warning('TfdsExampleGen skips %s in split %s: %s.', name, self._split_pattern, problem)
            self._skipped.inc()
            self._name_skip(name, problem)
            return
        self._written.inc()
        yield to_example({**record, **measured}, self._image_feature, self._mask_feature)


@beam.ptransform_fn
@beam.typehints.with_input_types(beam.Pipeline)
@beam.typehints.with_output_types(tf.train.Example)
def ReadTfdsExamples(pipeline: beam.Pipeline, builder: tfds.core.DatasetBuilder, split: str,  # pylint: disable=invalid-name
                     image_feature: str, mask_feature: str,
                     description: classes.ClassDescription = classes.OXFORD_IIIT_PET) -> beam.pvalue.PCollection:
    """Reads a TFDS split or slice as tf.Examples, skipping unusable image/mask pairs.

    Args:
      pipeline: the Beam pipeline.
      builder: a prepared TFDS builder.
      split: TFDS split or slice, e.g. `train[:90%]`.
      image_feature: the dataset's image feature, written as `keys.IMAGE_KEY`.
      mask_feature: the dataset's mask feature, written as `keys.MASK_KEY`.
      description: the dataset's classes.

    Returns:
      PCollection of tf.train.Example.
    """
    keep_encoded = {name: tfds.decode.SkipDecoding() for name, feature in builder.info.features.items()
                    if isinstance(feature, tfds.features.Image)}
    return (pipeline
            | 'ReadFromTFDS' >> tfds.beam.ReadFromTFDS(builder, split, decoders=keep_encoded)
            | 'CheckAndConvert' >> beam.ParDo(_CheckAndConvert(image_feature, mask_feature, split, description)))


def _description(exec_properties: Dict[str, Any]) -> classes.ClassDescription:
    text = exec_properties.get(CLASSES_KEY)
    return classes.ClassDescription.from_json(text) if text else classes.OXFORD_IIIT_PET


class Executor(base_example_gen_executor.BaseExampleGenExecutor):
    """Writes the configured TFDS splits as gzipped tf.Example TFRecords."""

    def GetInputSourceToExamplePTransform(self) -> beam.PTransform:
        # The base class's Do, which would call this, is not used: `_write_splits` reads and writes each split.
        raise NotImplementedError('TfdsExampleGen reads its splits in Executor._write_splits')

    def _make_beam_pipeline(self) -> beam.Pipeline:
        # Kept so that Do can read the counters once the pipeline has run.
        self._last_pipeline = super()._make_beam_pipeline()
        return self._last_pipeline

    def Do(self, input_dict: Dict[str, List[types.Artifact]],
           output_dict: Dict[str, List[types.Artifact]], exec_properties: Dict[str, Any]) -> None:
        input_config = example_gen_pb2.Input()
        proto_utils.json_to_proto(exec_properties[standard_component_specs.INPUT_CONFIG_KEY], input_config)
        tfds.display_progress_bar(False)
        source_dir, span = sources.resolve_span(exec_properties.get(SOURCE_DIR_KEY) or None)
        exec_properties = {**exec_properties, SOURCE_DIR_KEY: source_dir}
        span = span if span is not None else exec_properties.get(utils.SPAN_PROPERTY_NAME)
        with tempfile.TemporaryDirectory(prefix='tfds_example_gen_') as work_dir:
            prepared = sources.prepare_builder(
                exec_properties[DATASET_KEY], exec_properties.get(DATA_DIR_KEY) or None,
                exec_properties.get(SOURCE_DIR_KEY) or None, work_dir,
                layout=exec_properties.get(SOURCE_LAYOUT_KEY) or sources.AUTO,
                eval_fraction=float(exec_properties.get(EVAL_FRACTION_KEY) or sources.DEFAULT_EVAL_FRACTION))
            builder = prepared.builder
            sources.check_features(builder, exec_properties[IMAGE_FEATURE_KEY], exec_properties[MASK_FEATURE_KEY])
            _check_splits(builder, [split.pattern for split in input_config.splits])
            self._write_splits(output_dict, exec_properties, input_config, builder)
        written, skipped, skipped_examples = self._split_counts(input_config)
        examples = artifact_utils.get_single_instance(output_dict[standard_component_specs.EXAMPLES_KEY])
        if span is not None:
            examples.span = int(span)
        _record_on_artifact(examples, builder, written, skipped, prepared, skipped_examples)
        examples.set_string_custom_property(CLASSES_KEY, _description(exec_properties).to_json())
        _check_skipped_fraction(written, skipped, float(exec_properties[MAX_SKIPPED_FRACTION_KEY]))

    def _write_splits(self, output_dict: Dict[str, List[types.Artifact]], exec_properties: Dict[str, Any],
                      input_config: example_gen_pb2.Input, builder: tfds.core.DatasetBuilder) -> None:
        """Writes each split in the order TFDS yields it, which is shuffled already (TFDS shuffles when it
        prepares a dataset): TFX's own writer reshuffles, and Beam's in-process runner held that shuffle whole in
        memory (4.5 GB at 15,000 pairs, growing with the data); written in order, ExampleGen's memory is flat."""
        examples = artifact_utils.get_single_instance(output_dict[standard_component_specs.EXAMPLES_KEY])
        output_config = example_gen_pb2.Output()
        proto_utils.json_to_proto(exec_properties[standard_component_specs.OUTPUT_CONFIG_KEY], output_config)
        examples.split_names = artifact_utils.encode_split_names(
            utils.generate_output_split_names(input_config, output_config))
        with self._make_beam_pipeline() as pipeline:
            for split in input_config.splits:
                _ = (pipeline
                     | f'Read[{split.name}]' >> ReadTfdsExamples(builder, split.pattern, exec_properties[IMAGE_FEATURE_KEY],
                                                                 exec_properties[MASK_FEATURE_KEY],
                                                                 _description(exec_properties))
                     | f'Serialize[{split.name}]' >> beam.Map(lambda example: example.SerializeToString())
                     | f'Write[{split.name}]' >> beam.io.WriteToTFRecord(
                         os.path.join(artifact_utils.get_split_uri([examples], split.name),
                                      write_split.DEFAULT_FILE_NAME), file_name_suffix='.gz'))
        examples_utils.set_payload_format(examples, example_gen_pb2.FORMAT_TF_EXAMPLE)
        examples_utils.set_file_format(examples, write_split.to_file_format_str(example_gen_pb2.FORMAT_TFRECORDS_GZIP))

    def _split_counts(self, input_config: example_gen_pb2.Input):
        counters = self._last_pipeline.result.metrics().query(
            beam.metrics.MetricsFilter().with_namespace(_METRICS_NAMESPACE))['counters']
        totals = {}
        for counter in counters:
            value = counter.committed if counter.committed is not None else counter.attempted
            totals[counter.key.metric.name] = totals.get(counter.key.metric.name, 0) + value
        written = {s.name: totals.get(f'written:{s.pattern}', 0) for s in input_config.splits}
        skipped = {s.name: totals.get(f'skipped:{s.pattern}', 0) for s in input_config.splits}
        split_names = {s.pattern: s.name for s in input_config.splits}
        named = sorted(f'{split_names.get(pattern, pattern)}: {what}' for pattern, what in (
            name[len(_SKIPPED_NAME):].split(_SEP, 1) for name in totals if name.startswith(_SKIPPED_NAME)))
        return written, skipped, named


def _check_splits(builder: tfds.core.DatasetBuilder, patterns: List[str]) -> None:
    for pattern in patterns:
        try:
            count = builder.info.splits[pattern].num_examples
        except (KeyError, ValueError, AssertionError) as e:
            raise sources.DataSourceError(
                f'TFDS dataset {builder.name!r} has no split {pattern!r} ({e}); its splits are '
                f'{sorted(builder.info.splits.keys())}. TFDS slices such as "train[:90%]" work too.') from e
        if count == 0:
            raise sources.DataSourceError(f'Split {pattern!r} of TFDS dataset {builder.name!r} is empty.')


def _record_on_artifact(examples: types.Artifact, builder: tfds.core.DatasetBuilder,
                        written: Dict[str, int], skipped: Dict[str, int], prepared: sources.PreparedSource,
                        skipped_examples: List[str] = ()) -> None:
    examples.set_string_custom_property('tfds_dataset', builder.name)
    examples.set_string_custom_property('tfds_version', str(builder.version))
    examples.set_string_custom_property('num_examples', json.dumps(written, sort_keys=True))
    examples.set_string_custom_property('num_skipped', json.dumps(skipped, sort_keys=True))
    examples.set_string_custom_property('missing_files', json.dumps(list(prepared.missing_files)))
    examples.set_string_custom_property('skipped_files', json.dumps(list(prepared.skipped_files)))
    # 'split: file name: reason' of each pair ExampleGen's check skipped (counted in num_skipped).
    examples.set_string_custom_property('skipped_examples', json.dumps(list(skipped_examples)))
    examples.set_string_custom_property('normalized_files', json.dumps(list(prepared.normalized_files)))
    for split, count in written.items():
        examples.set_int_custom_property(f'num_examples_{split}', count)
    logging.info('TfdsExampleGen wrote %s examples of %s %s (skipped %s, missing files %d, unusable files %d, '
                 'converted files %d).', written, builder.name, builder.version, skipped, len(prepared.missing_files),
                 len(prepared.skipped_files), len(prepared.normalized_files))


def _check_skipped_fraction(written: Dict[str, int], skipped: Dict[str, int], max_fraction: float) -> None:
    for split, bad in skipped.items():
        total = bad + written[split]
        if total and (bad / total > max_fraction or written[split] == 0):
            raise sources.DataSourceError(
                f'Split {split!r}: {bad} of {total} image/mask pairs were unusable (more than '
                f'max_skipped_fraction={max_fraction}). The log names each file and why; fix or '
                f'remove them, or raise max_skipped_fraction.')
