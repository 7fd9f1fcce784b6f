"""Offline preparation from archives and folders, fingerprints, and clear errors for bad sources."""

import os
import shutil

import pytest

from components.tfds_example_gen import sources
from tests.conftest import NUM_TEST, NUM_TRAIN


@pytest.mark.parametrize('layout_fixture', ['sample_archives', 'sample_folders'])
def test_prepares_offline(layout_fixture, request, tmp_path):
    source_dir = request.getfixturevalue(layout_fixture)
    prepared = sources.prepare_builder('oxford_iiit_pet:4.*.*', None, source_dir, str(tmp_path))
    splits = prepared.builder.info.splits
    assert (splits['train'].num_examples, splits['test'].num_examples) == (NUM_TRAIN, NUM_TEST)
    assert str(prepared.builder.version) == '4.0.0' and prepared.missing_files == ()
    sources.check_features(prepared.builder, 'image', 'segmentation_mask')


def test_missing_listed_file_is_skipped_and_named(sample_folders, tmp_path):
    source = tmp_path / 'src'
    shutil.copytree(sample_folders, source)
    victim = open(source / 'annotations' / 'trainval.txt').readline().split(' ')[0]
    os.remove(source / 'images' / f'{victim}.jpg')
    prepared = sources.prepare_builder('oxford_iiit_pet', None, str(source), str(tmp_path / 'work'))
    assert prepared.builder.info.splits['train'].num_examples == NUM_TRAIN - 1
    assert prepared.missing_files == (str(source / 'images' / f'{victim}.jpg'),)


def test_fingerprint_changes_with_data(sample_folders, tmp_path):
    source = tmp_path / 'src'
    shutil.copytree(sample_folders, source)
    before = sources.fingerprint('oxford_iiit_pet', None, str(source))
    assert before == sources.fingerprint('oxford_iiit_pet', None, str(source))
    with open(source / 'annotations' / 'test.txt', 'a') as f:
        f.write('extra_1 1 1 1\n')
    assert sources.fingerprint('oxford_iiit_pet', None, str(source)) != before


def test_missing_source_dir(tmp_path):
    with pytest.raises(sources.DataSourceError, match=r"'.*nope' does not exist.*sample_data"):
        sources.prepare_builder('oxford_iiit_pet', None, str(tmp_path / 'nope'), str(tmp_path))


def test_empty_source_dir(tmp_path):
    (tmp_path / 'empty').mkdir()
    with pytest.raises(sources.DataSourceError, match='holds nothing; expected images.tar.gz'):
        sources.prepare_builder('oxford_iiit_pet', None, str(tmp_path / 'empty'), str(tmp_path))


def test_folders_without_split_lists(sample_folders, tmp_path):
    source = tmp_path / 'src'
    shutil.copytree(sample_folders, source)
    os.remove(source / 'annotations' / 'test.txt')
    with pytest.raises(sources.DataSourceError, match='test.txt.* is missing'):
        sources.source_layout(str(source))


def test_missing_data_dir(tmp_path):
    with pytest.raises(sources.DataSourceError, match=r"data_dir '.*typo' does not exist"):
        sources.prepare_builder('oxford_iiit_pet', str(tmp_path / 'typo'), None, str(tmp_path))


def test_unknown_tfds_name(tmp_path):
    with pytest.raises(sources.DataSourceError, match="Unknown TFDS dataset 'no_such_pets'"):
        sources.prepare_builder('no_such_pets', str(tmp_path), None, str(tmp_path))


@pytest.mark.slow  # TFDS retries the download for about 3 minutes before giving up
def test_unprepared_dataset_offline_says_what_to_do(tmp_path):
    # No network in CI: a download must fail with advice, not a stack of TFDS internals.
    (tmp_path / 'tfds').mkdir()
    with pytest.raises(sources.DataSourceError, match='not prepared in .* Without network, pass a data_dir'):
        sources.prepare_builder('oxford_iiit_pet', str(tmp_path / 'tfds'), None, str(tmp_path))


def test_dataset_without_mask_feature():
    import tensorflow_datasets as tfds
    with pytest.raises(sources.DataSourceError, match="'mnist' has no segmentation mask feature 'segmentation_mask'"):
        sources.check_features(tfds.builder('mnist'), 'image', 'segmentation_mask')


def test_source_dir_only_for_oxford_and_its_version(sample_archives, tmp_path):
    with pytest.raises(sources.DataSourceError, match='source_dir is read as Oxford-IIIT Pet'):
        sources.prepare_builder('mnist', None, sample_archives, str(tmp_path))
    with pytest.raises(sources.DataSourceError, match='asks for version 3'):
        sources.prepare_builder('oxford_iiit_pet:3.*.*', None, sample_archives, str(tmp_path))
