"""TfdsExampleGen's driver: picks the newest span and fingerprints the data source before the cache is consulted.

TFX looks up its cache after the driver has run, with the execution properties the driver
returns. Adding a fingerprint of the source files (or of the prepared TFDS version directory)
there makes a run with changed data miss the cache while an unchanged rerun hits it. A `source_dir` whose last
folder name holds `{SPAN}` is resolved to its newest span here, and the span goes onto the Examples artifact
(`sources.resolve_span`; the executor resolves it itself where no driver runs, as on Vertex AI).
"""

from typing import Any, Dict

from tfx.components.example_gen import driver as example_gen_driver
from tfx.components.example_gen import utils
from tfx.orchestration import data_types

from components.tfds_example_gen import executor, sources


class Driver(example_gen_driver.QueryBasedDriver):
    """QueryBasedDriver that adds the source fingerprint to the execution properties."""

    def resolve_exec_properties(self, exec_properties: Dict[str, Any],
                                pipeline_info: data_types.PipelineInfo,
                                component_info: data_types.ComponentInfo) -> Dict[str, Any]:
        exec_properties = super().resolve_exec_properties(exec_properties, pipeline_info, component_info)
        source_dir, span = sources.resolve_span(exec_properties.get(executor.SOURCE_DIR_KEY) or None)
        if span is not None:
            exec_properties[executor.SOURCE_DIR_KEY] = source_dir
            exec_properties[utils.SPAN_PROPERTY_NAME] = span
        exec_properties[utils.FINGERPRINT_PROPERTY_NAME] = sources.fingerprint(
            exec_properties[executor.DATASET_KEY],
            exec_properties.get(executor.DATA_DIR_KEY) or None,
            source_dir)
        return exec_properties
