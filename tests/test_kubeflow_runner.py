"""kubeflow_runner compiles the one pipeline for Kubeflow V2 / Vertex, and builds run requests from flags."""

import json

import pytest

import kubeflow_runner

IMAGE = 'us-docker.pkg.dev/proj/repo/petseg:1'
BASE_FLAGS = ['--pipeline_root', 'gs://bucket/petseg', '--image', IMAGE, '--data_dir', 'gs://bucket/tfds']
BEAM_COMPONENTS = ('TfdsExampleGen', 'StatisticsGen', 'Transform', 'Evaluator')


def _compile(tmp_path, *flags, name='spec.json'):
    args = kubeflow_runner.parse_args([*BASE_FLAGS, '--output', str(tmp_path / name), *flags])
    return json.loads(open(kubeflow_runner.compile_pipeline(args)).read())


def _executor(spec, task):
    return spec['pipelineSpec']['deploymentSpec']['executors'][f'{task}_executor']['container']


@pytest.fixture(scope='module')
def local_spec(tmp_path_factory):
    return _compile(tmp_path_factory.mktemp('kfp'))


def test_tasks_and_dependencies(local_spec):
    assert local_spec['pipelineSpec']['schemaVersion'] == '2.0.0'
    tasks = local_spec['pipelineSpec']['root']['dag']['tasks']
    assert set(tasks) == {'TfdsExampleGen', 'StatisticsGen', 'ImportSchemaGen', 'ExampleValidator', 'Transform',
                          'Trainer', 'Evaluator', 'FullSizeEvaluator', 'ServingCheck', 'TfliteExport', 'Pusher',
                          'previous_statistics_resolver',
                          'latest_blessed_model_resolver-model-resolver',
                          'latest_blessed_model_resolver-model-blessing-resolver'}
    assert set(tasks['Trainer']['dependentTasks']) == {'Transform', 'ImportSchemaGen', 'ExampleValidator'}, \
        'training waits for data validation on the cluster too'
    assert 'latest_blessed_model_resolver-model-resolver' in tasks['Evaluator']['dependentTasks']
    assert set(tasks['Pusher']['dependentTasks']) == {'Evaluator', 'Trainer', 'ServingCheck', 'TfliteExport',
                                                      'FullSizeEvaluator', 'TfdsExampleGen'}, \
        'nothing is pushed before the serving check; the model card reads the data and the full-size evaluation'
    assert set(tasks['FullSizeEvaluator']['dependentTasks']) == {'Trainer', 'TfdsExampleGen'}
    assert set(tasks['TfliteExport']['dependentTasks']) == {'Trainer', 'Transform'}
    assert set(tasks['ServingCheck']['dependentTasks']) == {'Trainer', 'TfdsExampleGen', 'Evaluator'}
    assert local_spec['runtimeConfig']['gcsOutputDirectory'] == 'gs://bucket/petseg'


def test_image_and_custom_executors(local_spec):
    for task in ('TfdsExampleGen', 'Transform', 'Trainer', 'Evaluator', 'FullSizeEvaluator', 'Pusher'):
        assert _executor(local_spec, task)['image'] == IMAGE
    assert _executor(local_spec, 'FullSizeEvaluator')['args'][1] == 'components.full_size_eval.executor.Executor'
    assert _executor(local_spec, 'TfdsExampleGen')['args'][1] == 'components.tfds_example_gen.executor.Executor'
    assert _executor(local_spec, 'Pusher')['args'][1] == 'components.versioned_pusher.executor.Executor'
    assert _executor(local_spec, 'ExampleValidator')['args'][1] == 'components.gated_example_validator.executor.Executor'
    assert _executor(local_spec, 'Trainer')['args'][1] == 'tfx.components.trainer.executor.GenericExecutor'
    for task in BEAM_COMPONENTS:
        assert '--direct_running_mode=multi_processing' in _executor(local_spec, task)['args']
        # A path on the compiling machine means nothing in the container.
        assert not [arg for arg in _executor(local_spec, task)['args'] if arg.startswith('--setup_file')]


def test_infra_validator_is_refused_with_the_reason(capsys):
    with pytest.raises(SystemExit):
        kubeflow_runner.parse_args([*BASE_FLAGS, '--validator', 'infra_validator'])
    assert "Kubeflow V2 compiler cannot compile InfraValidator" in capsys.readouterr().err


def test_user_code_travels_by_dotted_path(local_spec):
    text = json.dumps(local_spec)
    assert 'modules.train.run_fn' in text and 'modules.preprocessing.preprocessing_fn' in text
    assert 'module_file' not in text.replace('"module_file": ""', '')


def test_spec_is_deterministic(tmp_path, local_spec):
    again = _compile(tmp_path, name='again.json')
    assert again == local_spec


def test_dataflow_args_on_beam_components(tmp_path):
    spec = _compile(tmp_path, '--beam_runner', 'dataflow', '--project', 'proj', '--region', 'us-central1',
                    '--dataflow_temp_location', 'gs://bucket/tmp')
    for task in BEAM_COMPONENTS:
        args = _executor(spec, task)['args']
        assert '--runner=DataflowRunner' in args and '--temp_location=gs://bucket/tmp' in args
        assert f'--sdk_container_image={IMAGE}' in args


def test_vertex_training_with_gpu_and_endpoint(tmp_path):
    spec = _compile(tmp_path, '--project', 'proj', '--region', 'europe-west4', '--vertex_training',
                    '--gpu_type', 'NVIDIA_TESLA_T4', '--endpoint', 'petseg-endpoint')
    assert 'google_cloud_ai_platform.trainer.executor.GenericExecutor' in _executor(spec, 'Trainer')['args'][1]
    assert 'google_cloud_ai_platform.pusher.executor.Executor' in _executor(spec, 'Pusher')['args'][1]
    text = json.dumps(spec)
    assert 'NVIDIA_TESLA_T4' in text and 'petseg-endpoint' in text and 'europe-west4' in text


def test_vertex_multi_worker_training_has_a_chief_and_a_worker_pool(tmp_path):
    spec = _compile(tmp_path, '--project', 'proj', '--region', 'europe-west4', '--vertex_training',
                    '--training_machine_type', 'n1-standard-16', '--training_workers', '3')
    parameters = spec['pipelineSpec']['root']['dag']['tasks']['Trainer']['inputs']['parameters']
    custom_config = json.loads(parameters['custom_config']['runtimeValue']['constantValue']['stringValue'])
    pools = custom_config['ai_platform_training_args']['worker_pool_specs']
    assert [pool['replica_count'] for pool in pools] == [1, 3], 'the chief, then three workers'
    assert {pool['machine_spec']['machine_type'] for pool in pools} == {'n1-standard-16'}
    assert {pool['container_spec']['image_uri'] for pool in pools} == {IMAGE}


@pytest.mark.parametrize('flags, message', [
    (['--beam_runner', 'dataflow'], '--beam_runner dataflow needs --project, --region, --dataflow_temp_location'),
    (['--vertex_training'], '--vertex_training / --endpoint needs --project, --region'),
])
def test_missing_cloud_flags_are_named(tmp_path, flags, message):
    with pytest.raises(SystemExit, match=message):
        _compile(tmp_path, *flags)


def test_schedule_request_from_flags():
    args = kubeflow_runner.parse_args([*BASE_FLAGS, '--project', 'proj', '--region', 'us-central1',
                                       '--schedule', '0 3 * * 1', '--service_account', 'sa@proj.iam'])
    request = kubeflow_runner.run_request(args, '/tmp/spec.json')
    assert (request.cron, request.max_concurrent_run_count, request.enable_caching) == ('0 3 * * 1', 1, False)
    assert (request.project, request.region, request.service_account) == ('proj', 'us-central1', 'sa@proj.iam')
    assert request.template_path == '/tmp/spec.json' and request.pipeline_root == 'gs://bucket/petseg'


def test_submit_request_caches_and_needs_project():
    args = kubeflow_runner.parse_args([*BASE_FLAGS, '--project', 'proj', '--region', 'us-central1', '--submit'])
    assert kubeflow_runner.run_request(args, 'spec.json').enable_caching is True
    with pytest.raises(SystemExit, match='--submit / --schedule needs --project, --region'):
        kubeflow_runner.run_request(kubeflow_runner.parse_args([*BASE_FLAGS, '--submit']), 'spec.json')


def test_sample_data_presets_need_cluster_data(capsys):
    with pytest.raises(SystemExit):
        kubeflow_runner.parse_args(['--pipeline_root', 'gs://b/p', '--image', IMAGE, '--preset', 'default'])
    assert 'generates sample data locally' in capsys.readouterr().err
    args = kubeflow_runner.parse_args(['--pipeline_root', 'gs://b/p', '--image', IMAGE, '--preset', 'default',
                                       '--source_dir', 'gs://b/pets'])
    assert args.config.data.sample is None and args.config.data.source_dir == 'gs://b/pets'


def test_settings_flags_are_the_local_runners(tmp_path):
    spec = _compile(tmp_path, '--epochs', '3', '--batch_size', '8', '--anomalies', 'warn')
    text = json.dumps(spec)
    assert '\\"epochs\\": 3' in text and '\\"batch_size\\": 8' in text
    args = kubeflow_runner.parse_args([*BASE_FLAGS, '--source_dir', 'relative/pets'])
    assert args.config.data.source_dir == 'relative/pets', 'cluster paths are not made absolute on this machine'


@pytest.mark.parametrize('flags, message', [
    (['--epochs', '0'], 'training.epochs must be >= 1, got 0'),
    (['--dataflow_max_workers', '0'], 'must be >= 1, got 0'),
    (['--gpu_count', '-1'], 'must be >= 1, got -1'),
])
def test_bad_numbers_are_refused(flags, message, capsys):
    with pytest.raises(SystemExit):
        kubeflow_runner.parse_args([*BASE_FLAGS, *flags])
    assert message in capsys.readouterr().err


def test_help_documents_the_flags(capsys):
    with pytest.raises(SystemExit) as exit_info:
        kubeflow_runner.parse_args(['--help'])
    assert exit_info.value.code == 0
    text = capsys.readouterr().out
    for flag in ('--pipeline_root', '--image', '--beam_runner', '--vertex_training', '--endpoint', '--submit', '--schedule'):
        assert flag in text


def test_tuning_compiles_with_the_tuner_feeding_the_trainer(tmp_path):
    spec = _compile(tmp_path, '--preset', 'real', '--tune', '--max_trials', '3', '--validation_split', '0.1')
    tasks = spec['pipelineSpec']['root']['dag']['tasks']
    assert 'Tuner' in tasks and 'Tuner' in tasks['Trainer']['dependentTasks']
    assert tasks['Trainer']['inputs']['artifacts']['hyperparameters']['taskOutputArtifact']['producerTask'] == 'Tuner'
    parameters = tasks['Tuner']['inputs']['parameters']
    custom_config = json.loads(parameters['custom_config']['runtimeValue']['constantValue']['stringValue'])
    assert custom_config['tuning']['max_trials'] == 3 and custom_config['training']['validation_split'] == 0.1


def test_the_monitoring_pipeline_compiles_beside_the_training_one(tmp_path):
    args = kubeflow_runner.parse_args([*BASE_FLAGS, '--output', str(tmp_path / 'spec.json'), '--monitor_log_dir',
                                       'gs://bucket/request_log', '--monitor_window_hours', '6',
                                       '--monitor_skew_threshold', '0.2'])
    kubeflow_runner.compile_pipeline(args)
    path = kubeflow_runner.compile_monitoring_pipeline(args)
    assert path == str(tmp_path / 'spec_monitor.json') and (tmp_path / 'spec.json').exists()
    spec = json.loads(open(path).read())
    assert spec['pipelineSpec']['pipelineInfo']['name'] == 'petseg-monitor'
    assert set(spec['pipelineSpec']['root']['dag']['tasks']) == {'RequestMonitor'}
    executor = _executor(spec, 'RequestMonitor')
    assert executor['image'] == IMAGE and executor['args'][1] == 'components.request_monitor.executor.Executor'
    parameters = {name: list(value['runtimeValue']['constantValue'].values())[0] for name, value in
                  spec['pipelineSpec']['root']['dag']['tasks']['RequestMonitor']['inputs']['parameters'].items()}
    assert parameters['log_dir'] == 'gs://bucket/request_log'
    assert parameters['serving_dir'] == 'gs://bucket/petseg/serving_model', 'where the training pipeline pushes'
    assert parameters['verdict_dir'] == 'gs://bucket/petseg/monitor'
    assert (float(parameters['window_hours']), float(parameters['skew_threshold'])) == (6.0, 0.2)


def test_the_monitoring_schedule_reads_new_logs_every_run(capsys):
    args = kubeflow_runner.parse_args([*BASE_FLAGS, '--project', 'proj', '--region', 'us-central1',
                                       '--monitor_log_dir', 'gs://bucket/log', '--monitor_schedule', '0 * * * *'])
    request = kubeflow_runner.monitor_schedule_request(args, 'monitor.json')
    assert (request.cron, request.enable_caching, request.display_name) == ('0 * * * *', False, 'petseg-monitor')
    with pytest.raises(SystemExit):
        kubeflow_runner.parse_args([*BASE_FLAGS, '--monitor_schedule', '0 * * * *'])
    assert '--monitor_schedule needs --monitor_log_dir' in capsys.readouterr().err
    with pytest.raises(SystemExit):
        kubeflow_runner.parse_args([*BASE_FLAGS, '--monitor_log_dir', 'gs://b/l', '--monitor_drift_threshold', '2'])
    assert '--monitor_drift_threshold must be in (0, 1]' in capsys.readouterr().err
