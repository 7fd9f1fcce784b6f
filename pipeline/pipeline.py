"""The one pipeline factory: `create_pipeline(config, ...)` builds the petseg TFX pipeline.

Runners decide only what differs per platform (pipeline root, metadata connection, Beam args,
container image); the components and their wiring live here and nowhere else.
"""

from typing import List, Optional, Sequence

from tfx import v1 as tfx
from tfx.dsl.components.base.base_node import BaseNode

from components.tfds_example_gen.component import TfdsExampleGen
from pipeline import platform
from pipeline.config import PipelineConfig
from pipeline.eval_config import build_eval_config


def create_data_components(config: PipelineConfig) -> List[BaseNode]:
    """ExampleGen -> StatisticsGen -> SchemaGen (curated or inferred) -> ExampleValidator.

    Args:
      config: validated pipeline config.

    Returns:
      The four components, wired.
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
    )
    statistics_gen = tfx.components.StatisticsGen(examples=example_gen.outputs['examples'])
    if data.schema_path:
        schema_gen = tfx.components.ImportSchemaGen(schema_file=data.schema_path)
    else:
        schema_gen = tfx.components.SchemaGen(statistics=statistics_gen.outputs['statistics'],
                                              infer_feature_shape=True)
    example_validator = tfx.components.ExampleValidator(
        statistics=statistics_gen.outputs['statistics'], schema=schema_gen.outputs['schema'])
    return [example_gen, statistics_gen, schema_gen, example_validator]


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
    example_gen, _, schema_gen, _ = components
    transform = tfx.components.Transform(
        examples=example_gen.outputs['examples'],
        schema=schema_gen.outputs['schema'],
        preprocessing_fn='modules.preprocessing.preprocessing_fn',
    )
    components.append(transform)
    base_model = None
    if config.training.warm_start:
        latest_model = tfx.dsl.Resolver(
            strategy_class=tfx.dsl.experimental.LatestArtifactStrategy,
            model=tfx.dsl.Channel(type=tfx.types.standard_artifacts.Model),
        ).with_id('latest_model_resolver')
        components.append(latest_model)
        base_model = latest_model.outputs['model']
    trainer = platform.make_trainer(
        vertex, image, config.to_custom_config(),
        examples=transform.outputs['transformed_examples'],
        transform_graph=transform.outputs['transform_graph'],
        schema=schema_gen.outputs['schema'],
        base_model=base_model,
    )
    baseline = tfx.dsl.Resolver(
        strategy_class=tfx.dsl.experimental.LatestBlessedModelStrategy,
        model=tfx.dsl.Channel(type=tfx.types.standard_artifacts.Model),
        model_blessing=tfx.dsl.Channel(type=tfx.types.standard_artifacts.ModelBlessing),
    ).with_id('latest_blessed_model_resolver')
    evaluator = tfx.components.Evaluator(
        examples=example_gen.outputs['examples'],
        model=trainer.outputs['model'],
        baseline_model=baseline.outputs['model'],
        eval_config=build_eval_config(config.evaluation),
        example_splits=['eval'],
    )
    pusher = platform.make_pusher(vertex, serving_dir, model=trainer.outputs['model'],
                                  model_blessing=evaluator.outputs['blessing'])
    components += [trainer, baseline, evaluator, pusher]
    return tfx.dsl.Pipeline(
        pipeline_name=config.name,
        pipeline_root=pipeline_root,
        components=components,
        enable_cache=enable_cache,
        metadata_connection_config=metadata_connection_config,
        beam_pipeline_args=list(beam_pipeline_args),
    )
