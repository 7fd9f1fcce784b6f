"""Class descriptions: the smallest valid one, the built-ins, and clear errors for the contradictory ones."""

import json

import numpy as np
import pytest

from modules import classes


def test_the_smallest_description_maps_value_i_to_class_i():
    description = classes.ClassDescription.from_dict({'names': ['background', 'cat', 'dog', 'person']})
    assert description.num_classes == 4 and description.values == ((0,), (1,), (2,), (3,))
    table = description.lookup_table()
    assert list(table[:5]) == [0, 1, 2, 3, classes.IGNORE_LABEL]
    assert description.fraction_keys == ('background_fraction', 'cat_fraction', 'dog_fraction', 'person_fraction')
    assert len(set(description.colors)) == 4


def test_several_values_per_class_and_ignored_values():
    description = classes.ClassDescription.from_dict(
        {'names': ['sky', 'road'], 'values': [[0, 1], [7]], 'ignore': [255], 'colors': [[0, 0, 255], [90, 90, 90]]})
    table = description.lookup_table()
    assert (table[0], table[1], table[7], table[255], table[2]) == (0, 0, 1, classes.IGNORE_LABEL, classes.IGNORE_LABEL)
    assert description.known_values() == {0, 1, 7, 255}
    assert classes.ClassDescription.from_json(description.to_json()) == description


@pytest.mark.parametrize('description, message', [
    ({'names': ['a', 'a']}, 'repeats a name'),
    ({'names': ['a', 'b'], 'values': [[0], [0]]}, "mask value 0 belongs to both 'a' and 'b'"),
    ({'names': ['a', 'b'], 'values': [[0], []]}, "class \\['b'\\] has no mask value"),
    ({'names': ['a', 'b'], 'ignore': [1]}, "mask value 1 belongs to both 'b' and 'ignore'"),
    ({'names': [f'c{i}' for i in range(256)]}, '256 classes; at most 255'),
    ({'names': ['a', 'b'], 'values': [[0], [300]]}, 'integers 0..255'),
    ({'names': ['a', 'b'], 'colors': [[0, 0, 0]]}, 'one \\[r, g, b\\]'),
    ({'names': ['a', 'b'], 'palette': []}, 'unknown keys'),
    ({'names': ['only']}, 'at least two'),
])
def test_contradictions_are_named(description, message):
    with pytest.raises(classes.ClassDescriptionError, match=message):
        classes.ClassDescription.from_dict(description)


def test_built_ins():
    assert classes.OXFORD_IIIT_PET.names == ('pet', 'background', 'border')
    assert list(classes.OXFORD_IIIT_PET.lookup_table()[1:4]) == [0, 1, 2]
    assert classes.OXFORD_IIIT_PET.fraction_keys == ('pet_fraction', 'background_fraction', 'border_fraction')
    voc = classes.load('voc')
    assert voc.num_classes == 21 and voc.names[15] == 'person' and voc.ignore == (255,)
    # The devkit's colour map: aeroplane (128, 0, 0), person (192, 128, 128).
    assert voc.colors[1] == (128, 0, 0) and voc.colors[15] == (192, 128, 128)


def test_load_names_the_bad_file(tmp_path):
    path = tmp_path / 'classes.json'
    path.write_text(json.dumps({'names': ['x', 'x']}))
    with pytest.raises(classes.ClassDescriptionError, match=f'{path}: .*repeats a name'):
        classes.load(str(path))
    with pytest.raises(classes.ClassDescriptionError, match='not found'):
        classes.load(str(tmp_path / 'missing.json'))


def test_the_model_carries_its_classes(tmp_path):
    description = classes.ClassDescription.from_dict({'names': ['background', 'disc', 'box']})
    assert classes.read_from_model(str(tmp_path)) == (classes.OXFORD_IIIT_PET, 128), 'older models: Oxford at 128'
    classes.write_to_model(str(tmp_path), description, 160)
    assert classes.read_from_model(str(tmp_path)) == (description, 160)
    assert np.array_equal(classes.read_from_model(str(tmp_path))[0].lookup_table(), description.lookup_table())
