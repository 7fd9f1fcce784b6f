"""The whole pipeline with LocalDagRunner on generated images: six runs of a retraining story (tests/scenario.py).

1. first run: trains, the absolute bounds bless it, version 1 is pushed;
2. same data, warm start and an impossible bound: trains from run 1's model, the push is blocked,
   version 1 is untouched;
3. new data: retrains, is compared with run 1's blessed model (run 2's was not blessed), pushes version 2;
4. unchanged rerun: data, Transform and Trainer come from the cache; the Evaluator reruns because the
   baseline moved to run 3's model, and that model, already published, is not pushed again;
5. unchanged rerun again: every component is served from the cache;
6. the same model with an impossible serving latency budget: the ServingCheck does not bless it, nothing is
   pushed and the published versions stay byte-identical.
Every run's Evaluator scores species and breed slices, the FullSizeEvaluator scores at each image's own size,
every pushed version carries its model card, and the run history lists the six runs.
Then the pushed SavedModel is served raw image bytes (every class of the bad-request catalogue one by one,
full-size masks), the ServingCheck executor judges deliberately broken SavedModels, and the TFT layer is
checked against Transform.
"""

import csv
import hashlib
import io
import json
import os
import subprocess
import sys

import ml_metadata as mlmd
import numpy as np
import pytest
import tensorflow as tf
from ml_metadata.proto import metadata_store_pb2
from PIL import Image
from tfx import v1 as tfx
from tfx.types import standard_artifacts

from components.serving_check import executor as serving_check_executor, probe, requests
from components.tfds_example_gen import sample_data
from components.full_size_eval import executor as full_size_executor
from components.versioned_pusher import model_card
from modules import classes, keys, paths, predict, signatures
from pipeline.local import report, run_summary

pytestmark = pytest.mark.e2e
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

COMPONENTS = {'TfdsExampleGen', 'StatisticsGen', 'ImportSchemaGen', 'ExampleValidator', 'Transform', 'Trainer',
              'Evaluator', 'FullSizeEvaluator', 'ServingCheck', 'TfliteExport', 'Pusher'}
RESOLVERS = {'latest_blessed_model_resolver', 'latest_model_resolver', 'previous_statistics_resolver'}  # never cached


def _states(summary):
    return {c.node_id: c.state for c in summary.components if c.node_id not in RESOLVERS}


def test_first_run_executes_every_component_blesses_and_pushes(scenario):
    first = scenario.summaries[0]
    assert {n for n, s in _states(first).items() if s == 'COMPLETE'} == COMPONENTS
    assert {c.node_id for c in first.components} - COMPONENTS == {'latest_blessed_model_resolver',
                                                                  'previous_statistics_resolver'}
    assert first.num_examples == {'train': 14, 'eval': 6}
    assert first.blessed is True and first.baseline_uri is None
    assert first.blessing_reasons[-1] == 'no blessed baseline yet, so absolute bounds alone decide'
    assert any(r.startswith('pixel_accuracy ') and r.endswith('>= bound 0.0000 (ok)') for r in first.blessing_reasons)
    assert first.pushed_to == os.path.join(scenario.serving_dir, scenario.versions_after[0][0])
    assert 0.0 <= first.candidate_metrics['pixel_accuracy'] <= 1.0 and 'iou_pet' in first.candidate_metrics


def test_schema_and_no_anomalies(scenario):
    anomalies_dirs = tf.io.gfile.glob(os.path.join(scenario.root, 'pipeline_root', 'ExampleValidator', 'anomalies', '*', 'Split-*'))
    from tensorflow_metadata.proto.v0 import anomalies_pb2
    assert sorted(os.path.basename(d) for d in anomalies_dirs) == sorted(['Split-eval', 'Split-train'] * 4), \
        'runs 1 and 3 validate new data; runs 2 and 4 once more against the new previous statistics; run 5 is cached'
    for split_dir in anomalies_dirs:
        anomalies = anomalies_pb2.Anomalies.FromString(open(os.path.join(split_dir, 'SchemaDiff.pb'), 'rb').read())
        assert not anomalies.anomaly_info, dict(anomalies.anomaly_info)


def test_impossible_threshold_blocks_push_and_keeps_version_one(scenario):
    blocked = scenario.summaries[1]
    assert _states(blocked)['Evaluator'] == 'COMPLETE' and _states(blocked)['TfdsExampleGen'] == 'CACHED'
    assert blocked.baseline_uri == scenario.summaries[0].model_uri
    assert blocked.blessed is False and blocked.pushed_to is None
    accuracy = blocked.candidate_metrics['pixel_accuracy']
    assert f'pixel_accuracy {accuracy:.4f} < bound 1.0000 (FAILED)' in blocked.blessing_reasons
    baseline = blocked.baseline_metrics['pixel_accuracy']
    regression = [r for r in blocked.blessing_reasons if r.startswith(f'pixel_accuracy {accuracy:.4f}') and 'baseline' in r]
    assert regression and f'baseline {baseline:.4f} - tolerance 1.0000' in regression[0], blocked.blessing_reasons
    table = run_summary.format_table(blocked)
    assert '**NOT BLESSED**: ' in table and '(FAILED)' in table and 'vs baseline: ;' not in table
    assert scenario.versions_after[1] == scenario.versions_after[0]
    assert scenario.version_one_digest_after == scenario.version_one_digest_before


def test_new_data_retrains_against_blessed_baseline_and_pushes_version_two(scenario):
    # Run 2's model was not blessed, so run 1's stays the baseline.
    first, retrained = scenario.summaries[0], scenario.summaries[2]
    assert _states(retrained)['TfdsExampleGen'] == 'COMPLETE', 'changed files must miss the cache'
    assert retrained.num_examples == {'train': 18, 'eval': 6}
    assert retrained.baseline_uri == first.model_uri, "compared with run 1's blessed model"
    assert set(retrained.baseline_metrics) == set(retrained.candidate_metrics)
    assert retrained.blessed is True and retrained.pushed_to is not None
    assert retrained.drift == {}, 'four more images of the same kind are no drift'
    assert len(scenario.versions_after[2]) == 2 and scenario.versions_after[2][0] == scenario.versions_after[0][0]


def test_warm_start_feeds_the_previous_model_to_trainer(scenario):
    store = mlmd.MetadataStore(tfx.orchestration.metadata.sqlite_metadata_connection_config(
        os.path.join(scenario.root, 'metadata.db')))
    trainer_runs = [e for e in store.get_executions() if e.type.endswith('Trainer') and
                    e.last_known_state == metadata_store_pb2.Execution.COMPLETE]
    assert len(trainer_runs) == 3, 'runs 1, 2 (warm start) and 3 (new data) train; runs 4 and 5 are cached'
    base_models = []
    for execution in trainer_runs:
        for event in store.get_events_by_execution_ids([execution.id]):
            if event.type == metadata_store_pb2.Event.INPUT and event.path.steps[0].key == 'base_model':
                base_models.append(store.get_artifacts_by_id([event.artifact_id])[0].uri)
    assert base_models == [scenario.summaries[0].model_uri], "only run 2 warm-starts, from run 1's model"


def test_unchanged_reruns_are_served_from_cache_and_push_nothing_new(scenario):
    after_push, steady = scenario.summaries[3], scenario.summaries[4]
    assert {n for n, s in _states(after_push).items() if s == 'COMPLETE'} == {'ExampleValidator', 'Evaluator',
                                                                              'ServingCheck', 'Pusher'}
    assert after_push.baseline_uri == scenario.summaries[2].model_uri == after_push.model_uri
    assert after_push.pushed_to == scenario.summaries[2].pushed_to, 'same model, same version'
    assert set(_states(steady).values()) == {'CACHED'} and set(_states(steady)) == COMPONENTS
    assert scenario.versions_after[4] == scenario.versions_after[3] == scenario.versions_after[2]


def test_first_run_pushes_the_tflite_variants_that_met_their_targets(scenario):
    first = scenario.summaries[0]
    report = first.tflite
    assert list(report['variants']) == ['float32', 'float16', 'int8'] and report['eval_images'] == 6
    assert report['saved_model']['pixel_accuracy'] == pytest.approx(first.candidate_metrics['pixel_accuracy'], abs=1e-4), \
        'the SavedModel scored in TfliteExport is the model the Evaluator scored'
    passed = [name for name, v in report['variants'].items() if v['passed']]
    for name, variant in report['variants'].items():
        assert variant['size_mb'] > 0 and variant['latency_ms']['1_thread'] > 0 and variant['latency_ms']['2_threads'] > 0
        assert variant['passed'] == (not variant['reasons'])
    assert report['variants']['int8']['size_mb'] <= report['variants']['float32']['size_mb'] / 3
    pushed = sorted(os.listdir(os.path.join(first.pushed_to, 'tflite')))
    assert pushed == sorted([f'{v}.tflite' for v in passed] + [f'{v}.json' for v in passed] + ['tflite.json'])
    table = run_summary.format_table(first)
    assert '| variant | size MB | pixel accuracy |' in table and '| float32 | 25.' in table
    assert scenario.summaries[2].tflite and scenario.summaries[2].pushed_to, 'run 3 converts and pushes its model'
    assert os.path.isdir(os.path.join(scenario.summaries[2].pushed_to, 'tflite'))
    assert 'TfliteExport' not in _states(scenario.summaries[1]), 'run 2 has the TFLite export turned off'


def test_first_run_serving_check_blesses_with_its_figures(scenario):
    check = scenario.summaries[0].serving_check
    assert check['blessed'] is True and check['reasons'] == []
    figures = check['figures']
    assert figures['eval_examples'] == 6 and 0 < figures['p50_ms'] <= figures['p99_ms'] < 2000
    assert abs(figures['served_pixel_accuracy'] - scenario.summaries[0].candidate_metrics['pixel_accuracy']) <= 0.005
    assert figures['evaluator_pixel_accuracy'] == pytest.approx(scenario.summaries[0].candidate_metrics['pixel_accuracy']), \
        "the whole eval split was served, so the Evaluator's own figure was compared"
    assert figures['bad_requests']['text'] == 'error' and figures['bad_requests']['animated GIF'] == 'mask'
    assert 'Serving check: SERVES: p50' in run_summary.format_table(scenario.summaries[0])


def test_a_model_that_fails_the_serving_check_is_never_pushed(scenario):
    too_slow = scenario.summaries[5]
    states = _states(too_slow)
    assert states['ServingCheck'] == 'COMPLETE' and states['Trainer'] == 'CACHED' and states['Evaluator'] == 'CACHED'
    assert too_slow.blessed is True, 'the Evaluator still blesses it; the serving check alone blocks the push'
    assert too_slow.serving_check['blessed'] is False
    assert too_slow.serving_check['reasons'][0].startswith('p99 latency') and 'over the budget of 0.0 ms' in \
        too_slow.serving_check['reasons'][0]
    assert too_slow.pushed_to is None
    assert scenario.versions_after[5] == scenario.versions_after[4]
    assert scenario.digests_after_six == scenario.digests_before_six, 'published versions are byte-identical'
    assert 'DOES NOT SERVE: p99 latency' in run_summary.format_table(too_slow)


def _png(array):
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format='PNG')
    return buffer.getvalue()


@pytest.fixture(scope='module')
def served(scenario):
    return tf.saved_model.load(scenario.summaries[2].pushed_to)


def test_pushed_model_serves_raw_jpeg_and_png_of_any_size(served):
    small, _, _ = sample_data.make_example(seed=9, index=0)
    large, _, _ = sample_data.make_example(seed=9, index=1)
    requests = [sample_data.encode_jpeg(small), _png(large[:210, :333])]
    outputs = served.signatures['serving_default'](image_bytes=tf.constant(requests))
    assert outputs['mask'].shape == (2, classes.DEFAULT_IMAGE_SIZE, classes.DEFAULT_IMAGE_SIZE) and outputs['mask'].dtype == tf.uint8
    assert set(np.unique(outputs['mask'])) <= {0, 1, 2}
    np.testing.assert_allclose(tf.reduce_sum(outputs['probabilities'], -1), 1.0, atol=1e-4)


@pytest.mark.parametrize('case', requests.bad_requests(), ids=lambda case: case.name)
def test_every_bad_request_gives_a_valid_mask_or_a_clean_error(served, case):
    try:
        outputs = served.signatures['serving_default'](image_bytes=tf.constant(case.images))
    except tf.errors.InvalidArgumentError:
        assert case.expect in (requests.ERROR, requests.EITHER), f'{case.name} must give a mask ({case.why})'
        return
    assert case.expect in (requests.MASK, requests.EITHER), f'{case.name} must fail ({case.why}), not succeed silently'
    assert probe.mask_problem(outputs, len(case.images), classes.DEFAULT_IMAGE_SIZE,
                              classes.OXFORD_IIIT_PET.num_classes) is None


@pytest.mark.parametrize('width, height', [(500, 375), (375, 500), (1000, 200), (64, 64), (33, 257)])
def test_full_size_masks_have_the_request_images_size(served, width, height):
    images = [requests.typical_jpeg(width, height), requests.typical_jpeg(120, 90, seed=3)]
    outputs = served.signatures['serving_full_size'](image_bytes=tf.constant(images))
    assert outputs['height'].numpy().tolist() == [height, 90] and outputs['width'].numpy().tolist() == [width, 120]
    mask = outputs['mask'].numpy()
    assert mask.shape == (2, max(height, 90), max(width, 120))
    assert set(np.unique(mask[0, :height, :width])) <= {0, 1, 2}
    assert set(np.unique(mask[1, :90, :120])) <= {0, 1, 2} and (mask[1, 90:, :] == signatures.PADDING_CLASS).all()


def _saved_model_without(served, path, replace=None):
    kept = {name: fn for name, fn in served.signatures.items() if name != 'serving_default'}
    kept.update(replace or {})
    tf.saved_model.save(served, os.path.join(path, 'Format-Serving'), signatures=kept)
    return path


def _run_serving_check(model_dir, examples_uri, blessing_dir):
    model, examples, blessing = standard_artifacts.Model(), standard_artifacts.Examples(), standard_artifacts.InfraBlessing()
    model.uri, examples.uri, blessing.uri = str(model_dir), examples_uri, str(blessing_dir)
    serving_check_executor.Executor().Do(
        {'model': [model], 'examples': [examples]}, {'blessing': [blessing]},
        {'max_examples': 50, 'latency_calls': 50, 'latency_budget_ms': 5000.0, 'accuracy_tolerance': 0.005,
         'timeout_s': 600})
    return blessing


def test_serving_check_executor_blesses_the_trained_model(scenario, tmp_path):
    model_uri = scenario.summaries[2].model_uri
    blessing = _run_serving_check(model_uri, scenario.summaries[2].examples_uri, tmp_path / 'blessing')
    assert blessing.get_int_custom_property('blessed') == 1
    assert os.path.exists(tmp_path / 'blessing' / 'INFRA_BLESSED')
    report = json.load(open(tmp_path / 'blessing' / 'serving_check.json'))
    assert report['blessed'] and report['figures']['eval_examples'] == 6


def test_serving_check_refuses_a_model_without_serving_default(scenario, served, tmp_path):
    broken = _saved_model_without(served, str(tmp_path / 'no_default'))
    blessing = _run_serving_check(broken, scenario.summaries[2].examples_uri, tmp_path / 'blessing')
    assert blessing.get_int_custom_property('blessed') == 0
    assert os.path.exists(tmp_path / 'blessing' / 'INFRA_NOT_BLESSED')
    assert json.loads(blessing.get_string_custom_property('reasons')) == ['signature serving_default: missing']


def test_serving_check_refuses_a_signature_with_the_wrong_shape(scenario, served, tmp_path):
    serve = served.signatures['serving_default']

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name='image_bytes')])
    def half_mask(image_bytes):
        outputs = serve(image_bytes=image_bytes)
        return {'mask': outputs['mask'][:, :64, :64], 'probabilities': outputs['probabilities'][:, :64, :64]}

    broken = _saved_model_without(served, str(tmp_path / 'half'), {'serving_default': half_mask})
    blessing = _run_serving_check(broken, scenario.summaries[2].examples_uri, tmp_path / 'blessing')
    assert blessing.get_int_custom_property('blessed') == 0
    reasons = json.loads(blessing.get_string_custom_property('reasons'))
    assert reasons[0].startswith('signature serving_default: output mask: uint8 [None, 64, 64] != uint8 [None, 128, 128]')


@pytest.mark.parametrize('payload, message', [
    (b'', 'empty image bytes'),
    (b'<html>oops</html>', 'Unknown image file format'),
    ('truncated', 'Invalid JPEG data'),
])
def test_bad_requests_fail_clearly(served, payload, message):
    if payload == 'truncated':
        jpeg = sample_data.encode_jpeg(sample_data.make_example(seed=9, index=2)[0])
        payload = jpeg[: len(jpeg) // 2]
    with pytest.raises(tf.errors.InvalidArgumentError, match=message):
        served.signatures['serving_default'](image_bytes=tf.constant([payload]))


def test_tft_layer_matches_transform_output(scenario, served):
    pipeline_root = os.path.join(scenario.root, 'pipeline_root')
    newest = lambda pattern: max(tf.io.gfile.glob(pattern), key=lambda path: int(os.path.basename(path)))  # noqa: E731
    transform_dir = newest(os.path.join(pipeline_root, 'Transform', 'transformed_examples', '*'))
    raw_dir = scenario.summaries[2].examples_uri

    def records(directory):
        files = tf.io.gfile.glob(os.path.join(directory, 'Split-eval', '*.gz'))
        return [r.numpy() for r in tf.data.TFRecordDataset(files, compression_type='GZIP')]

    through_layer = served.signatures['transform_features'](examples=tf.constant(records(raw_dir)))
    spec = {keys.transformed_name(k): tf.io.FixedLenFeature([classes.DEFAULT_IMAGE_SIZE, classes.DEFAULT_IMAGE_SIZE, c], t)
            for k, c, t in ((keys.IMAGE_KEY, 3, tf.float32), (keys.MASK_KEY, 1, tf.int64))}
    from_transform = tf.io.parse_example(records(transform_dir), spec)
    for name in spec:
        layer_rows = {hashlib.sha1(row.tobytes()).hexdigest() for row in through_layer[name].numpy()}
        transform_rows = {hashlib.sha1(row.tobytes()).hexdigest() for row in from_transform[name].numpy()}
        assert layer_rows == transform_rows, f'{name}: serving preprocessing differs from Transform'


def test_prediction_cli_on_files_directories_globs_and_a_bad_file(scenario, tmp_path, capsys):
    images = tmp_path / 'images'
    images.mkdir()
    sizes = {}
    for index, suffix in enumerate(('jpg', 'jpg', 'png')):
        array, _, _ = sample_data.make_example(seed=11, index=index)
        Image.fromarray(array).save(images / f'pet{index}.{suffix}')
        sizes[f'pet{index}'] = (array.shape[1], array.shape[0])
    (images / 'broken.jpg').write_bytes(b'not an image')
    extra = tmp_path / 'extra.jpg'
    Image.fromarray(sample_data.make_example(seed=11, index=7)[0]).save(extra)
    sizes['extra'] = Image.open(extra).size
    out = tmp_path / 'out'

    code = predict.main([str(images), str(tmp_path / 'ext*.jpg'), '--model', scenario.serving_dir, '--out', str(out)])

    printed = capsys.readouterr().out
    assert code == 1, 'a skipped file makes the exit code 1'
    assert 'SKIPPED' in printed and 'broken.jpg: not an image file' in printed
    assert f'Model: {os.path.join(scenario.serving_dir, scenario.versions_after[-1][-1])}' in printed
    for stem, size in sizes.items():
        mask = np.asarray(Image.open(out / f'{stem}_mask.png'))
        assert mask.shape == (size[1], size[0]) and set(np.unique(mask)) <= {0, 1, 2}, 'masks at the image size'
        assert Image.open(out / f'{stem}_overlay.png').size == size
        assert Image.open(out / f'{stem}_mask_color.png').mode == 'RGB'
        assert f'{stem}' in printed and 'pet ' in printed and 'border' in printed
    assert not (out / 'broken_mask.png').exists()


def test_run_report_with_pictures(scenario, tmp_path):
    path = report.write_run_report(scenario.summaries[2], scenario.config, str(tmp_path))
    text = open(path).read()
    for expected in ('pixel_accuracy', 'mean_iou', 'iou_pet', 'candidate', 'baseline', 'BLESSED', 'Trainer',
                     'train 18', 'eval 6', 'learning_rate', report.CURVES_FILE, report.PREDICTIONS_FILE):
        assert expected in text, expected
    for picture in (report.CURVES_FILE, report.PREDICTIONS_FILE):
        with Image.open(tmp_path / picture) as image:
            assert image.format == 'PNG' and min(image.size) > 200


def test_tensorboard_gets_prediction_images(scenario):
    event_files = tf.io.gfile.glob(os.path.join(scenario.summaries[2].model_run_uri, 'images', 'events.out.tfevents.*'))
    tags = {value.tag for path in event_files for event in tf.compat.v1.train.summary_iterator(path)
            for value in event.summary.value}
    assert 'eval_predictions' in tags


def test_the_console_reads_only_the_finished_components_outputs(scenario):
    metadata = os.path.join(scenario.root, 'metadata.db')
    full = run_summary.read_run_summary(metadata, scenario.config.name)
    pusher_only = run_summary.read_run_summary(metadata, scenario.config.name, only=('Pusher',))
    assert pusher_only.components == full.components, 'every component and its state, whatever is read'
    assert full.candidate_metrics and full.num_examples and full.serving_check
    assert not pusher_only.candidate_metrics and not pusher_only.num_examples and not pusher_only.serving_check
    for node in ('TfdsExampleGen', 'Trainer', 'Evaluator', 'ServingCheck', 'TfliteExport', 'Pusher'):
        _, figure = run_summary.describe_node(metadata, scenario.config.name, node)
        assert figure == run_summary.component_figure(full, node), node
        assert figure or node in ('Trainer', 'TfliteExport'), f'{node} has a figure in every run'


def _eval_feature_counts(summary, key):
    counts = {}
    for record in paths.read_gzip_records(paths.split_dir(summary.examples_uri, 'eval')):
        value = tf.train.Example.FromString(record).features.feature[key].int64_list.value[0]
        counts[f'{key}={value}'] = counts.get(f'{key}={value}', 0) + 1
    return counts


def test_the_evaluator_scores_every_species_and_breed_slice_with_its_count(scenario):
    first = scenario.summaries[0]
    expected = {**_eval_feature_counts(first, keys.SPECIES_KEY), **_eval_feature_counts(first, keys.LABEL_KEY)}
    assert len(expected) > 2, 'the eval split has both species and several breeds'
    assert {name: int(scores['candidate']['example_count']) for name, scores in first.slices.items()} == expected
    assert all({'pixel_accuracy', 'mean_iou', 'iou_pet'} <= set(s['candidate']) for s in first.slices.values())
    worst = run_summary.worst_slices(first)
    large = min(10, max(expected.values()))  # slices of fewer images are not named as the worst
    assert first.slices[worst[0]]['candidate']['mean_iou'] == min(
        s['candidate']['mean_iou'] for s in first.slices.values() if s['candidate']['example_count'] >= large)
    assert all(expected[name] >= large for name in worst)
    assert 'worst slices: ' + worst[0] in run_summary.component_figure(first, 'Evaluator')
    # Run 3 compares with run 1's model on every slice too.
    assert all('baseline' in scores for scores in scenario.summaries[2].slices.values())


def test_the_full_size_evaluation_scores_every_eval_image_and_names_the_worst(scenario):
    first = scenario.summaries[0]
    figures = first.full_size['metrics']
    assert figures['images'] == 6 and {'pixel_accuracy', 'mean_iou', 'mean_boundary_iou', 'boundary_iou_border'} <= set(figures)
    rows = list(csv.DictReader(open(os.path.join(first.full_size_uri, full_size_executor.PER_IMAGE_FILE))))
    ious = sorted((float(row['mean_iou']), row['file_name']) for row in rows)
    assert len(rows) == 6 and all(0 <= float(row['pet_fraction']) <= 1 for row in rows)
    assert [w['file_name'] for w in first.full_size['worst']] == [name for _, name in ious[:6]]
    assert 'at their own size; worst: ' + first.full_size['worst'][0]['file_name'] in \
        run_summary.component_figure(first, 'FullSizeEvaluator')


def test_every_pushed_version_has_its_model_card_with_the_data_it_was_trained_on(scenario):
    pushers = {summary.pushed_to: summary for summary in scenario.summaries if summary.pushed_to}
    assert len(pushers) == 2
    for version_dir, summary in pushers.items():
        card = open(os.path.join(version_dir, model_card.MARKDOWN_FILE)).read()
        assert summary.data_version['fingerprint'] and summary.data_version['fingerprint'] in card
        assert f'eval 6, train {summary.num_examples["train"]}' in card
        assert 'research purposes only' in card and 'The eval split has 6 images' in card
        assert f'| pixel_accuracy | {summary.candidate_metrics["pixel_accuracy"]:.4f} |' in card
        assert '| speed.mixed_bfloat16 |' in card and '### Slices (worst mean IoU first)' in card
        assert 'Evaluation at each image\'s own size' in card
        html = open(os.path.join(version_dir, model_card.HTML_FILE)).read()
        assert html.startswith('<!doctype html>') and summary.data_version['fingerprint'] in html
    first, third = scenario.summaries[0], scenario.summaries[2]
    assert first.data_version['fingerprint'] != third.data_version['fingerprint'], 'run 3 read new data'


def test_the_run_history_lists_the_six_runs_with_their_verdicts(scenario, tmp_path):
    os.symlink(scenario.root, tmp_path / 'petseg')
    done = subprocess.run([sys.executable, '-m', 'pipeline.runs', '--output_dir', str(tmp_path)], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    rows = [line.strip('| ').split(' | ') for line in done.stdout.splitlines()
            if line.startswith('| ') and line[2].isdigit()]
    assert len(rows) == 6
    verdicts = [row[5] for row in rows]
    assert verdicts[0] == verdicts[2] == verdicts[3] == verdicts[4] == 'BLESSED'
    assert verdicts[1].startswith('NOT BLESSED: pixel_accuracy') and 'bound 1.0000 (FAILED)' in verdicts[1]
    assert verdicts[5].startswith('BLESSED; DOES NOT SERVE: p99 latency')
    pushed = [row[6] for row in rows]
    versions = scenario.versions_after[-1]
    assert pushed == [versions[0], '-', versions[1], versions[1], versions[1], '-']
    data = [row[2] for row in rows]
    assert data[0] == data[1] != data[2] == data[3], 'run 3 read a new data version, runs 4 and 5 reused it'
    assert os.path.getsize(tmp_path / 'petseg' / 'runs.png') > 1000
