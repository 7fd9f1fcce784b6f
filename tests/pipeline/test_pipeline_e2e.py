"""The whole pipeline with LocalDagRunner on generated images: five runs of a retraining story.

1. first run: trains, the absolute bounds bless it, version 1 is pushed;
2. same data, warm start and an impossible bound: trains from run 1's model, the push is blocked,
   version 1 is untouched;
3. new data: retrains, is compared with run 1's blessed model (run 2's was not blessed), pushes version 2;
4. unchanged rerun: data, Transform and Trainer come from the cache; the Evaluator reruns because the
   baseline moved to run 3's model, and that model, already published, is not pushed again;
5. unchanged rerun again: every component is served from the cache.
Then the pushed SavedModel is served raw image bytes, and the TFT layer is checked against Transform.
"""

import dataclasses
import hashlib
import io
import os

import ml_metadata as mlmd
import numpy as np
import pytest
import tensorflow as tf
from ml_metadata.proto import metadata_store_pb2
from PIL import Image
from tfx import v1 as tfx

from components.tfds_example_gen import sample_data
from modules import keys, predict
from pipeline import config as config_lib, platform, report, run_summary
from pipeline.pipeline import create_pipeline

pytestmark = pytest.mark.e2e

COMPONENTS = {'TfdsExampleGen', 'StatisticsGen', 'ImportSchemaGen', 'ExampleValidator', 'Transform', 'Trainer',
              'Evaluator', 'Pusher'}
RESOLVERS = {'latest_blessed_model_resolver', 'latest_model_resolver'}  # resolve inputs; never cached


def _tree_digest(root):
    digest = hashlib.sha256()
    for directory, _, files in sorted(os.walk(root)):
        for name in sorted(files):
            path = os.path.join(directory, name)
            digest.update(os.path.relpath(path, root).encode() + open(path, 'rb').read())
    return digest.hexdigest()


@dataclasses.dataclass
class Scenario:
    config: config_lib.PipelineConfig
    root: str
    source_dir: str
    serving_dir: str
    summaries: list
    versions_after: list
    version_one_digest_before: str
    version_one_digest_after: str


def _run(config, root, serving_dir):
    pipeline = create_pipeline(
        config,
        pipeline_root=os.path.join(root, 'pipeline_root'),
        serving_dir=serving_dir,
        metadata_connection_config=tfx.orchestration.metadata.sqlite_metadata_connection_config(
            os.path.join(root, 'metadata.db')),
        beam_pipeline_args=platform.local_beam_args(1),
    )
    tfx.orchestration.LocalDagRunner().run(pipeline)
    return run_summary.read_run_summary(os.path.join(root, 'metadata.db'), config.name)


def _with(config, **sections):
    return dataclasses.replace(config, **{name: dataclasses.replace(getattr(config, name), **values)
                                          for name, values in sections.items()})


@pytest.fixture(scope='module')
def scenario(tmp_path_factory):
    root = str(tmp_path_factory.mktemp('e2e'))
    source_dir, serving_dir = os.path.join(root, 'pets'), os.path.join(root, 'serving')
    sample_data.write_folders(source_dir, 14, 6, seed=2)
    config = _with(config_lib.preset('smoke'), data={'source_dir': source_dir, 'sample': None})
    summaries, versions = [], []

    summaries.append(_run(config, root, serving_dir))
    versions.append(sorted(os.listdir(serving_dir)))
    version_one = os.path.join(serving_dir, versions[0][0])
    digest_before = _tree_digest(version_one)

    # Warm start makes the Trainer rerun (its base model is a new input); the bound blocks the push.
    blocked = _with(config, evaluation={'min_pixel_accuracy': 1.0}, training={'warm_start': True})
    summaries.append(_run(blocked, root, serving_dir))
    versions.append(sorted(os.listdir(serving_dir)))

    sample_data.write_folders(source_dir, 18, 6, seed=2)  # four more training images
    summaries.append(_run(config, root, serving_dir))
    versions.append(sorted(os.listdir(serving_dir)))

    summaries.append(_run(config, root, serving_dir))
    versions.append(sorted(os.listdir(serving_dir)))
    summaries.append(_run(config, root, serving_dir))
    versions.append(sorted(os.listdir(serving_dir)))
    return Scenario(config, root, source_dir, serving_dir, summaries, versions, digest_before, _tree_digest(version_one))


def _states(summary):
    return {c.node_id: c.state for c in summary.components if c.node_id not in RESOLVERS}


def test_first_run_executes_every_component_blesses_and_pushes(scenario):
    first = scenario.summaries[0]
    assert {n for n, s in _states(first).items() if s == 'COMPLETE'} == COMPONENTS
    assert {c.node_id for c in first.components} - COMPONENTS == {'latest_blessed_model_resolver'}
    assert first.num_examples == {'train': 14, 'eval': 6}
    assert first.blessed is True and first.baseline_uri is None
    assert 'no blessed baseline yet' in first.blessing_reasons[0]
    assert first.pushed_to == os.path.join(scenario.serving_dir, scenario.versions_after[0][0])
    assert 0.0 <= first.candidate_metrics['pixel_accuracy'] <= 1.0 and 'iou_pet' in first.candidate_metrics


def test_schema_and_no_anomalies(scenario):
    anomalies_dirs = tf.io.gfile.glob(os.path.join(scenario.root, 'pipeline_root', 'ExampleValidator', 'anomalies', '*', 'Split-*'))
    from tensorflow_metadata.proto.v0 import anomalies_pb2
    assert sorted(os.path.basename(d) for d in anomalies_dirs) == sorted(['Split-eval', 'Split-train'] * 2), \
        'one validation per data version (runs 1 and 3), each of both splits'
    for split_dir in anomalies_dirs:
        anomalies = anomalies_pb2.Anomalies.FromString(open(os.path.join(split_dir, 'SchemaDiff.pb'), 'rb').read())
        assert not anomalies.anomaly_info, dict(anomalies.anomaly_info)


def test_impossible_threshold_blocks_push_and_keeps_version_one(scenario):
    blocked = scenario.summaries[1]
    assert _states(blocked)['Evaluator'] == 'COMPLETE' and _states(blocked)['TfdsExampleGen'] == 'CACHED'
    assert blocked.baseline_uri == scenario.summaries[0].model_uri
    assert blocked.blessed is False and blocked.pushed_to is None
    assert any(reason.startswith('pixel_accuracy') for reason in blocked.blessing_reasons)
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
    assert {n for n, s in _states(after_push).items() if s == 'COMPLETE'} == {'Evaluator', 'Pusher'}
    assert after_push.baseline_uri == scenario.summaries[2].model_uri == after_push.model_uri
    assert after_push.pushed_to == scenario.summaries[2].pushed_to, 'same model, same version'
    assert set(_states(steady).values()) == {'CACHED'} and set(_states(steady)) == COMPONENTS
    assert scenario.versions_after[4] == scenario.versions_after[3] == scenario.versions_after[2]


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
    assert outputs['mask'].shape == (2, keys.IMAGE_SIZE, keys.IMAGE_SIZE) and outputs['mask'].dtype == tf.uint8
    assert set(np.unique(outputs['mask'])) <= {0, 1, 2}
    np.testing.assert_allclose(tf.reduce_sum(outputs['probabilities'], -1), 1.0, atol=1e-4)


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
    spec = {keys.transformed_name(k): tf.io.FixedLenFeature([keys.IMAGE_SIZE, keys.IMAGE_SIZE, c], t)
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
        assert mask.shape == (keys.IMAGE_SIZE, keys.IMAGE_SIZE) and set(np.unique(mask)) <= {0, 1, 2}
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
