"""The one pipeline factory: `create_pipeline(config, ...)` builds the petseg TFX pipeline.

Runners decide only what differs per platform (pipeline root, metadata connection, Beam args,
container image); the components and their wiring live here and nowhere else.
"""

from typing import List, Optional, Sequence

from tfx import v1 as tfx
from tfx.dsl.components.base.base_node import BaseNode

from components.tfds_example_gen.component import TfdsExampleGen
from pipeline.config import PipelineConfig


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
    metadata_connection_config: Optional[object] = None,
    beam_pipeline_args: Sequence[str] = (),
    enable_cache: bool = True,
) -> tfx.dsl.Pipeline:
    """Builds the pipeline.

    Args:
      config: pipeline settings; validated here.
      pipeline_root: where artifacts are written (local path or gs://).
      metadata_connection_config: MLMD connection; None lets the orchestrator provide one.
      beam_pipeline_args: arguments for every Beam-based component.
      enable_cache: reuse outputs of executions whose inputs and properties are unchanged.

    Returns:
      The TFX pipeline.
    """
    config.validate()
    components = create_data_components(config)
    return tfx.dsl.Pipeline(
        pipeline_name=config.name,
        pipeline_root=pipeline_root,
        components=components,
        enable_cache=enable_cache,
        metadata_connection_config=metadata_connection_config,
        beam_pipeline_args=list(beam_pipeline_args),
    )
