"""Watching the served model for real: the server logs what it receives, the monitor compares it with the
served version's training data and evaluated predictions (stored in the version, or found through MLMD for a
version pushed without them), and only a warranted verdict starts a training run.

In-distribution requests (the photos of the scenario's data: a window of a few dozen requests measures noise
when compared with new photos, so these are the data's own) show no skew; a shifted batch (small
grayscale copies) skews and drifts in the image features the monitor names, and warrants retraining; the page's
facts show the verdict; a log directory that cannot be written never fails a request.
"""

import base64
import io
import json
import os
import shutil
import subprocess
import sys
import time
import urllib.request

import pytest
from PIL import Image

from modules import keys
from pipeline.local import run_summary
from tests.serving import browser

pytestmark = pytest.mark.e2e
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _start(model_root, *flags):
    port = browser.free_port()
    process = subprocess.Popen([sys.executable, '-m', 'serving', '--model_root', model_root, '--port', str(port),
                                *flags], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    base = f'http://127.0.0.1:{port}'
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(f'{base}/v1/models/petseg', timeout=5).read()
            return process, base
        except OSError:
            assert process.poll() is None, process.stdout.read().decode()
            time.sleep(0.5)
    raise TimeoutError('the server did not start')


def _predict(base, image, signature='serving_default'):
    body = json.dumps({'signature_name': signature,
                       'instances': [{'b64': base64.b64encode(image).decode()}]}).encode()
    request = urllib.request.Request(f'{base}/v1/models/petseg:predict', data=body,
                                     headers={'Content-Type': 'application/json'})
    with urllib.request.urlopen(request, timeout=120) as response:
        return response.status


def _photos(source_dir):
    """Every photo of the data the served model was trained and evaluated on."""
    stems = []
    for split in ('trainval', 'test'):
        with open(os.path.join(source_dir, 'annotations', f'{split}.txt')) as f:
            stems += [line.split()[0] for line in f if line.strip()]
    return [open(os.path.join(source_dir, 'images', f'{stem}.jpg'), 'rb').read() for stem in stems]


def _small_gray(image):
    data = io.BytesIO()
    Image.open(io.BytesIO(image)).convert('L').resize((48, 36)).save(data, 'JPEG')
    return data.getvalue()


def _monitor(watched, *flags, serving_dir=None):
    output_dir = watched['output_dir']
    done = subprocess.run([sys.executable, '-m', 'pipeline.monitor', '--log_dir', watched['log_dir'], '--output_dir',
                           output_dir, '--serving_dir', serving_dir or watched['serving_dir'], '--min_requests', '20',
                           *flags],
                          cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert done.returncode in (0, 3), done.stdout[-2000:] + done.stderr[-3000:]
    with open(os.path.join(output_dir, 'petseg', 'monitor', 'latest.json')) as f:
        return done.returncode, json.load(f), done.stdout


@pytest.fixture(scope='module')
def watched(scenario, tmp_path_factory):
    work = tmp_path_factory.mktemp('watched')
    output_dir, log_dir = str(work / 'outputs'), str(work / 'request_log')
    os.makedirs(output_dir)
    os.symlink(scenario.root, os.path.join(output_dir, 'petseg'))  # the monitor's <output_dir>/<name>
    verdict_path = os.path.join(output_dir, 'petseg', 'monitor', 'latest.json')
    process, base = _start(scenario.serving_dir, '--log_dir', log_dir, '--log_sample_rate', '1.0',
                           '--monitor_verdict', verdict_path)
    photos = _photos(scenario.source_dir)
    start = time.time()
    statuses = [_predict(base, photo, signature) for photo in photos for signature in
                ('serving_default', 'serving_full_size')]
    in_distribution = time.time()
    statuses += [_predict(base, _small_gray(photo), signature) for photo in photos for signature in
                 ('serving_default', 'serving_full_size')]
    shifted = time.time() + 1
    time.sleep(1.5)  # the writer thread flushes each record; give it the last ones
    yield {'base': base, 'output_dir': output_dir, 'log_dir': log_dir, 'statuses': statuses, 'photos': photos,
           'serving_dir': scenario.serving_dir,
           'times': (start, in_distribution, shifted), 'process': process}
    process.terminate()
    process.wait(30)
    shutil.rmtree(os.path.join(scenario.root, 'monitor'), ignore_errors=True)


def test_in_distribution_requests_show_no_skew(watched):
    start, in_distribution, _ = watched['times']
    code, verdict, stdout = _monitor(watched, '--since', str(start), '--until', str(in_distribution))
    assert watched['statuses'] and set(watched['statuses']) == {200}
    assert verdict['requests'] == 2 * len(watched['photos'])
    assert code == 0 and verdict['retrain'] is False and verdict['skewed'] == [], stdout
    assert set(verdict['skew']) >= set(keys.IMAGE_FEATURES) | {'pet_fraction'}, 'inputs vs training, predictions ' \
        'vs the evaluated ones'
    assert 'no retraining needed' in stdout
    assert "against the references in the version's files" in stdout


def test_a_shifted_batch_skews_and_drifts_and_warrants_retraining(watched):
    start, in_distribution, shifted = watched['times']
    code, verdict, stdout = _monitor(watched, '--since', str(in_distribution), '--until', str(shifted),
                                     '--previous_since', str(start))
    assert code == 3 and verdict['retrain'] is True, stdout
    assert set(keys.IMAGE_FEATURES) <= set(verdict['skewed']), verdict['skew']
    assert set(keys.IMAGE_FEATURES) <= set(verdict['drifted']), verdict['drift']
    assert 'skew in image_channels: 1.000 > 0.3' in verdict['reasons'] and 'RETRAINING WARRANTED' in stdout
    info = json.loads(urllib.request.urlopen(watched['base'] + '/petseg/info', timeout=60).read())
    assert info['monitor']['retrain'] is True and 'skew in image_channels' in ' '.join(info['monitor']['reasons'])


def test_a_version_pushed_without_its_references_is_judged_through_mlmd_lineage(watched, tmp_path):
    # The served version as versions were pushed before they carried the references.
    version = max(int(v) for v in os.listdir(watched['serving_dir']) if v.isdigit())
    serving_dir = str(tmp_path / 'serving_model')
    shutil.copytree(os.path.join(watched['serving_dir'], str(version)), os.path.join(serving_dir, str(version)),
                    ignore=shutil.ignore_patterns('monitor_*.csv'))
    start, in_distribution, shifted = watched['times']
    window = ('--since', str(in_distribution), '--until', str(shifted), '--previous_since', str(start))
    code, verdict, stdout = _monitor(watched, *window, serving_dir=serving_dir)
    assert 'against the references in MLMD lineage' in stdout
    assert code == 3 and verdict['retrain'] is True, stdout
    _, carried, _ = _monitor(watched, *window)
    assert verdict['skew'] == pytest.approx(carried['skew'], abs=1e-6), 'the stored references are the lineage\'s'


def _shifted_log(watched, log_dir):
    """The shifted batch's records alone, as a request log of its own (the pipeline's window ends when it runs)."""
    import tensorflow as tf
    from modules import request_log
    _, in_distribution, _ = watched['times']
    os.makedirs(log_dir)
    with tf.io.TFRecordWriter(os.path.join(log_dir, f'{request_log.FILE_PREFIX}shifted{request_log.FILE_SUFFIX}')) as out:
        for path in request_log.log_files(watched['log_dir']):
            for record in tf.data.TFRecordDataset(path).as_numpy_iterator():
                logged = tf.train.Example.FromString(record).features.feature[request_log.LOGGED_AT_KEY]
                if logged.int64_list.value[0] / 1000 >= in_distribution:
                    out.write(record)


def test_the_monitoring_pipeline_judges_from_the_references_the_version_carries(watched, scenario, tmp_path):
    """The step Vertex AI schedules, run by LocalDagRunner: no MLMD lineage, the served version's own files."""
    from ml_metadata.metadata_store import metadata_store
    from tfx import v1 as tfx
    from components.request_monitor import monitor
    from pipeline.pipeline import create_monitoring_pipeline
    served = os.path.join(scenario.serving_dir, str(max(int(v) for v in os.listdir(scenario.serving_dir)
                                                        if v.isdigit())))
    for name in monitor.REFERENCE_FILES.values():
        assert os.path.getsize(os.path.join(served, name)) > 100, f'the Pusher wrote {name} into the version'
    log_dir = str(tmp_path / 'shifted_log')
    _shifted_log(watched, log_dir)
    metadata = tfx.orchestration.metadata.sqlite_metadata_connection_config(str(tmp_path / 'metadata.db'))
    tfx.orchestration.LocalDagRunner().run(create_monitoring_pipeline(
        'petseg', pipeline_root=str(tmp_path / 'root'), log_dir=log_dir, serving_dir=scenario.serving_dir,
        window_hours=1, min_requests=20, metadata_connection_config=metadata))
    with open(tmp_path / 'root' / 'monitor' / 'latest.json') as f:
        verdict = json.load(f)
    assert verdict['requests'] == 2 * len(watched['photos']) and verdict['retrain'] is True, verdict['reasons']
    assert set(keys.IMAGE_FEATURES) <= set(verdict['skewed']), verdict['skew']
    assert verdict['version'] == int(os.path.basename(served))
    [artifact] = metadata_store.MetadataStore(metadata).get_artifacts_by_type('petseg.MonitorVerdict')
    assert artifact.custom_properties['retrain'].int_value == 1
    with open(os.path.join(artifact.uri, 'verdict.json')) as f:
        assert json.load(f)['skewed'] == verdict['skewed']


def test_the_runner_trains_only_when_the_verdict_warrants_it(watched, scenario, tmp_path):
    verdict = os.path.join(watched['output_dir'], 'petseg', 'monitor', 'latest.json')
    calm = tmp_path / 'calm.json'
    calm.write_text(json.dumps({'retrain': False, 'reasons': ['no feature skewed or drifted']}))
    quiet = subprocess.run([sys.executable, 'local_runner.py', '--preset', 'smoke', '--source_dir', scenario.source_dir,
                            '--output_dir', str(tmp_path / 'calm_outputs'), '--when_drift', str(calm)],
                           cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert quiet.returncode == 0 and 'Not run: the monitor does not warrant retraining' in quiet.stdout
    assert not (tmp_path / 'calm_outputs').exists()
    assert json.load(open(verdict))['retrain'] is True, 'the shifted batch\'s verdict (previous test)'
    spans = tmp_path / 'spans'
    spans.mkdir()
    os.symlink(scenario.source_dir, spans / 'span-1')
    os.symlink(scenario.source_dir, spans / 'span-2')  # the newest data, as pipeline.span_from_log leaves it
    retrained = subprocess.run([sys.executable, 'local_runner.py', '--preset', 'smoke', '--source_dir',
                                str(spans / 'span-{SPAN}'), '--output_dir', str(tmp_path / 'outputs'), '--when_drift',
                                verdict, '--tflite_variants'], cwd=ROOT, capture_output=True, text=True, timeout=1200)
    assert retrained.returncode == 0, retrained.stdout[-3000:] + retrained.stderr[-3000:]
    assert 'Retraining: ' in retrained.stdout and 'skew in image_channels: 1.000' in retrained.stdout
    assert 'Pusher' in retrained.stdout
    assert os.listdir(tmp_path / 'outputs' / 'petseg' / 'serving_model')
    summary = run_summary.read_run_summary(str(tmp_path / 'outputs' / 'petseg' / 'metadata.db'), 'petseg')
    assert summary.data_version['span'] == 2, 'trained on the newest span'


def test_a_log_directory_that_cannot_be_written_never_fails_a_request(scenario, tmp_path):
    blocked = tmp_path / 'a_file'
    blocked.write_text('not a directory')
    process, base = _start(scenario.serving_dir, '--log_dir', str(blocked / 'log'), '--log_sample_rate', '1.0')
    try:
        photo = _photos(scenario.source_dir)[0]
        assert [_predict(base, photo) for _ in range(5)] == [200] * 5
    finally:
        process.terminate()
        output = process.communicate(timeout=30)[0].decode()
    assert 'Request log: cannot write' in output

