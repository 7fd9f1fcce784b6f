"""TfdsExampleGen's PTransform and executor on generated data, including corrupt files."""

import io
import json
import os
import shutil

import apache_beam as beam
import numpy as np
import pytest
import tensorflow as tf
from apache_beam.testing import util as beam_testing
from PIL import Image
from tfx.proto import example_gen_pb2
from tfx.types import standard_artifacts
from tfx.utils import proto_utils

from components.tfds_example_gen import executor, sources
from modules import keys, paths
from tests.conftest import NUM_TEST, NUM_TRAIN


def _feature_keys_and_mask_match(examples):
    for example in examples:
        features = example.features.feature
        assert {keys.IMAGE_KEY, keys.MASK_KEY, keys.FILE_NAME_KEY, 'label', 'species'} <= set(features)
        assert len(features['head_bbox'].float_list.value) == 4
        image = tf.io.decode_jpeg(features[keys.IMAGE_KEY].bytes_list.value[0])
        mask = tf.io.decode_png(features[keys.MASK_KEY].bytes_list.value[0])
        assert image.shape[:2] == mask.shape[:2] and mask.shape[2] == 1
        assert set(tf.unique(tf.reshape(mask, [-1]))[0].numpy()) <= {1, 2, 3}


def test_ptransform_reads_slices(sample_folders, tmp_path):
    builder = sources.prepare_builder('oxford_iiit_pet', None, sample_folders, str(tmp_path)).builder
    with beam.Pipeline() as pipeline:
        half = pipeline | 'Half' >> executor.ReadTfdsExamples(builder, 'train[:50%]', 'image', 'segmentation_mask')
        test = pipeline | 'Test' >> executor.ReadTfdsExamples(builder, 'test', 'image', 'segmentation_mask')
        beam_testing.assert_that(half | 'CountHalf' >> beam.combiners.Count.Globally(),
                                 beam_testing.equal_to([NUM_TRAIN // 2]), label='HalfCount')
        beam_testing.assert_that(test | 'CountTest' >> beam.combiners.Count.Globally(),
                                 beam_testing.equal_to([NUM_TEST]), label='TestCount')
        beam_testing.assert_that(test | beam.combiners.ToList(),
                                 lambda lists: _feature_keys_and_mask_match(lists[0]), label='TestContent')


def _run_executor(source_dir, output_dir, splits=None, max_skipped_fraction=0.05):
    splits = splits or {'train': 'train', 'eval': 'test'}
    examples = standard_artifacts.Examples()
    examples.uri = str(output_dir)
    input_config = example_gen_pb2.Input(splits=[
        example_gen_pb2.Input.Split(name=name, pattern=pattern) for name, pattern in splits.items()])
    exec_properties = {
        'input_config': proto_utils.proto_to_json(input_config),
        'output_config': proto_utils.proto_to_json(example_gen_pb2.Output()),
        'output_data_format': example_gen_pb2.FORMAT_TF_EXAMPLE,
        'output_file_format': example_gen_pb2.FORMAT_TFRECORDS_GZIP,
        executor.DATASET_KEY: 'oxford_iiit_pet',
        executor.SOURCE_DIR_KEY: str(source_dir),
        executor.IMAGE_FEATURE_KEY: 'image',
        executor.MASK_FEATURE_KEY: 'segmentation_mask',
        executor.MAX_SKIPPED_FRACTION_KEY: max_skipped_fraction,
    }
    executor.Executor().Do({}, {'examples': [examples]}, exec_properties)
    return examples


def _count_records(split_dir):
    files = tf.io.gfile.glob(os.path.join(split_dir, '*.gz'))
    return sum(1 for _ in tf.data.TFRecordDataset(files, compression_type='GZIP'))


def test_executor_writes_splits_and_records_counts(sample_archives, tmp_path):
    examples = _run_executor(sample_archives, tmp_path / 'out', {'train': 'train[:10]', 'eval': 'test'})
    assert _count_records(tmp_path / 'out' / 'Split-train') == 10
    assert _count_records(tmp_path / 'out' / 'Split-eval') == NUM_TEST
    assert json.loads(examples.get_string_custom_property('num_examples')) == {'train': 10, 'eval': NUM_TEST}
    assert json.loads(examples.get_string_custom_property('num_skipped')) == {'train': 0, 'eval': 0}
    assert examples.get_string_custom_property('tfds_dataset') == 'oxford_iiit_pet'
    assert examples.get_string_custom_property('tfds_version') == '4.0.0'
    assert examples.split_names == '["train", "eval"]'


@pytest.fixture
def corrupt_source(sample_folders, tmp_path):
    """A copy of the sample data with one truncated JPEG, one text file named .jpg, one wrong-size trimap."""
    source = tmp_path / 'corrupt'
    shutil.copytree(sample_folders, source)
    names = [line.split(' ')[0] for line in open(source / 'annotations' / 'trainval.txt')][:3]
    truncated = source / 'images' / f'{names[0]}.jpg'
    data = truncated.read_bytes()
    truncated.write_bytes(data[: len(data) // 2])
    (source / 'images' / f'{names[1]}.jpg').write_bytes(b'<html>not a jpeg</html>')
    trimap = source / 'annotations' / 'trimaps' / f'{names[2]}.png'
    Image.open(trimap).resize((50, 60), Image.NEAREST).save(trimap)
    return source


def test_corrupt_pairs_are_skipped_and_counted(corrupt_source, tmp_path, caplog):
    examples = _run_executor(corrupt_source, tmp_path / 'out', max_skipped_fraction=0.5)
    assert json.loads(examples.get_string_custom_property('num_skipped')) == {'train': 3, 'eval': 0}
    assert _count_records(tmp_path / 'out' / 'Split-train') == NUM_TRAIN - 3
    log = caplog.text
    assert 'image is truncated' in log and 'image is not an image file' in log
    assert 'mask size (50, 60) differs from image size' in log
    names = [line.split(' ')[0] for line in open(corrupt_source / 'annotations' / 'trainval.txt')][:3]
    named = json.loads(examples.get_string_custom_property('skipped_examples'))
    assert [line.split(': ')[:2] for line in named] == sorted(['train', f'{name}.jpg'] for name in names), named


def test_too_many_corrupt_pairs_fail_with_counts(corrupt_source, tmp_path):
    with pytest.raises(sources.DataSourceError, match="Split 'train': 3 of 14 image/mask pairs were unusable"):
        _run_executor(corrupt_source, tmp_path / 'out', max_skipped_fraction=0.05)


def test_unknown_split_is_named(sample_folders, tmp_path):
    with pytest.raises(sources.DataSourceError, match="no split 'validation'.*'test', 'train'"):
        _run_executor(sample_folders, tmp_path / 'out', {'train': 'train', 'eval': 'validation'})


def test_check_image_and_mask_accepts_png_images_and_rejects_masks_without_a_pet():
    import io
    import numpy as np
    buffer_image, buffer_mask = io.BytesIO(), io.BytesIO()
    Image.fromarray(np.zeros((8, 9, 3), np.uint8)).save(buffer_image, format='PNG')
    Image.fromarray(np.ones((8, 9), np.uint8)).save(buffer_mask, format='PNG')
    assert executor.check_image_and_mask(buffer_image.getvalue(), buffer_mask.getvalue()) is None
    assert executor.check_image_and_mask(b'', buffer_mask.getvalue()) == 'image is empty'
    no_pet = io.BytesIO()
    Image.fromarray(np.full((8, 9), 2, np.uint8)).save(no_pet, format='PNG')
    assert executor.check_image_and_mask(buffer_image.getvalue(), no_pet.getvalue()) == \
        'mask marks no pet pixel (a broken annotation)'


def _save_as_jpg_name(path, array, **save_args):
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, **save_args)
    path.write_bytes(buffer.getvalue())


@pytest.fixture
def odd_source(sample_folders, tmp_path):
    """The sample with the real archive's odd files: a GIF and an RGBA PNG named .jpg, CMYK, 16-bit, an RGB trimap."""
    source = tmp_path / 'odd'
    shutil.copytree(sample_folders, source)
    names = [line.split(' ')[0] for line in open(source / 'annotations' / 'trainval.txt')][:5]
    images = {name: np.asarray(Image.open(source / 'images' / f'{name}.jpg')) for name in names}
    frames = [Image.fromarray(images[names[0]]), Image.fromarray(255 - images[names[0]])]
    gif = io.BytesIO()
    frames[0].save(gif, format='GIF', save_all=True, append_images=frames[1:])
    (source / 'images' / f'{names[0]}.jpg').write_bytes(gif.getvalue())
    rgba = np.dstack([images[names[1]], np.full(images[names[1]].shape[:2], 128, np.uint8)])
    _save_as_jpg_name(source / 'images' / f'{names[1]}.jpg', rgba, format='PNG')
    Image.fromarray(images[names[2]]).convert('CMYK').save(source / 'images' / f'{names[2]}.jpg', format='JPEG')
    gray16 = (images[names[3]].mean(-1) * 257).astype(np.uint16)
    Image.fromarray(gray16).save(source / 'images' / f'{names[3]}.jpg', format='PNG')
    trimap = source / 'annotations' / 'trimaps' / f'{names[4]}.png'
    Image.open(trimap).convert('RGB').save(trimap)
    return source, names


def test_odd_image_files_are_converted_and_trained_on_and_bad_trimaps_named(odd_source, sample_folders, tmp_path):
    source, names = odd_source
    examples = _run_executor(source, tmp_path / 'out', max_skipped_fraction=0.1)
    assert json.loads(examples.get_string_custom_property('num_examples')) == {'train': NUM_TRAIN - 1, 'eval': NUM_TEST}
    normalized = json.loads(examples.get_string_custom_property('normalized_files'))
    assert [os.path.basename(line.split(':')[0]) for line in normalized] == [f'{n}.jpg' for n in names[:4]]
    assert 'GIF' in normalized[0] and '(first frame)' in normalized[0] and 'RGBA' in normalized[1]
    assert 'CMYK' in normalized[2] and 'I;16' in normalized[3]
    skipped = json.loads(examples.get_string_custom_property('skipped_files'))
    assert skipped == [f'{source / "annotations" / "trimaps" / names[4]}.png: mask has mode RGB, '
                       'expected a single-channel image or a palette PNG']
    written = {}
    for record in paths.read_gzip_records(paths.split_dir(examples.uri, 'train')):
        features = tf.train.Example.FromString(record).features.feature
        written[features[keys.FILE_NAME_KEY].bytes_list.value[0].decode()] = features
    for name in names[:4]:
        image = Image.open(io.BytesIO(written[f'{name}.jpg'][keys.IMAGE_KEY].bytes_list.value[0]))
        assert (image.format, image.mode) == ('JPEG', 'RGB')
    gif_frame = np.asarray(Image.open(io.BytesIO(written[f'{names[0]}.jpg'][keys.IMAGE_KEY].bytes_list.value[0])))
    original = np.asarray(Image.open(sample_folders + f'/images/{names[0]}.jpg'))
    assert np.abs(gif_frame.astype(int) - original).mean() < 40, 'the first frame, not the inverted second one'


def test_real_photographs_with_the_archives_odd_files(real_pets, tmp_path):
    examples = _run_executor(real_pets, tmp_path / 'out')
    # Abyssinian_34's trimap (the GIF's) marks no pet pixel in the real archive: skipped, counted and named.
    assert json.loads(examples.get_string_custom_property('num_examples')) == {'train': 240, 'eval': 61}
    assert json.loads(examples.get_string_custom_property('num_skipped')) == {'train': 1, 'eval': 0}
    assert json.loads(examples.get_string_custom_property('skipped_examples')) == [
        'train: Abyssinian_34.jpg: mask marks no pet pixel (a broken annotation)']
    normalized = ' '.join(json.loads(examples.get_string_custom_property('normalized_files')))
    assert 'Abyssinian_34.jpg: GIF' in normalized and 'Abyssinian_5.jpg: PNG RGBA' in normalized
