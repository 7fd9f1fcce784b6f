"""Your own data end to end: a generated five-class folders dataset at 160 px, and a VOC export with a void band.

The five-class run goes through every component (LocalDagRunner, real TFT/TFMA/Beam): the Evaluator names five
per-class IoUs, blesses, the Pusher pushes; the served model answers masks 0..4 at 160 px and carries its classes;
the TFLite int8 contract lists them; batch prediction writes five share columns; the web page (headless Chromium)
shows five legend entries with the dataset's names. The VOC run checks that its void band counts nowhere.
"""

import asyncio
import csv
import glob
import io
import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request

import numpy as np
import pytest
import tensorflow as tf

from components.tfds_example_gen import sample_shapes
from modules import batch_predict, classes, keys, paths, signatures
from pipeline import config as config_lib, data_source, node_ids
from pipeline.local import run_summary
from tests.scenario import _run, with_settings
from tests.serving import browser

pytestmark = pytest.mark.e2e
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
NAMES = sample_shapes.class_names(5)


def _own_data_config(source_dir, name, **tflite):
    # Validation on the whole eval split: the Trainer's last scores are then the Evaluator's.
    config = config_lib.preset('smoke').with_overrides({'name': name, 'data.source_dir': source_dir,
                                                        'data.image_size': 160, 'training.validation_steps': None})
    return with_settings(data_source.resolve_classes(config), tflite={'tflite_variants': ('int8',),
                                                                      'representative_examples': 8, **tflite})


@pytest.fixture(scope='module')
def five_classes(tmp_path_factory):
    root = str(tmp_path_factory.mktemp('own_data'))
    source = sample_shapes.write_shapes(os.path.join(root, 'shapes'), 12, 6, 5, seed=1)
    serving_dir = os.path.join(root, 'serving')
    summary = _run(_own_data_config(source, 'shapes'), root, serving_dir)
    return {'root': root, 'source': source, 'serving': serving_dir, 'summary': summary,
            'model': os.path.join(serving_dir, str(paths.numbered_versions(serving_dir)[-1]))}


def test_evaluator_names_five_class_ious_blesses_and_pushes(five_classes):
    summary = five_classes['summary']
    assert summary.blessed and summary.pushed_to == five_classes['model']
    assert {f'iou_{name}' for name in NAMES} <= set(summary.candidate_metrics)
    assert 'iou_pet' not in summary.candidate_metrics
    assert summary.num_examples == {'train': 12, 'eval': 6} and summary.classes == NAMES
    assert run_summary.component_figure(summary, node_ids.EXAMPLE_GEN).endswith(
        '5 classes (background, disc, box, triangle, cross)')


def test_the_trainer_reports_the_exported_models_scores_after_recomputing_batchnorm(five_classes):
    summary = five_classes['summary']
    assert summary.batchnorm['images'] == 12, summary.batchnorm
    after = summary.batchnorm['after']
    # Within 0.5 points: a two-step model's logits nearly tie on many pixels, where TFMA's batches and the
    # Trainer's round differently (here 0.4173 / 0.4184, with 0.6248 before the recomputation).
    for name in ('pixel_accuracy', 'mean_iou'):
        assert after[f'val_{name}'] == pytest.approx(summary.candidate_metrics[name], abs=5e-3), name
    assert run_summary.component_figure(summary, node_ids.TRAINER).startswith(
        f'val pixel accuracy {after["val_pixel_accuracy"]:.3f}, val mean iou {after["val_mean_iou"]:.3f} '
        '(BatchNorm statistics recomputed; before: ')


def test_the_served_model_answers_five_classes_at_160_and_carries_them(five_classes):
    model_dir = five_classes['model']
    assert classes.read_from_model(model_dir) == (classes.load(os.path.join(five_classes['source'], 'classes.json')),
                                                  160)
    model = tf.saved_model.load(model_dir)
    images = [open(path, 'rb').read() for path in sorted(glob.glob(os.path.join(five_classes['source'], 'images',
                                                                                '*.jpg')))[:3]]
    outputs = model.signatures[signatures.SERVING_DEFAULT](image_bytes=tf.constant(images))
    assert outputs['mask'].shape == (3, 160, 160) and outputs['probabilities'].shape == (3, 160, 160, 5)
    assert set(np.unique(outputs['mask'].numpy())) <= set(range(5))


def test_the_int8_tflite_contract_lists_the_five_classes(five_classes):
    found = glob.glob(os.path.join(five_classes['root'], 'pipeline_root', 'TfliteExport', '*', '*', 'int8.json'))
    contract = json.load(open(found[0]))
    assert [entry['name'] for entry in contract['classes']] == NAMES
    assert contract['input']['shape'] == [1, 160, 160, 3] and contract['output']['shape'] == [1, 160, 160, 5]


def test_batch_prediction_writes_a_share_column_per_class(five_classes, tmp_path):
    images = os.path.join(five_classes['source'], 'images')
    out = str(tmp_path / 'batch')
    counts = batch_predict.run([os.path.join(images, 'shapes_0000[0-3].jpg')], five_classes['model'], out,
                               ['--runner=DirectRunner'], out=io.StringIO())
    assert counts == {'images': 4, 'segmented': 4, 'skipped': 0}
    rows = list(csv.reader(open(os.path.join(out, batch_predict.SHARES_FILE))))
    assert rows[0] == ['image', 'height', 'width', *NAMES]
    for row in rows[1:]:
        assert sum(float(share) for share in row[3:]) == pytest.approx(1.0, abs=1e-3)


@pytest.mark.skipif(browser.find_chromium() is None,
                    reason='no Chromium: `apt-get install chromium` (make test does it on CI) to run the page test')
def test_the_web_page_legend_shows_the_datasets_five_classes(five_classes, tmp_path):
    port = browser.free_port()
    process = subprocess.Popen([sys.executable, '-m', 'serving', '--model_root', five_classes['serving'],
                                '--model_name', 'shapes', '--port', str(port)],
                               cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    base = f'http://127.0.0.1:{port}'
    try:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f'{base}/v1/models/shapes', timeout=10) as response:
                    if response.status == 200:
                        break
            except (urllib.error.URLError, ConnectionError):
                pass
            assert process.poll() is None, process.stdout.read().decode()
            time.sleep(0.5)
        photo = tmp_path / 'shapes.jpg'
        photo.write_bytes(open(os.path.join(five_classes['source'], 'images', 'shapes_00002.jpg'), 'rb').read())

        async def drive():
            async with browser.Browser() as page:
                await page.open(base + '/')
                await page.wait_for("document.getElementById('model').textContent.includes('version')")
                await page.upload('#file', str(photo))
                await page.wait_for("document.querySelectorAll('#facts .swatch').length > 0")
                return await page.evaluate("document.getElementById('facts').textContent"), await page.evaluate(
                    "document.querySelectorAll('#facts .swatch').length")

        facts, swatches = asyncio.run(drive())
    finally:
        process.terminate()
        process.wait(30)
    assert swatches == 5
    for name in NAMES:
        assert f'{name} ' in facts
    assert 'pet ' not in facts


def test_a_voc_exports_void_band_counts_nowhere_in_the_evaluators_metrics(tmp_path):
    source = sample_shapes.write_shapes(str(tmp_path / 'voc'), 12, 6, 4, seed=5, layout='voc')
    config = _own_data_config(source, 'voc', tflite_variants=())
    assert config.data.description.ignore == (sample_shapes.VOID,)
    summary = _run(config, str(tmp_path), str(tmp_path / 'serving'))
    model = tf.saved_model.load(summary.pushed_to)
    records = tf.constant(paths.read_gzip_records(paths.split_dir(summary.examples_uri, 'eval')))
    labels = model.signatures[signatures.TRANSFORM_FEATURES](examples=records)[
        keys.transformed_name(keys.MASK_KEY)].numpy()[..., 0]
    predicted = np.argmax(model.signatures[signatures.SERVING_TF_EXAMPLE](examples=records)['logits'].numpy(), -1)
    void = labels == classes.IGNORE_LABEL
    assert void.mean() > 0.01, 'the band reaches the transformed labels'
    without_void = float(np.mean(predicted[~void] == labels[~void]))
    counting_void = float(np.mean(predicted == labels))  # what the metric would be if the band counted
    assert summary.candidate_metrics['pixel_accuracy'] == pytest.approx(without_void, abs=1e-4)
    assert abs(without_void - counting_void) > 1e-3
