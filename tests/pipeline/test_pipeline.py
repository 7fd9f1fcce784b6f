"""The factory's wiring, compiled to TFX's intermediate representation (what LocalDagRunner runs)."""

import json

from tfx.dsl.compiler import compiler

from pipeline import config as config_lib
from pipeline.pipeline import create_pipeline


def _compiled(config):
    pipeline = create_pipeline(config.with_overrides({'data.source_dir': '/data/pets'}), pipeline_root='/tmp/root',
                               serving_dir='/tmp/serving')
    return {node.pipeline_node.node_info.id: node.pipeline_node for node in compiler.Compiler().compile(pipeline).nodes}


def test_the_pusher_needs_the_serving_checks_blessing_and_training_waits_for_validation():
    nodes = _compiled(config_lib.preset('smoke'))
    pusher_inputs = nodes['Pusher'].inputs.inputs
    assert set(pusher_inputs) == {'model', 'model_blessing', 'infra_blessing', 'tflite_models', 'examples', 'evaluation',
                                  'full_size_evaluation', 'model_run'}
    assert pusher_inputs['full_size_evaluation'].channels[0].producer_node_query.id == 'FullSizeEvaluator'
    assert set(nodes['FullSizeEvaluator'].inputs.inputs) == {'model', 'examples'}
    assert nodes['FullSizeEvaluator'].inputs.inputs['examples'].channels[0].producer_node_query.id == 'TfdsExampleGen'
    assert pusher_inputs['tflite_models'].channels[0].producer_node_query.id == 'TfliteExport'
    assert set(nodes['TfliteExport'].inputs.inputs) == {'model', 'examples', 'transform_graph'}
    assert nodes['TfliteExport'].inputs.inputs['examples'].channels[0].producer_node_query.id == 'Transform'
    assert pusher_inputs['infra_blessing'].channels[0].producer_node_query.id == 'ServingCheck'
    assert 'ExampleValidator' in nodes['Trainer'].upstream_nodes
    assert set(nodes['ServingCheck'].inputs.inputs) == {'model', 'examples', 'evaluation'}


def test_tf_serving_infra_validator_can_replace_the_serving_check_where_docker_runs():
    nodes = _compiled(config_lib.preset('tutorial').with_overrides({'serving.validator': 'infra_validator'}))
    assert 'ServingCheck' not in nodes
    validator = nodes['InfraValidator']
    assert validator.node_info.type.name.endswith('InfraValidator')
    assert nodes['Pusher'].inputs.inputs['infra_blessing'].channels[0].producer_node_query.id == 'InfraValidator'
    serving_spec = validator.parameters.parameters['serving_spec'].field_value.string_value
    assert 'local_docker' in serving_spec and '2.15.0' in serving_spec
    assert 'serving_tf_example' in validator.parameters.parameters['request_spec'].field_value.string_value


def test_the_tflite_export_can_be_turned_off():
    nodes = _compiled(config_lib.preset('smoke').with_overrides({'tflite.tflite_variants': ()}))
    assert 'TfliteExport' not in nodes and set(nodes['Pusher'].inputs.inputs) == {
        'model', 'model_blessing', 'infra_blessing', 'examples', 'evaluation', 'full_size_evaluation', 'model_run'}


def test_tuning_puts_the_tuner_before_the_trainer_and_feeds_it_the_best_hyperparameters():
    assert 'Tuner' not in _compiled(config_lib.preset('smoke').with_overrides({'training.validation_split': 0.2}))
    nodes = _compiled(config_lib.preset('smoke').with_overrides({'training.validation_split': 0.2, 'tuning.tune': True}))
    tuner = nodes['Tuner']
    assert tuner.inputs.inputs['examples'].channels[0].producer_node_query.id == 'Transform'
    assert 'ExampleValidator' in tuner.upstream_nodes
    assert nodes['Trainer'].inputs.inputs['hyperparameters'].channels[0].producer_node_query.id == 'Tuner'
    assert 'modules.tune.tuner_fn' in tuner.parameters.parameters['tuner_fn'].field_value.string_value


def test_transform_leaves_its_statistics_to_statistics_gen_unless_asked():
    def disabled(config):
        return _compiled(config).get('Transform').parameters.parameters['disable_statistics'].field_value.int_value

    assert disabled(config_lib.preset('default')) == 1
    assert disabled(config_lib.preset('default').with_overrides({'data.transform_statistics': True})) == 0


def test_statistics_gen_counts_top_values_with_sketches():
    options = json.loads(_compiled(config_lib.preset('default')).get('StatisticsGen').parameters.parameters[
        'stats_options_json'].field_value.string_value)
    assert options['_use_sketch_based_topk_uniques'] is True
