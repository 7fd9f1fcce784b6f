"""TfdsExampleGen on your own data: the folders and Pascal VOC layouts, K classes, and bad masks named and counted."""

import json
import os
import re
import shutil

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image
from tfx.proto import example_gen_pb2
from tfx.types import standard_artifacts
from tfx.utils import proto_utils

from components.tfds_example_gen import executor, sample_shapes, sources
from modules import classes, keys, paths
from pipeline import config as config_lib, data_source

NUM_TRAIN, NUM_TEST = 8, 4
FIVE = classes.ClassDescription.from_dict({'names': sample_shapes.class_names(5)})


def _run(source_dir, output_dir, description, layout='auto', max_skipped_fraction=0.05):
    examples = standard_artifacts.Examples()
    examples.uri = str(output_dir)
    input_config = example_gen_pb2.Input(splits=[example_gen_pb2.Input.Split(name='train', pattern='train'),
                                                 example_gen_pb2.Input.Split(name='eval', pattern='test')])
    executor.Executor().Do({}, {'examples': [examples]}, {
        'input_config': proto_utils.proto_to_json(input_config),
        'output_config': proto_utils.proto_to_json(example_gen_pb2.Output()),
        'output_data_format': example_gen_pb2.FORMAT_TF_EXAMPLE,
        'output_file_format': example_gen_pb2.FORMAT_TFRECORDS_GZIP,
        executor.DATASET_KEY: 'oxford_iiit_pet', executor.SOURCE_DIR_KEY: str(source_dir),
        executor.IMAGE_FEATURE_KEY: 'image', executor.MASK_FEATURE_KEY: 'segmentation_mask',
        executor.MAX_SKIPPED_FRACTION_KEY: max_skipped_fraction, executor.CLASSES_KEY: description.to_json(),
        executor.SOURCE_LAYOUT_KEY: layout, executor.EVAL_FRACTION_KEY: 0.25})
    return examples


def _examples(output_dir, split):
    return [tf.train.Example.FromString(r) for r in paths.read_gzip_records(paths.split_dir(str(output_dir), split))]


@pytest.fixture(scope='module')
def shapes_folders(tmp_path_factory):
    return sample_shapes.write_shapes(str(tmp_path_factory.mktemp('shapes')), NUM_TRAIN, NUM_TEST, 5, seed=2)


def test_folders_layout_reads_five_classes_with_their_fractions(shapes_folders, tmp_path):
    examples = _run(shapes_folders, tmp_path / 'out', FIVE)
    assert json.loads(examples.get_string_custom_property('num_examples')) == {'train': NUM_TRAIN, 'eval': NUM_TEST}
    assert classes.ClassDescription.from_json(examples.get_string_custom_property('classes')) == FIVE
    for example in _examples(tmp_path / 'out', 'eval'):
        features = example.features.feature
        mask = tf.io.decode_png(features[keys.MASK_KEY].bytes_list.value[0]).numpy()[..., 0]
        fractions = [features[key].float_list.value[0] for key in FIVE.fraction_keys]
        assert fractions == pytest.approx([np.mean(mask == i) for i in range(5)], abs=1e-6)
        assert set(np.unique(mask)) <= set(range(5)) and features[keys.FILE_NAME_KEY].bytes_list.value[0].endswith(b'.jpg')


def test_a_palette_png_and_a_grayscale_png_of_the_same_classes_give_the_same_examples(tmp_path):
    gray = sample_shapes.write_shapes(str(tmp_path / 'gray'), 3, 2, 5, seed=4)
    palette = sample_shapes.write_shapes(str(tmp_path / 'palette'), 3, 2, 5, seed=4, palette=True)
    assert Image.open(os.path.join(palette, 'masks', 'shapes_00000.png')).mode == 'P'
    assert Image.open(os.path.join(gray, 'masks', 'shapes_00000.png')).mode == 'L'
    _run(gray, tmp_path / 'out_gray', FIVE)
    _run(palette, tmp_path / 'out_palette', FIVE)
    for split in ('train', 'eval'):
        by_name = [{e.features.feature[keys.FILE_NAME_KEY].bytes_list.value[0]: e  # protos compare maps by value
                    for e in _examples(tmp_path / out, split)} for out in ('out_gray', 'out_palette')]
        assert len(by_name[0]) == (3 if split == 'train' else 2) and by_name[0] == by_name[1]


def test_unknown_mask_values_are_named_and_counted_never_trained_as_class_zero(shapes_folders, tmp_path):
    # The description says K=3, but the masks hold values up to 4.
    three = classes.ClassDescription.from_dict({'names': sample_shapes.class_names(3)})
    with pytest.raises(sources.DataSourceError, match='unusable'):
        _run(shapes_folders, tmp_path / 'strict', three)
    examples = _run(shapes_folders, tmp_path / 'lenient', three, max_skipped_fraction=0.99)
    skipped = json.loads(examples.get_string_custom_property('skipped_examples'))
    kept = json.loads(examples.get_string_custom_property('num_examples'))
    assert skipped and all(re.fullmatch(r'(train|eval): shapes_\d+\.jpg: mask values \[[34](, 4)?\] are not in the '
                                        r'class description .*', line) for line in skipped), skipped
    assert sum(kept.values()) + len(skipped) == NUM_TRAIN + NUM_TEST
    for example in _examples(tmp_path / 'lenient', 'train'):
        mask = tf.io.decode_png(example.features.feature[keys.MASK_KEY].bytes_list.value[0]).numpy()
        assert mask.max() <= 2


def test_a_masks_folder_missing_files_is_counted_as_missing(shapes_folders, tmp_path):
    source = tmp_path / 'src'
    shutil.copytree(shapes_folders, source)
    os.remove(source / 'masks' / 'shapes_00001.png')
    examples = _run(source, tmp_path / 'out', FIVE, max_skipped_fraction=0.2)
    missing = json.loads(examples.get_string_custom_property('missing_files'))
    assert missing == [str(source / 'masks' / 'shapes_00001.png')]
    assert json.loads(examples.get_string_custom_property('num_examples'))['train'] == NUM_TRAIN - 1


def test_without_split_lists_a_stable_fraction_goes_to_eval(shapes_folders, tmp_path):
    source = tmp_path / 'src'
    shutil.copytree(shapes_folders, source)
    shutil.rmtree(source / 'splits')
    stems = sources.split_stems(str(source), sources.FOLDERS, 0.25)
    assert sorted(stems['train'] + stems['test']) == sorted(f'shapes_{i:05d}' for i in range(NUM_TRAIN + NUM_TEST))
    assert stems['test'] and stems == sources.split_stems(str(source), sources.FOLDERS, 0.25)
    sample_shapes.write_shapes(str(tmp_path / 'more'), NUM_TRAIN + 20, NUM_TEST, 5, seed=2)
    shutil.rmtree(tmp_path / 'more' / 'splits')
    grown = sources.split_stems(str(tmp_path / 'more'), sources.FOLDERS, 0.25)
    assert set(stems['test']) <= set(grown['test']), 'adding images never moves an eval image to train'


def test_voc_layout_keeps_its_void_band_for_transform_to_ignore(tmp_path):
    voc = sample_shapes.write_shapes(str(tmp_path / 'voc'), 4, 2, 4, seed=3, layout='voc')
    assert sources.detect_layout(voc) == sources.VOC
    description = classes.load(os.path.join(voc, classes.FILE_NAME))
    assert description.ignore == (255,)
    examples = _run(voc, tmp_path / 'out', description)
    assert json.loads(examples.get_string_custom_property('num_examples')) == {'train': 4, 'eval': 2}
    mask = tf.io.decode_png(_examples(tmp_path / 'out', 'train')[0].features.feature[keys.MASK_KEY]
                            .bytes_list.value[0]).numpy()
    assert 255 in mask and set(np.unique(mask)) <= {0, 1, 2, 3, 255}


def test_the_runner_reads_the_classes_the_data_brings(shapes_folders, tmp_path):
    config = config_lib.preset('default').with_overrides({'data.source_dir': shapes_folders})
    assert data_source.resolve_classes(config).data.description == FIVE
    voc = sample_shapes.write_shapes(str(tmp_path / 'voc'), 2, 1, 3, layout='voc')
    os.remove(os.path.join(voc, classes.FILE_NAME))
    voc_config = config_lib.preset('default').with_overrides({'data.source_dir': voc})
    assert data_source.resolve_classes(voc_config).data.description == classes.PASCAL_VOC, 'a VOC export needs no file'
    with pytest.raises(ValueError, match='class_weights needs 5 positive values'):
        data_source.resolve_classes(config.with_overrides({'training.class_weights': (1.0, 2.0, 1.0)}))
    with pytest.raises(ValueError, match='not in the voc layout'):
        sources.detect_layout(shapes_folders, sources.VOC)
