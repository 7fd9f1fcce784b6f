"""TF Serving's request and answer formats, without a model: rows and columns, b64, and named bad requests."""

import base64
import json

import numpy as np
import pytest
import tensorflow as tf

from components.serving_check import requests
from serving import rest

JPEG = requests.typical_jpeg(40, 30)
B64 = base64.b64encode(JPEG).decode()


@pytest.mark.parametrize('body', [
    {'instances': [{'image_bytes': {'b64': B64}}, {'image_bytes': {'b64': B64}}]},
    {'instances': [{'b64': B64}, {'b64': B64}]},
    {'inputs': {'image_bytes': [{'b64': B64}, {'b64': B64}]}},
    {'inputs': [{'b64': B64}, {'b64': B64}]},
])
def test_both_request_forms_give_the_image_bytes(body):
    values, rows = rest.parse_predict(body, ['image_bytes'], max_instances=4)
    assert values == {'image_bytes': [JPEG, JPEG]}
    assert rows == ('instances' in body)


@pytest.mark.parametrize('body, signature', [
    ({'instances': [{'b64': B64}]}, 'serving_default'),
    ({'signature_name': '', 'instances': [{'b64': B64}]}, 'serving_default'),
    ({'signature_name': 'serving_image', 'inputs': [{'b64': B64}]}, 'serving_image'),
    ([1, 2], 'serving_default'),
])
def test_the_requested_signature_defaults_like_tf_serving(body, signature):
    assert rest.requested_signature(body) == signature


@pytest.mark.parametrize('body, message', [
    ([1, 2], 'the body must be a JSON object'),
    ({}, 'exactly one of "instances"'),
    ({'instances': []}, '"instances" must be a non-empty list'),
    ({'instances': [{'b64': 'not base64!'}]}, 'instance 0: bad base64'),
    ({'instances': [{'b64': ''}]}, 'instance 0: empty image'),
    ({'instances': [{'b64': base64.b64encode(b'hello').decode()}]}, 'instance 0: not an image'),
    ({'instances': [{'b64': B64}] * 5}, 'too many instances: 5 > 4'),
    ({'instances': [{'picture': {'b64': B64}}]}, "instance 0 has inputs ['picture'], the signature takes ['image_bytes']"),
    ({'inputs': {'image_bytes': []}}, "input 'image_bytes' is empty"),
])
def test_bad_requests_are_named(body, message):
    with pytest.raises(rest.BadRequest, match=message.replace('[', r'\[').replace(']', r'\]')):
        rest.parse_predict(body, ['image_bytes'], max_instances=4)


def _answer(outputs, rows):
    return json.loads(rest.encode_json(rest.format_outputs(outputs, rows=rows)))


def test_answers_in_rows_and_columns():
    outputs = {'mask': tf.constant(np.zeros((2, 3, 3), np.uint8)), 'height': tf.constant([3, 2], tf.int32)}
    assert _answer(outputs, True) == {'predictions': [{'mask': [[0] * 3] * 3, 'height': 3},
                                                      {'mask': [[0] * 3] * 3, 'height': 2}]}
    columns = _answer(outputs, False)
    assert columns['outputs']['height'] == [3, 2] and np.asarray(columns['outputs']['mask']).shape == (2, 3, 3)
    assert _answer({'logits': tf.constant([[1.5], [2.5]])}, True) == {'predictions': [[1.5], [2.5]]}
    assert _answer({'examples': tf.constant([b'\x00\xff'])}, False) == {'outputs': [{'b64': 'AP8='}]}
