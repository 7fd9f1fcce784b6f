"""Shared fixtures: Keras 2 for TFT/TFMA, and small generated datasets in the Oxford-IIIT Pet layout."""

import os

os.environ['TF_USE_LEGACY_KERAS'] = '1'  # before anything imports TensorFlow

import pytest  # noqa: E402

from components.tfds_example_gen import sample_data  # noqa: E402
from tests.scenario import scenario  # noqa: E402,F401  (the shared end-to-end story)

NUM_TRAIN, NUM_TEST = 14, 6
# 302 real Oxford-IIIT Pet photos beside the repository (never copied into it); tests that need them skip.
REAL_PETS_DIR = os.path.abspath(os.path.join(os.path.dirname(__file__), '..', '..', 'shared', 'data',
                                             'oxford-pets-real'))


@pytest.fixture(scope='session')
def real_pets() -> str:
    """The real-photo subset's folder, or a skip saying why it is absent."""
    if not os.path.isdir(os.path.join(REAL_PETS_DIR, 'images')):
        pytest.skip(f'real photos not found at {REAL_PETS_DIR} (../shared beside the repository); '
                    'they are never copied into the repository')
    return REAL_PETS_DIR


@pytest.fixture(scope='session')
def sample_folders(tmp_path_factory) -> str:
    """Extracted images/ + annotations/ folders with NUM_TRAIN + NUM_TEST generated pets."""
    root = str(tmp_path_factory.mktemp('pets_folders'))
    sample_data.write_folders(root, NUM_TRAIN, NUM_TEST, seed=1)
    return root


@pytest.fixture(scope='session')
def sample_archives(tmp_path_factory) -> str:
    """images.tar.gz + annotations.tar.gz with the same pets as `sample_folders`."""
    root = str(tmp_path_factory.mktemp('pets_archives'))
    sample_data.write_archives(root, NUM_TRAIN, NUM_TEST, seed=1)
    return root
