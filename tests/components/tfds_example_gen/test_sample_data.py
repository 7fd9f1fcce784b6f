"""The generator writes the Oxford-IIIT Pet layout, deterministically, with usable trimaps."""

import hashlib
import os

import numpy as np
import pytest
from PIL import Image, ImageFilter

from components.tfds_example_gen import sample_data


def _digest(root):
    digest = hashlib.sha256()
    for directory, _, files in sorted(os.walk(root)):
        for name in sorted(files):
            with open(os.path.join(directory, name), 'rb') as f:
                digest.update(name.encode() + f.read())
    return digest.hexdigest()


def test_layout_lists_and_trimaps(tmp_path):
    images_dir, annotations_dir = sample_data.write_folders(str(tmp_path), num_train=5, num_test=3, seed=7)
    train = open(os.path.join(annotations_dir, 'trainval.txt')).read().splitlines()
    test = open(os.path.join(annotations_dir, 'test.txt')).read().splitlines()
    assert len(train) == 5 and len(test) == 3
    for line in train + test:
        name, class_id, species, breed_id = line.split(' ')
        assert 1 <= int(class_id) <= 37 and species in ('1', '2') and int(breed_id) >= 1
        assert (species == '1') == name[0].isupper(), 'capitalised names are cats, as in the original'
        image = Image.open(os.path.join(images_dir, name + '.jpg'))
        trimap = Image.open(os.path.join(annotations_dir, 'trimaps', name + '.png'))
        assert image.format == 'JPEG' and image.mode == 'RGB'
        assert 200 <= min(image.size) and max(image.size) <= 500
        assert trimap.mode == 'L' and trimap.size == image.size
        assert set(np.unique(np.asarray(trimap))) == {1, 2, 3}
    xmls = os.listdir(os.path.join(annotations_dir, 'xmls'))
    assert len(xmls) == 5, 'head boxes exist for trainval images only, like the original'


def test_same_seed_same_bytes_other_seed_differs(tmp_path):
    sample_data.write_archives(str(tmp_path / 'a'), 3, 2, seed=0)
    sample_data.write_archives(str(tmp_path / 'b'), 3, 2, seed=0)
    sample_data.write_archives(str(tmp_path / 'c'), 3, 2, seed=1)
    assert sorted(os.listdir(tmp_path / 'a')) == ['annotations.tar.gz', 'images.tar.gz']
    assert _digest(tmp_path / 'a') == _digest(tmp_path / 'b')
    assert _digest(tmp_path / 'a') != _digest(tmp_path / 'c')


def test_pet_colours_separate_from_background():
    # Learnable means a pixel's colour says a lot about its class: pet and background means differ.
    image, trimap, _ = sample_data.make_example(seed=3, index=0)
    pet = image[trimap == sample_data.TRIMAP_PET].mean(axis=0)
    background = image[trimap == sample_data.TRIMAP_BACKGROUND].mean(axis=0)
    assert np.abs(pet - background).max() > 20


@pytest.mark.parametrize('radius', [1, 2, 4])
def test_the_border_band_is_pils_max_and_min_filter(radius):
    # The trimap's border was made with PIL's rank filters; the separable form must draw the same band.
    mask = Image.fromarray((np.random.default_rng(radius).random((37, 53)) > 0.7).astype(np.uint8) * 255)
    inside = np.asarray(mask) > 0
    for reduce, pil_filter in ((np.max, ImageFilter.MaxFilter), (np.min, ImageFilter.MinFilter)):
        np.testing.assert_array_equal(sample_data._square_reduce(inside, radius, reduce),
                                      np.asarray(mask.filter(pil_filter(2 * radius + 1))) > 0)


def test_cli(tmp_path, capsys):
    sample_data.main([str(tmp_path), '--num-train', '2', '--num-test', '1', '--archives'])
    assert sorted(os.listdir(tmp_path)) == ['annotations.tar.gz', 'images.tar.gz']
    assert 'Wrote 2 train + 1 test images' in capsys.readouterr().out
