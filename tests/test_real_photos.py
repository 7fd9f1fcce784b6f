"""`python local_runner.py` on the real-photo subset, with the Tuner: the archive's odd files, tuned training, real
predictions in the report.

One smoke-sized run (a few steps per stage, ~5 min on 2 cores) of the real user path: the archive's GIF and RGBA
PNG saved as .jpg are decoded (the RGBA one, a test-list image, is evaluated on; the GIF's trimap marks no pet
pixel, so that pair is skipped and named), the Tuner's best values reach the Trainer, the pushed model averages
with the mirrored image (the `real` preset's test-time flip) in every signature, and the report's prediction
grid shows real eval photos.
"""

import glob
import json
import os
import subprocess
import sys

import pytest
import tensorflow as tf

import numpy as np

from modules import hparams, keys, paths, signatures, tflite, train
from pipeline.local import run_summary

pytestmark = pytest.mark.e2e
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope='module')
def real_run(real_pets, tmp_path_factory):
    output_dir = str(tmp_path_factory.mktemp('real_run'))
    command = [sys.executable, 'local_runner.py', '--preset', 'smoke', '--source_dir', real_pets, '--output_dir',
               output_dir, '--tflite_variants', 'float32', 'int8', '--augment_scale', '0.3', '--augment_rotation', '10',
               '--augment_color', '0.5', '--lr_schedule', 'cosine', '--validation_split', '0.1',
               '--early_stopping_patience', '2', '--tune', '--max_trials', '2', '--trial_epochs', '1',
               '--trial_steps_per_epoch', '1', '--class_weights', '2', '1', '2', '--test_time_flip']
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=1500)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    run_dir = os.path.join(output_dir, 'petseg')
    summary = run_summary.read_run_summary(os.path.join(run_dir, 'metadata.db'), 'petseg')
    return run_dir, summary, done.stdout


def test_odd_files_are_trained_on_and_the_broken_trimap_is_skipped_by_name(real_run):
    run_dir, summary, stdout = real_run
    assert summary.num_examples == {'train': 240, 'eval': 61}
    assert summary.skipped_examples == ['train: Abyssinian_34.jpg: mask marks no pet pixel (a broken annotation)']
    assert 'Abyssinian_34.jpg: mask marks no pet pixel' in stdout, 'the console names the skipped file'
    names = {split: [tf.train.Example.FromString(record).features.feature[keys.FILE_NAME_KEY].bytes_list.value[0].decode()
                     for record in paths.read_gzip_records(paths.split_dir(summary.examples_uri, split))]
             for split in ('train', 'eval')}
    assert 'Abyssinian_5.jpg' in names['eval'], 'the RGBA PNG saved as .jpg (a test-list image) is converted and kept'
    assert 'Abyssinian_34.jpg' not in names['train']


def test_the_tuners_best_values_are_what_the_trainer_trained_with(real_run):
    run_dir, summary, _ = real_run
    assert [c.state for c in summary.components if c.node_id == 'Tuner'] == ['COMPLETE']
    [best_file] = glob.glob(os.path.join(run_dir, 'pipeline_root', 'Tuner', 'best_hyperparameters', '*',
                                         'best_hyperparameters.txt'))
    best = json.load(open(best_file))['values']
    assert set(best) == set(hparams.TUNABLE)
    [results_file] = glob.glob(os.path.join(run_dir, 'pipeline_root', 'Tuner', 'tuner_results', '*', '*.json'))
    assert len(json.load(open(results_file))) == 2, 'two trials, both scored'
    trained = run_summary.read_trained_settings(summary.model_run_uri)
    restored = hparams.from_custom_config({'training': {k: v for k, v in trained.items() if k != hparams.DECIDED_KEY}})
    assert hparams.tuned_values(restored) == best
    assert trained['lr_schedule'] == 'cosine' and trained['augmentation']['scale'] == 0.3


def test_the_report_shows_predictions_on_real_photos(real_run, real_pets):
    run_dir, summary, _ = real_run
    [report] = glob.glob(os.path.join(run_dir, 'runs', '*', 'report.md'))
    text = open(report).read()
    shown = text.split('Predictions shown for the eval images ')[1].split('.\n')[0]
    shown = [name.strip('`') for name in shown.split(', ')]
    with open(os.path.join(real_pets, 'annotations', 'test.txt')) as f:
        real_test_photos = {line.split(' ')[0] + '.jpg' for line in f if line.strip()}
    assert len(shown) == 6 and set(shown) <= real_test_photos, shown
    assert os.path.exists(os.path.join(os.path.dirname(report), 'eval_predictions.png'))
    assert '## Training settings (in effect)' in text
    # What the Trainer decided, not the raw settings: random encoder weights are trained, the layer forms chosen.
    assert '| train_encoder | True | random encoder weights are always trained |' in text
    assert '| speed.split_skip_logits | True | on unless subpixel_upsampling' in text
    assert '| augmentation.scale | 0.3 |' in text
    assert '| speed.gemm_upsampling | None' not in text and '| speed.mixed_bfloat16 | None' not in text
    assert os.path.exists(os.path.join(summary.model_run_uri, train.TRAINED_SETTINGS_FILE))


def test_the_pushed_model_predicts_with_the_test_time_flip_in_every_signature(real_run):
    _, summary, _ = real_run
    model = tf.saved_model.load(summary.pushed_to)
    records = tf.constant(paths.read_gzip_records(paths.split_dir(summary.examples_uri, 'eval'), limit=4))
    images = model.signatures[signatures.TRANSFORM_FEATURES](examples=records)[keys.transformed_name(keys.IMAGE_KEY)]
    segment = signatures.segment_function(model)
    logits = segment(images).numpy()
    # Averaging with the mirror image's prediction makes the model mirror-symmetric, which no trained U-Net is.
    np.testing.assert_allclose(tf.reverse(segment(tf.reverse(images, [2])), [2]).numpy(), logits, atol=1e-4)
    served = model.signatures[signatures.SERVING_TF_EXAMPLE](examples=records)['logits'].numpy()
    np.testing.assert_allclose(served, logits, atol=1e-4)
    trained = run_summary.read_trained_settings(summary.model_run_uri)
    assert trained['test_time_flip'] and trained['class_weights'] == [2.0, 1.0, 2.0]


def test_the_test_time_flip_survives_the_tflite_conversion(real_run):
    _, summary, _ = real_run
    assert {name: v['passed'] for name, v in summary.tflite['variants'].items()} == {'float32': True, 'int8': True}, \
        summary.tflite['variants']
    segmenter = tflite.Segmenter(open(os.path.join(summary.pushed_to, 'tflite', 'float32.tflite'), 'rb').read())
    model = tf.saved_model.load(summary.pushed_to)
    records = tf.constant(paths.read_gzip_records(paths.split_dir(summary.examples_uri, 'eval'), limit=2))
    images = model.signatures[signatures.TRANSFORM_FEATURES](examples=records)[keys.transformed_name(keys.IMAGE_KEY)]
    for image in images.numpy():
        # The mean of a prediction and its mirror's is mirror-symmetric; a converter that dropped the flip is not.
        np.testing.assert_array_equal(segmenter.classes(image[:, ::-1]), segmenter.classes(image)[:, ::-1])
