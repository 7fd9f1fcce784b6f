"""Full-size scoring of the scenario's first pushed model: the figures a numpy computation gives on the same
images, boundary IoU per image, the worst images the lowest ones, and the files the executor writes."""

import csv
import json
import os

import numpy as np
import pytest
import tensorflow as tf

from components.full_size_eval import executor, scoring
from modules import classes, keys, metrics, paths, signatures


@pytest.fixture(scope='module')
def scored(scenario):
    first = scenario.summaries[0]
    records = paths.read_gzip_records(paths.split_dir(first.examples_uri, 'eval'), limit=4)
    model_dir = paths.serving_model_dir(first.model_uri)
    return model_dir, records, scoring.score_examples(model_dir, records, (keys.SPECIES_KEY,), worst_count=2)


def _predictions(model_dir, records):
    """Each image's truth and full-size prediction, computed here without the scoring module."""
    serve = tf.saved_model.load(model_dir).signatures[signatures.SERVING_FULL_SIZE]
    pairs = []
    for record in records:
        features = tf.train.Example.FromString(record).features.feature
        image_bytes = features[keys.IMAGE_KEY].bytes_list.value[0]
        truth = tf.io.decode_png(features[keys.MASK_KEY].bytes_list.value[0]).numpy()[..., 0]
        truth = classes.OXFORD_IIIT_PET.lookup_table()[truth]
        answer = serve(image_bytes=tf.constant([image_bytes]))
        pairs.append((truth, answer['mask'].numpy()[0, :truth.shape[0], :truth.shape[1]]))
    return pairs


def test_full_size_figures_equal_a_numpy_computation_over_the_same_pixels(scored):
    model_dir, records, result = scored
    pairs = _predictions(model_dir, records)
    assert len({truth.shape for truth, _ in pairs}) > 1, 'the generated images have several sizes'
    expected = metrics.numpy_scores(np.concatenate([t.ravel() for t, _ in pairs]),
                                    np.concatenate([p.ravel() for _, p in pairs]), classes.OXFORD_IIIT_PET.names)
    for name, value in expected.items():
        assert result.metrics[name] == pytest.approx(value, abs=1e-9), name
    assert result.metrics['images'] == 4
    for (truth, predicted), image in zip(pairs, result.images):
        assert (image.height, image.width) == truth.shape
        own = metrics.boundary_iou(truth, predicted, classes.OXFORD_IIIT_PET.names)
        assert image.mean_boundary_iou == pytest.approx(own['mean_boundary_iou'])
        assert image.mean_iou == pytest.approx(metrics.numpy_scores(truth, predicted, classes.OXFORD_IIIT_PET.names)
                                               ['mean_iou'])
    # The dataset's boundary IoU sums the bands' pixels over images, as region IoU sums the confusion matrix.
    counts = [metrics.boundary_counts(t, p, 3) for t, p in pairs]
    summed = metrics.boundary_scores(sum(c[0] for c in counts), sum(c[1] for c in counts), classes.OXFORD_IIIT_PET.names)
    assert result.metrics['mean_boundary_iou'] == pytest.approx(summed['mean_boundary_iou'])


def test_the_worst_images_are_those_with_the_lowest_iou_named_by_file(scored):
    _, _, result = scored
    lowest = sorted(result.images, key=lambda image: image.mean_iou)[:2]
    assert [w.score.file_name for w in result.worst] == [image.file_name for image in lowest]
    assert all(w.score.file_name.endswith('.jpg') and w.image.shape[:2] == w.truth.shape for w in result.worst)
    assert all(image.slices[keys.SPECIES_KEY] in ('0', '1') for image in result.images)


def test_the_executor_writes_the_figures_the_table_and_the_pictures(scored, tmp_path):
    model_dir, _, result = scored
    summary = executor.write_outputs(result, str(tmp_path), [keys.SPECIES_KEY], classes.OXFORD_IIIT_PET.colors, 0.02)
    stored = json.load(open(tmp_path / executor.RESULT_FILE))
    assert stored == json.loads(json.dumps(summary)) and stored['metrics']['images'] == 4
    assert [w['file_name'] for w in stored['worst']] == [w.score.file_name for w in result.worst]
    rows = list(csv.DictReader(open(tmp_path / executor.PER_IMAGE_FILE)))
    assert [row['file_name'] for row in rows] == [image.file_name for image in result.images]
    assert set(rows[0]) >= {keys.SPECIES_KEY, 'mean_iou', 'mean_boundary_iou', 'height', 'width'}
    for name in (executor.WORST_IMAGES_FILE, executor.HISTOGRAM_FILE):
        assert os.path.getsize(tmp_path / name) > 1000


def test_slice_values_are_named_where_their_file_names_agree():
    images = [scoring.ImageScore(name, {'label': label}, 1, 1, 1.0, 1.0, 1.0) for name, label in
              [('Bengal_1.jpg', '5'), ('Bengal_7.jpg', '5'), ('great_pyrenees_2.jpg', '21'), ('Abyssinian_3.jpg', '0'),
               ('Bengal_9.jpg', '0')]]
    assert scoring.slice_value_names(images, 'label') == {'5': 'Bengal', '21': 'great_pyrenees'}
