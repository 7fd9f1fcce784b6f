"""A local run refuses data its pipeline's blessed baseline cannot be compared on, before anything runs; read
from the MLMD and the models of the e2e story (tests/scenario.py: smoke pets, several blessed runs)."""

import os

import pytest

from modules import classes
from pipeline import config as config_lib, data_source
from pipeline.local import baseline
from tests.scenario import with_settings

pytestmark = pytest.mark.e2e
FIVE = classes.ClassDescription.from_dict({'names': ['background', 'disc', 'box', 'triangle', 'cross']})


def test_the_baseline_is_the_newest_blessed_model_and_the_same_data_passes(scenario):
    metadata = os.path.join(scenario.root, 'metadata.db')
    model_dir = baseline.latest_blessed_model(metadata)
    blessed = [s for s in scenario.summaries if s.blessed]
    assert model_dir.startswith(blessed[-1].model_uri) and os.path.isdir(model_dir)
    assert classes.read_from_model(model_dir) == (classes.OXFORD_IIIT_PET, classes.DEFAULT_IMAGE_SIZE)
    baseline.check_comparable(data_source.resolve_classes(scenario.config), metadata)


def test_other_classes_are_refused_naming_both_and_the_fix(scenario):
    metadata = os.path.join(scenario.root, 'metadata.db')
    with pytest.raises(ValueError) as refused:
        baseline.check_comparable(with_settings(scenario.config, data={'class_description': FIVE}), metadata)
    message = str(refused.value)
    assert baseline.latest_blessed_model(metadata) in message
    assert ("was trained on 3 classes (pet [1], background [2], border [3]) at 128 px; this run's data has 5 classes "
            "(background [0], disc [1], box [2], triangle [3], cross [4]) at 128 px") in message
    assert '(--name)' in message


def test_the_same_classes_at_another_size_or_mask_values_decide(scenario):
    metadata = os.path.join(scenario.root, 'metadata.db')
    resolved = data_source.resolve_classes(scenario.config)
    baseline.check_comparable(with_settings(resolved, data={'image_size': 160}), metadata)
    merged = classes.ClassDescription.from_dict({'names': ['pet', 'background', 'border'],
                                                 'values': [[1], [2, 3], [4]]})
    with pytest.raises(ValueError, match=r"this run's data has 3 classes \(pet \[1\], background \[2, 3\]"):
        baseline.check_comparable(with_settings(resolved, data={'class_description': merged}), metadata)


def test_a_pipeline_without_a_blessed_model_has_no_baseline(tmp_path):
    assert baseline.latest_blessed_model(str(tmp_path / 'metadata.db')) is None
    baseline.check_comparable(with_settings(config_lib.preset('smoke'), data={'class_description': FIVE}),
                              str(tmp_path / 'metadata.db'))
