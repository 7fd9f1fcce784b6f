"""The one pipeline factory: `create_pipeline(config, ...)` builds the petseg TFX pipeline.

Runners decide only what differs per platform (pipeline root, metadata connection, Beam args,
container image); the components and their wiring live here and nowhere else.
"""

from typing import Any, Dict, List, Optional, Sequence

import tensorflow_data_validation as tfdv
from tfx import v1 as tfx
from tfx.dsl.components.base.base_node import BaseNode

from components.full_size_eval.component import FullSizeEvaluator
from components.gated_example_validator.component import GatedExampleValidator
from components.request_monitor.component import RequestMonitor
from components.serving_check.component import ServingCheck
from components.tfds_example_gen.component import TfdsExampleGen
from components.tflite_export.component import TfliteExport
from components.versioned_pusher import model_card
from pipeline import node_ids, platform
from modules import signatures
from pipeline.config import PipelineConfig, ServingConfig
from pipeline.eval_config import build_eval_config

# TF Serving image tag for InfraValidator; 2.15 is the newest that reads this TF 2.16 SavedModel's ops.
TF_SERVING_TAG = '2.15.0'


def create_data_components(config: PipelineConfig) -> List[BaseNode]:
    """ExampleGen -> StatisticsGen -> SchemaGen (curated or inferred) -> ExampleValidator (a gate before training).

    Args:
      config: validated pipeline config.

    Returns:
      ExampleGen, StatisticsGen, SchemaGen, ExampleValidator and the resolver of the previous statistics.
    """
    data = config.data
    example_gen = TfdsExampleGen(
        data.dataset,
        splits={'train': data.train_split, 'eval': data.eval_split},
        data_dir=data.data_dir,
        source_dir=data.source_dir,
        image_feature=data.image_feature,
        mask_feature=data.mask_feature,
        max_skipped_fraction=data.max_skipped_fraction,
        classes=data.description.to_json(),
        source_layout=data.source_layout,
        eval_fraction=data.eval_fraction,
    )
    # Sketches for the top values and unique counts: counted exactly, every distinct image (each is one) was held
    # in memory, growing with the data (1.4 GB at 3,000 images, 2.0 GB at 7,349; flat at 1.1 GB, and 5x faster).
    statistics_gen = tfx.components.StatisticsGen(
        examples=example_gen.outputs['examples'],
        stats_options=tfdv.StatsOptions(experimental_use_sketch_based_topk_uniques=True))
    if data.schema_path:
        schema_gen = tfx.components.ImportSchemaGen(schema_file=data.schema_path)
    else:
        schema_gen = tfx.components.SchemaGen(statistics=statistics_gen.outputs['statistics'],
                                              infer_feature_shape=True)
    # Resolved before this run's StatisticsGen publishes: the statistics of the data the last run read. Named by
    # producer: Transform publishes ExampleStatistics too, of its outputs, which have none of these features.
    previous_statistics = tfx.dsl.Resolver(
        strategy_class=tfx.dsl.experimental.LatestArtifactStrategy,
        statistics=tfx.dsl.Channel(type=tfx.types.standard_artifacts.ExampleStatistics,
                                   producer_component_id=node_ids.STATISTICS_GEN, output_key='statistics'),
    ).with_id(node_ids.PREVIOUS_STATISTICS_RESOLVER)
    example_validator = GatedExampleValidator(
        statistics=statistics_gen.outputs['statistics'], schema=schema_gen.outputs['schema'],
        fail_on_anomalies=data.anomalies == 'fail', previous_statistics=previous_statistics.outputs['statistics'],
        drift_threshold=data.drift_threshold).with_id(node_ids.EXAMPLE_VALIDATOR)
    return [example_gen, statistics_gen, schema_gen, example_validator, previous_statistics]


def create_serving_validator(serving: ServingConfig, trainer: BaseNode, example_gen: BaseNode, evaluator: BaseNode,
                             on_cluster: bool) -> BaseNode:
    """The check that the candidate serves, whose InfraBlessing the Pusher requires.

    Args:
      serving: the check's settings; `validator` picks ours or TFX's InfraValidator.
      trainer: gives the candidate model.
      example_gen: gives the eval split to send.
      evaluator: gives the pixel accuracy the served masks must agree with.
      on_cluster: InfraValidator starts TF Serving on Kubernetes instead of the local Docker.

    Returns:
      The component, with id `ServingCheck` (or `InfraValidator`).
    """
    if serving.validator == 'infra_validator':
        platform_config = ({'kubernetes': tfx.proto.KubernetesConfig()} if on_cluster
                           else {'local_docker': tfx.proto.LocalDockerConfig()})
        return tfx.components.InfraValidator(
            model=trainer.outputs['model'], examples=example_gen.outputs['examples'],
            serving_spec=tfx.proto.ServingSpec(
                tensorflow_serving=tfx.proto.TensorFlowServing(tags=[TF_SERVING_TAG]), **platform_config),
            validation_spec=tfx.proto.ValidationSpec(max_loading_time_seconds=serving.timeout_s, num_tries=2),
            request_spec=tfx.proto.RequestSpec(
                tensorflow_serving=tfx.proto.TensorFlowServingRequestSpec(
                    signature_names=[signatures.SERVING_TF_EXAMPLE]),
                split_name='eval', num_examples=min(serving.max_examples, 10)),
        ).with_id(node_ids.INFRA_VALIDATOR)
    return ServingCheck(
        model=trainer.outputs['model'], examples=example_gen.outputs['examples'],
        evaluation=evaluator.outputs['evaluation'], max_examples=serving.max_examples,
        latency_calls=serving.latency_calls, latency_budget_ms=serving.latency_budget_ms,
        accuracy_tolerance=serving.accuracy_tolerance, timeout_s=serving.timeout_s,
    ).with_id(node_ids.SERVING_CHECK)


def create_training_components(config: PipelineConfig, example_gen: BaseNode, schema_gen: BaseNode,
                               example_validator: BaseNode, vertex: Optional[platform.VertexOptions],
                               image: Optional[str]) -> List[BaseNode]:
    """Transform -> [latest model resolver] -> [Tuner] -> Trainer, the Trainer gated by the ExampleValidator.

    Args:
      config: validated pipeline config.
      example_gen: gives the examples.
      schema_gen: gives the schema.
      example_validator: training waits for it (and, with anomalies='fail', is stopped by it).
      vertex: train on Vertex AI when it says so.
      image: the pipeline's container image, for Vertex training jobs.

    Returns:
      The nodes, the Trainer last.
    """
    transform = tfx.components.Transform(
        examples=example_gen.outputs['examples'],
        schema=schema_gen.outputs['schema'],
        preprocessing_fn='modules.preprocessing.preprocessing_fn',
        custom_config=config.to_transform_custom_config(),
        disable_statistics=not config.data.transform_statistics,
    )
    nodes: List[BaseNode] = [transform]
    base_model = None
    if config.training.warm_start:
        latest_model = tfx.dsl.Resolver(
            strategy_class=tfx.dsl.experimental.LatestArtifactStrategy,
            model=tfx.dsl.Channel(type=tfx.types.standard_artifacts.Model),
        ).with_id('latest_model_resolver')
        nodes.append(latest_model)
        base_model = latest_model.outputs['model']
    hyperparameters = None
    if config.tuning.tune:
        tuner = tfx.components.Tuner(
            tuner_fn='modules.tune.tuner_fn', examples=transform.outputs['transformed_examples'],
            transform_graph=transform.outputs['transform_graph'], schema=schema_gen.outputs['schema'],
            custom_config=config.to_tuner_custom_config()).with_id(node_ids.TUNER)
        tuner.add_upstream_node(example_validator)
        nodes.append(tuner)
        hyperparameters = tuner.outputs['best_hyperparameters']
    trainer = platform.make_trainer(
        vertex, image, config.to_custom_config(),
        examples=transform.outputs['transformed_examples'],
        transform_graph=transform.outputs['transform_graph'],
        schema=schema_gen.outputs['schema'],
        base_model=base_model,
        hyperparameters=hyperparameters,
    )
    # No data dependency, but training must wait for (and, with anomalies='fail', be stopped by) validation.
    trainer.add_upstream_node(example_validator)
    return nodes + [trainer]


def create_tflite_export(config: PipelineConfig, trainer: BaseNode, transform: BaseNode) -> Optional[BaseNode]:
    """The TFLite variants of the candidate, or None when `tflite.tflite_variants` is empty."""
    edge = config.tflite
    if not edge.tflite_variants:
        return None
    return TfliteExport(
        model=trainer.outputs['model'], examples=transform.outputs['transformed_examples'],
        transform_graph=transform.outputs['transform_graph'], variants=edge.tflite_variants,
        representative_examples=edge.representative_examples, max_eval_examples=edge.tflite_eval_examples,
        latency_calls=edge.tflite_latency_calls, tolerances=edge.tolerances,
        int8_max_size_ratio=edge.int8_max_size_ratio).with_id(node_ids.TFLITE_EXPORT)


def card_settings(config: PipelineConfig) -> Dict[str, Any]:
    """What each pushed version's model card says about the data and the use of the model (`model_card`)."""
    data = config.data
    pets = data.schema_path is not None
    source = data.source_dir or data.data_dir or ('generated sample data' if data.sample else 'the TFDS default data dir')
    caveats = []
    if data.sample is not None:
        caveats.append('Trained and scored on generated images (the sample data), not photographs: the figures say '
                       'the pipeline works, not how well it segments real pictures.')
    if config.training.validation_split == 0:
        caveats.append("The Trainer's per-epoch validation ran on the eval split: it was watched, and nothing was "
                       'chosen on it (early stopping and the Tuner need a held-out part of the training split).')
    if config.evaluation.slice_features is None and not config.slice_features:
        caveats.append('No slices were scored: the data has no feature to slice by (--slice_features).')
    return model_card.card_settings(
        data.dataset_name if pets else f'{config.name} (own data)', data.description, data.image_size,
        f'the {data.eval_split!r} split of {source}', caveats)


def create_pipeline(
    config: PipelineConfig,
    *,
    pipeline_root: str,
    serving_dir: str,
    metadata_connection_config: Optional[object] = None,
    beam_pipeline_args: Sequence[str] = (),
    enable_cache: bool = True,
    vertex: Optional[platform.VertexOptions] = None,
    image: Optional[str] = None,
) -> tfx.dsl.Pipeline:
    """Builds the pipeline.

    Args:
      config: pipeline settings; validated here.
      pipeline_root: where artifacts are written (local path or gs://).
      serving_dir: where blessed models are pushed, one numbered version directory each.
      metadata_connection_config: MLMD connection; None lets the orchestrator provide one.
      beam_pipeline_args: arguments for every Beam-based component.
      enable_cache: reuse outputs of executions whose inputs and properties are unchanged.
      vertex: run training and/or serving on Vertex AI (see `pipeline.platform`); None keeps both in-pipeline.
      image: the pipeline's container image, for Vertex training jobs.

    Returns:
      The TFX pipeline.
    """
    config.validate()
    components = create_data_components(config)
    example_gen, _, schema_gen, example_validator, _ = components
    training = create_training_components(config, example_gen, schema_gen, example_validator, vertex, image)
    transform, trainer = training[0], training[-1]
    baseline = tfx.dsl.Resolver(
        strategy_class=tfx.dsl.experimental.LatestBlessedModelStrategy,
        model=tfx.dsl.Channel(type=tfx.types.standard_artifacts.Model),
        model_blessing=tfx.dsl.Channel(type=tfx.types.standard_artifacts.ModelBlessing),
    ).with_id('latest_blessed_model_resolver')
    evaluator = tfx.components.Evaluator(
        examples=example_gen.outputs['examples'],
        model=trainer.outputs['model'],
        baseline_model=baseline.outputs['model'],
        eval_config=build_eval_config(config.evaluation, config.data.description.names, config.slice_features),
        example_splits=['eval'],
    )
    serving_validator = create_serving_validator(config.serving, trainer, example_gen, evaluator,
                                                 on_cluster=image is not None)
    full_size = FullSizeEvaluator(
        model=trainer.outputs['model'], examples=example_gen.outputs['examples'],
        max_examples=config.evaluation.full_size_examples, worst_images=config.evaluation.worst_images,
        slice_features=config.slice_features).with_id(node_ids.FULL_SIZE_EVALUATOR)
    components += [*training, baseline, evaluator, full_size, serving_validator]
    tflite_export = create_tflite_export(config, trainer, transform)
    if tflite_export is not None:
        components.append(tflite_export)
    components.append(platform.make_pusher(
        vertex, serving_dir, model=trainer.outputs['model'], model_blessing=evaluator.outputs['blessing'],
        infra_blessing=serving_validator.outputs['blessing'],
        tflite_models=tflite_export.outputs['tflite_models'] if tflite_export is not None else None,
        model_card=card_settings(config),
        card_inputs={'examples': example_gen.outputs['examples'], 'evaluation': evaluator.outputs['evaluation'],
                     'full_size_evaluation': full_size.outputs['full_size_evaluation'],
                     'model_run': trainer.outputs['model_run']}))
    return tfx.dsl.Pipeline(
        pipeline_name=config.name,
        pipeline_root=pipeline_root,
        components=components,
        enable_cache=enable_cache,
        metadata_connection_config=metadata_connection_config,
        beam_pipeline_args=list(beam_pipeline_args),
    )


def create_monitoring_pipeline(
    name: str,
    *,
    pipeline_root: str,
    log_dir: str,
    serving_dir: str,
    window_hours: float = 24.0,
    skew_threshold: float = 0.3,
    drift_threshold: float = 0.3,
    min_requests: int = 50,
    metadata_connection_config: Optional[object] = None,
) -> tfx.dsl.Pipeline:
    """The monitoring pipeline, `<name>-monitor`: judges the last `window_hours` of logged requests against the
    newest pushed version (`RequestMonitor`) and writes the verdict to `<pipeline_root>/monitor/latest.json`.

    Compiled beside the training pipeline (`kubeflow_runner.py --monitor_log_dir`) so a schedule runs it often
    and the training only when its verdict warrants; `python -m pipeline.monitor` is the same check locally.

    Args:
      name: the training pipeline's name.
      pipeline_root: the training pipeline's root (the monitor's artifacts go under it).
      log_dir: the request log.
      serving_dir: the serving root the training pipeline pushes to.
      window_hours, skew_threshold, drift_threshold, min_requests: `RequestMonitor`'s settings.
      metadata_connection_config: MLMD connection; None lets the orchestrator provide one.

    Returns:
      The TFX pipeline.
    """
    monitor = RequestMonitor(log_dir, serving_dir, window_hours=window_hours, skew_threshold=skew_threshold,
                             drift_threshold=drift_threshold, min_requests=min_requests,
                             verdict_dir=monitor_verdict_dir(pipeline_root)).with_id(node_ids.REQUEST_MONITOR)
    return tfx.dsl.Pipeline(pipeline_name=f'{name}-monitor', pipeline_root=pipeline_root, components=[monitor],
                            enable_cache=False, metadata_connection_config=metadata_connection_config)


def monitor_verdict_dir(pipeline_root: str) -> str:
    """Where the monitoring pipeline writes `latest.json` (and dated verdicts)."""
    return f'{pipeline_root.rstrip("/")}/monitor'
