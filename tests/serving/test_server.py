"""The local server for real: `python -m serving` on a loopback port over the models the scenario pushed.

Every REST endpoint in both request forms, every bad-request class, 404s, a new version picked up without a
restart (a half-written one never), parallel requests, and the web page in headless Chromium.
"""

import asyncio
import base64
import concurrent.futures
import json
import os
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request

import numpy as np
import pytest
from PIL import Image

from components.serving_check import requests
from components.versioned_pusher import executor as pusher
from modules import paths, request_log
from tests.serving import browser

pytestmark = pytest.mark.e2e
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
JPEG = requests.typical_jpeg(500, 375)


def _call(url, body=None, method=None):
    data = body if isinstance(body, bytes) or body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method or ('POST' if data is not None else 'GET'),
                                     headers={'Content-Type': 'application/json'})
    try:
        with urllib.request.urlopen(request, timeout=120) as response:
            return response.status, json.loads(response.read()), dict(response.headers)
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b'{}'), dict(e.headers)


@pytest.fixture(scope='module')
def server(scenario, tmp_path_factory):
    root = str(tmp_path_factory.mktemp('serving') / 'petseg')
    shutil.copytree(scenario.serving_dir, root)
    port, grpc_port = browser.free_port(), browser.free_port()
    process = subprocess.Popen(
        [sys.executable, '-m', 'serving', '--model_root', root, '--port', str(port), '--poll_s', '0.5',
         '--max_body_mb', '4', '--max_instances', '8', '--grpc_port', str(grpc_port)],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    base = f'http://127.0.0.1:{port}'
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        try:
            if _call(f'{base}/v1/models/petseg')[0] == 200:
                break
        except (urllib.error.URLError, ConnectionError):
            pass
        assert process.poll() is None, process.stdout.read().decode()
        time.sleep(0.5)
    yield {'base': base, 'root': root, 'process': process, 'versions': paths.numbered_versions(root),
           'grpc': f'127.0.0.1:{grpc_port}'}
    process.terminate()
    process.wait(30)


def test_status_lists_the_versions_newest_first(server):
    status, body, _ = _call(f'{server["base"]}/v1/models/petseg')
    assert status == 200
    assert [v['version'] for v in body['model_version_status']][:2] == [str(v) for v in reversed(server['versions'])]
    assert body['model_version_status'][0]['state'] == 'AVAILABLE'
    older = server['versions'][0]
    status, body, _ = _call(f'{server["base"]}/v1/models/petseg/versions/{older}')
    assert status == 200 and body['model_version_status'][0]['version'] == str(older)


def test_info_gives_the_served_versions_provenance_and_its_model_card(server):
    status, info, _ = _call(f'{server["base"]}/petseg/info')
    newest = server['versions'][-1]
    assert status == 200 and info['model_card'] == f'/petseg/versions/{newest}/model_card.html'
    card = json.load(open(os.path.join(server['root'], str(newest), 'model_card.json')))
    assert info['provenance']['pushed_at'] == card['pushed_at'] and info['provenance']['dataset'] == 'oxford_iiit_pet'
    assert info['provenance']['mean_iou'] == pytest.approx(card['metrics'][1]['candidate'])
    request = urllib.request.Request(server['base'] + info['model_card'])
    with urllib.request.urlopen(request, timeout=60) as response:
        page = response.read().decode()
    assert response.status == 200 and f'version {newest}' in page and card['data']['fingerprint'] in page
    assert info['monitor'] is None, 'no --monitor_verdict given'
    for missing in ('/petseg/versions/1/model_card.html', '/petseg/versions/..%2F..%2Fetc/model_card.html'):
        assert _call(server['base'] + missing)[0] == 404


def test_metadata_lists_the_signatures(server):
    status, body, _ = _call(f'{server["base"]}/v1/models/petseg/metadata')
    signatures = body['metadata']['signature_def']['signature_def']
    assert status == 200 and body['model_spec']['version'] == str(server['versions'][-1])
    assert {'serving_default', 'serving_full_size', 'serving_tf_example', 'transform_features'} <= set(signatures)
    assert signatures['serving_default']['inputs']['image_bytes']['dtype'] == 'DT_STRING'
    assert signatures['serving_default']['outputs']['mask']['tensor_shape']['dim'][1]['size'] == '128'


@pytest.mark.parametrize('form', ['instances', 'inputs'])
def test_predict_in_both_forms(server, form):
    b64 = {'b64': base64.b64encode(JPEG).decode()}
    body = {'instances': [{'image_bytes': b64}, {'image_bytes': b64}]} if form == 'instances' else \
        {'inputs': {'image_bytes': [b64, b64]}}
    status, answer, headers = _call(f'{server["base"]}/v1/models/petseg:predict', body)
    assert status == 200, answer
    if form == 'instances':
        masks = np.asarray([p['mask'] for p in answer['predictions']])
    else:
        masks = np.asarray(answer['outputs']['mask'])
    assert masks.shape == (2, 128, 128) and set(np.unique(masks)) <= {0, 1, 2}
    assert headers['X-Model-Version'] == str(server['versions'][-1])


def test_full_size_signature_and_an_older_version(server):
    older = server['versions'][0]
    body = {'signature_name': 'serving_full_size', 'instances': [{'b64': base64.b64encode(JPEG).decode()}]}
    status, answer, headers = _call(f'{server["base"]}/v1/models/petseg/versions/{older}:predict', body)
    assert status == 200 and headers['X-Model-Version'] == str(older)
    prediction = answer['predictions'][0]
    assert (prediction['height'], prediction['width']) == (375, 500)
    assert np.asarray(prediction['mask']).shape == (375, 500)


@pytest.mark.parametrize('body, message', [
    (b'{not json', 'the body is not JSON'),
    (b'[' * 100_000 + b']' * 100_000, 'the body is not JSON (depth limit exceeded'),
    ({'signature_name': 'serving_default'}, 'exactly one of "instances"'),
    ({'instances': [{'b64': '%%%'}]}, 'instance 0: bad base64'),
    ({'instances': [{'b64': base64.b64encode(b'plain text').decode()}]}, 'instance 0: not an image'),
    ({'instances': [{'b64': ''}]}, 'instance 0: empty image'),
    ({'instances': [{'b64': base64.b64encode(JPEG).decode()}] * 9}, 'too many instances: 9 > 8'),
    ({'instances': [{'b64': base64.b64encode(JPEG[:len(JPEG) // 2]).decode()}]}, 'Invalid JPEG data'),
    ({'signature_name': 'nope', 'instances': [{'b64': 'eA=='}]}, "no signature 'nope'"),
    (b'{"instances": ["' + b'A' * (5 * 1024 * 1024) + b'"]}', 'over the limit of 4194304 bytes'),
])
def test_bad_requests_get_400_naming_the_problem(server, body, message):
    status, answer, _ = _call(f'{server["base"]}/v1/models/petseg:predict', body)
    assert status == 400 and message in answer['error'], answer
    assert _call(f'{server["base"]}/v1/models/petseg')[0] == 200, 'the server survives'


@pytest.mark.parametrize('case', [c for c in requests.bad_requests() if c.expect != requests.MASK],
                         ids=lambda case: case.name)
def test_the_bad_request_catalogue_is_refused_cleanly(server, case):
    body = {'instances': [{'b64': base64.b64encode(image).decode()} for image in case.images]}
    status, answer, _ = _call(f'{server["base"]}/v1/models/petseg:predict', body)
    assert status in ((400,) if case.expect == requests.ERROR else (200, 400)), answer
    assert status == 200 or answer['error']


@pytest.mark.parametrize('url', ['/v1/models/other', '/v1/models/petseg/versions/12345', '/v1/models/other:predict'])
def test_unknown_models_and_versions_are_404(server, url):
    method = 'POST' if url.endswith(':predict') else 'GET'
    status, answer, _ = _call(server['base'] + url, {'instances': [{'b64': 'eA=='}]} if method == 'POST' else None)
    assert status == 404 and 'Servable not found' in answer['error']


def test_parallel_requests_are_all_answered(server):
    body = {'instances': [{'b64': base64.b64encode(JPEG).decode()}]}
    with concurrent.futures.ThreadPoolExecutor(6) as pool:
        answers = list(pool.map(lambda _: _call(f'{server["base"]}/v1/models/petseg:predict', body)[0], range(12)))
    assert answers == [200] * 12


def test_a_new_push_is_picked_up_without_a_restart_and_a_half_written_one_never(server):
    newest = os.path.join(server['root'], str(server['versions'][-1]))
    half = os.path.join(server['root'], str(server['versions'][-1] + 50))
    os.makedirs(os.path.join(half, 'variables'))  # a copy in progress by some other tool: no saved_model.pb yet
    card = {name: open(os.path.join(newest, name)).read() for name in ('model_card.md', 'model_card.html', 'model_card.json')}
    staged = pusher.publish(newest, server['root'], now=server['versions'][-1] + 100, card=lambda version: card)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        versions = [v['version'] for v in _call(f'{server["base"]}/v1/models/petseg')[1]['model_version_status']]
        if versions[0] == os.path.basename(staged):
            break
        time.sleep(0.5)
    assert versions[0] == os.path.basename(staged) and os.path.basename(half) not in versions
    _, _, headers = _call(f'{server["base"]}/v1/models/petseg:predict',
                          {'instances': [{'b64': base64.b64encode(JPEG).decode()}]})
    assert headers['X-Model-Version'] == os.path.basename(staged)
    logged = [name for name in os.listdir(ROOT) + [f for _, _, files in os.walk(server['root']) for f in files]
              if name.startswith(request_log.FILE_PREFIX)]
    assert logged == [], 'a server without --log_dir logs nothing'


@pytest.mark.skipif(browser.find_chromium() is None,
                    reason='no Chromium: `apt-get install chromium` (make test does it on CI) to run the page test')
def test_the_web_page_shows_the_overlay_at_the_images_size(server, tmp_path):
    photo = tmp_path / 'pet.jpg'
    photo.write_bytes(requests.typical_jpeg(437, 311, seed=5))
    screenshot = tmp_path / 'page.png'

    async def drive():
        async with browser.Browser() as page:
            await page.open(server['base'] + '/')
            await page.wait_for("document.getElementById('model').textContent.includes('version')")
            await page.upload('#file', str(photo))
            size = await page.wait_for("document.getElementById('overlay').naturalWidth ? "
                                       "document.getElementById('overlay').naturalWidth + 'x' + "
                                       "document.getElementById('overlay').naturalHeight : ''")
            facts = await page.evaluate("document.getElementById('facts').textContent")
            model = await page.evaluate("document.getElementById('model').textContent + ' -> ' + "
                                        "document.getElementById('model-card').getAttribute('href')")
            await page.screenshot(str(screenshot))
            return size, facts, model

    size, facts, model = asyncio.run(drive())
    assert 'trained on oxford_iiit_pet' in model and 'mean IoU' in model and 'model card -> /petseg/versions/' in model
    assert size == '437x311'
    assert 'pet.jpg: 437x311' in facts and 'pet ' in facts and 'version' in facts and ' ms' in facts
    with Image.open(screenshot) as shot:
        assert shot.format == 'PNG' and shot.size[0] >= 1000
    if os.environ.get('PETSEG_SCREENSHOT'):
        shutil.copy(screenshot, os.environ['PETSEG_SCREENSHOT'])


def test_grpc_prediction_service_answers_like_tf_serving(server):
    import grpc
    import tensorflow as tf
    from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

    with grpc.insecure_channel(server['grpc']) as channel:
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        request = predict_pb2.PredictRequest()
        request.model_spec.name = 'petseg'
        request.model_spec.signature_name = 'serving_default'
        request.inputs['image_bytes'].CopyFrom(tf.make_tensor_proto([JPEG]))
        response = stub.Predict(request, timeout=120)
        mask = tf.make_ndarray(response.outputs['mask'])
        newest = int(_call(f'{server["base"]}/v1/models/petseg')[1]['model_version_status'][0]['version'])
        assert mask.shape == (1, 128, 128) and response.model_spec.version.value == newest
        request.inputs['image_bytes'].CopyFrom(tf.make_tensor_proto([b'not an image']))
        with pytest.raises(grpc.RpcError) as error:
            stub.Predict(request, timeout=120)
        assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        request.model_spec.name = 'other'
        with pytest.raises(grpc.RpcError) as error:
            stub.Predict(request, timeout=120)
        assert error.value.code() == grpc.StatusCode.NOT_FOUND
