"""The versioned pusher publishes complete new versions only, and never touches existing ones."""

import json
import os

import pytest
from tfx.proto import pusher_pb2
from tfx.types import standard_artifacts
from tfx.utils import proto_utils

from components.tflite_export.component import TfliteModels
from components.versioned_pusher import executor
from modules import paths


def _fake_saved_model(path):
    os.makedirs(os.path.join(path, 'variables'))
    with open(os.path.join(path, 'saved_model.pb'), 'wb') as f:
        f.write(b'graph')
    with open(os.path.join(path, 'variables', 'variables.index'), 'wb') as f:
        f.write(b'index')


def test_publish_makes_new_complete_versions(tmp_path):
    model, serving = tmp_path / 'model', tmp_path / 'serving'
    _fake_saved_model(str(model))
    first = executor.publish(str(model), str(serving), now=1000.2)
    second = executor.publish(str(model), str(serving), now=1000.7)  # same second: bumped, not overwritten
    assert [os.path.basename(first), os.path.basename(second)] == ['1000', '1001']
    assert sorted(os.listdir(serving)) == ['1000', '1001'], 'no staging directory left behind'
    assert open(os.path.join(second, 'saved_model.pb'), 'rb').read() == b'graph'


def test_a_copy_that_fails_midway_publishes_nothing_and_touches_no_version(tmp_path, monkeypatch):
    model, serving = tmp_path / 'model', tmp_path / 'serving'
    _fake_saved_model(str(model))
    executor.publish(str(model), str(serving), now=50)
    real_copy = executor.io_utils.copy_dir

    def copy_then_fail(source, destination):
        os.makedirs(os.path.join(destination, 'variables'))
        with open(os.path.join(destination, 'variables', 'variables.index'), 'wb') as f:
            f.write(b'half')  # the disk filled up before saved_model.pb was copied
        raise IOError('No space left on device')

    monkeypatch.setattr(executor.io_utils, 'copy_dir', copy_then_fail)
    with pytest.raises(IOError, match='No space left'):
        executor.publish(str(model), str(serving), now=60)
    assert paths.numbered_versions(str(serving)) == [50], 'the half copy is not a version a server would load'
    assert open(serving / '50' / 'saved_model.pb', 'rb').read() == b'graph'

    monkeypatch.setattr(executor.io_utils, 'copy_dir', real_copy)
    executor.publish(str(model), str(serving), now=60)  # the retry clears its own staging and publishes
    assert sorted(os.listdir(serving)) == ['50', '60']
    assert open(serving / '60' / 'variables' / 'variables.index', 'rb').read() == b'index'


def test_a_missing_model_is_refused_before_anything_is_written(tmp_path):
    model, serving = tmp_path / 'model', tmp_path / 'serving'
    _fake_saved_model(str(model))
    executor.publish(str(model), str(serving), now=50)
    with pytest.raises(FileNotFoundError, match='No SavedModel at'):
        executor.publish(str(tmp_path / 'missing_model'), str(serving), now=60)
    assert sorted(os.listdir(serving)) == ['50']


def _tflite_models(tmp_path, passed):
    """A TfliteExport output with every variant's files, of which `passed` met their targets."""
    artifact = TfliteModels()
    artifact.uri = str(tmp_path / 'tflite_models')
    os.makedirs(artifact.uri)
    for variant in ('float32', 'float16', 'int8'):
        for suffix in ('tflite', 'json'):
            with open(os.path.join(artifact.uri, f'{variant}.{suffix}'), 'w') as f:
                f.write(f'{variant} {suffix}')
    with open(os.path.join(artifact.uri, 'tflite.json'), 'w') as f:
        f.write('{}')
    artifact.set_string_custom_property('passed', json.dumps(passed))
    return artifact


def _run(tmp_path, blessed, tflite_models=None):
    model_dir = tmp_path / 'trainer_model'
    if not model_dir.exists():
        _fake_saved_model(str(model_dir / 'Format-Serving'))
    model = standard_artifacts.Model()
    model.uri = str(model_dir)
    blessing = standard_artifacts.ModelBlessing()
    blessing.uri = str(tmp_path / 'blessing')
    blessing.set_int_custom_property('blessed', int(blessed))
    pushed = standard_artifacts.PushedModel()
    pushed.uri = str(tmp_path / 'pushed')
    destination = pusher_pb2.PushDestination(
        filesystem=pusher_pb2.PushDestination.Filesystem(base_directory=str(tmp_path / 'serving')))
    inputs = {'model': [model], 'model_blessing': [blessing]}
    if tflite_models is not None:
        inputs['tflite_models'] = [tflite_models]
    executor.Executor().Do(inputs, {'pushed_model': [pushed]},
                           {'push_destination': proto_utils.proto_to_json(destination), 'custom_config': json.dumps(None)})
    return pushed


def test_executor_pushes_blessed_models(tmp_path):
    pushed = _run(tmp_path, blessed=True)
    assert pushed.get_int_custom_property('pushed') == 1
    destination = pushed.get_string_custom_property('pushed_destination')
    assert os.path.exists(os.path.join(destination, 'saved_model.pb'))
    assert pushed.get_string_custom_property('pushed_version') == os.path.basename(destination)


def test_executor_publishes_a_model_once(tmp_path):
    first = _run(tmp_path, blessed=True).get_string_custom_property('pushed_destination')
    second = _run(tmp_path, blessed=True)
    assert second.get_int_custom_property('pushed') == 1
    assert second.get_string_custom_property('pushed_destination') == first
    assert len(paths.numbered_versions(str(tmp_path / 'serving'))) == 1


def test_executor_skips_unblessed_models(tmp_path):
    pushed = _run(tmp_path, blessed=False)
    assert pushed.get_int_custom_property('pushed') == 0
    assert not os.path.exists(tmp_path / 'serving')


def test_only_the_tflite_variants_that_met_their_targets_are_pushed_with_the_model(tmp_path):
    pushed = _run(tmp_path, blessed=True, tflite_models=_tflite_models(tmp_path, passed=['float32', 'float16']))
    tflite_dir = os.path.join(pushed.get_string_custom_property('pushed_destination'), 'tflite')
    assert sorted(os.listdir(tflite_dir)) == ['float16.json', 'float16.tflite', 'float32.json', 'float32.tflite',
                                              'tflite.json']
    assert open(os.path.join(tflite_dir, 'float16.tflite')).read() == 'float16 tflite'


def test_tflite_variants_of_an_unblessed_model_are_not_pushed(tmp_path):
    pushed = _run(tmp_path, blessed=False, tflite_models=_tflite_models(tmp_path, passed=['float32', 'float16', 'int8']))
    assert pushed.get_int_custom_property('pushed') == 0
    assert not os.path.exists(tmp_path / 'serving')
