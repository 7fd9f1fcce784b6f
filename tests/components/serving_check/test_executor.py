"""ServingCheck's verdict from the probe's findings, and the bad-request catalogue itself."""

import io

import pytest
from PIL import Image

from components.serving_check import executor, requests


def _findings(**changes):
    bad = [{'kind': 'bad_request', 'name': case.name, 'expect': case.expect,
            'outcome': requests.MASK if case.expect == requests.EITHER else case.expect, 'detail': ''}
           for case in requests.bad_requests()]
    findings = {
        'loaded': [{'kind': 'loaded', 'seconds': 3.2}],
        'signatures': [{'kind': 'signatures', 'problems': {'serving_default': [], 'serving_full_size': []}}],
        'eval_split': [{'kind': 'eval_split', 'examples': 6, 'invalid': [], 'pixel_accuracy': 0.91,
                        'serving_tf_example_pixel_accuracy': 0.91}],
        'bad_request': bad,
        'full_size': [{'kind': 'full_size', 'sizes': [[500, 375]], 'problems': []}],
        'latency': [{'kind': 'latency', 'calls': 50, 'p50_ms': 21.0, 'p99_ms': 30.0}],
        'done': [{'kind': 'done'}],
    }
    findings.update(changes)
    return [line for lines in findings.values() for line in lines]


def _judge(findings, **overrides):
    settings = dict(latency_budget_ms=100.0, accuracy_tolerance=0.005, evaluator_pixel_accuracy=0.912,
                    evaluated_examples=6, failure=None)
    settings.update(overrides)
    return executor.judge(findings, **settings)


def test_a_model_that_passes_everything_is_blessed_with_its_figures():
    verdict = _judge(_findings())
    assert verdict.blessed and verdict.reasons == []
    assert verdict.figures['p99_ms'] == 30.0 and verdict.figures['evaluator_pixel_accuracy'] == 0.912
    assert len(verdict.figures['bad_requests']) == len(requests.bad_requests())


def test_over_the_latency_budget_is_not_blessed():
    verdict = _judge(_findings(), latency_budget_ms=25.0)
    assert not verdict.blessed
    assert verdict.reasons == ['p99 latency 30.0 ms of one 500x375 JPEG is over the budget of 25.0 ms']


def test_a_bad_request_that_succeeds_silently_is_not_blessed():
    findings = _findings()
    text = next(f for f in findings if f.get('name') == 'text' and f['kind'] == 'bad_request')
    text['outcome'] = requests.MASK
    verdict = _judge(findings)
    assert not verdict.blessed and verdict.reasons == ["bad request 'text': expected error, got mask"]


def test_disagreeing_with_the_evaluator_is_not_blessed_only_when_the_whole_split_was_served():
    assert not _judge(_findings(), evaluator_pixel_accuracy=0.95).blessed
    assert _judge(_findings(), evaluator_pixel_accuracy=0.95, evaluated_examples=600).blessed, \
        'a subset of a large split is compared with serving_tf_example on the same images only'


def test_a_crash_names_the_request_being_served():
    findings = [f for f in _findings() if f['kind'] in ('loaded', 'signatures', 'eval_split')]
    findings += [{'kind': 'bad_request_started', 'name': 'empty bytes'}]
    verdict = _judge(findings, failure='exit code -11')
    assert not verdict.blessed
    assert verdict.reasons[0] == "the serving process died (exit code -11) while serving the bad request 'empty bytes'"


def test_a_missing_signature_is_named():
    verdict = _judge(_findings(signatures=[{'kind': 'signatures', 'problems': {'serving_default': ['missing']}}]))
    assert not verdict.blessed and 'signature serving_default: missing' in verdict.reasons


def test_the_catalogue_holds_every_kind_the_contract_names():
    cases = {case.name: case for case in requests.bad_requests()}
    assert list(cases) == ['empty bytes', 'random bytes', 'text', 'truncated JPEG', '1x1 image', '4000x3000 JPEG',
                           'grayscale JPEG', 'CMYK JPEG', 'RGBA PNG', 'animated GIF', 'BMP', '16-bit PNG',
                           'batch of good and bad']
    formats = {name: Image.open(io.BytesIO(cases[name].images[0])) for name in
               ('4000x3000 JPEG', 'grayscale JPEG', 'CMYK JPEG', 'RGBA PNG', 'animated GIF', 'BMP', '16-bit PNG')}
    assert formats['4000x3000 JPEG'].size == (4000, 3000)
    assert [formats[n].mode for n in ('grayscale JPEG', 'CMYK JPEG', 'RGBA PNG')] == ['L', 'CMYK', 'RGBA']
    assert formats['animated GIF'].n_frames == 3 and formats['BMP'].format == 'BMP'
    assert formats['16-bit PNG'].mode.startswith('I')
    with pytest.raises(Exception):
        Image.open(io.BytesIO(cases['truncated JPEG'].images[0])).load()
