"""TfdsExampleGen's driver: fingerprints the data source before the cache is consulted.

TFX looks up its cache after the driver has run, with the execution properties the driver
returns. Adding a fingerprint of the source files (or of the prepared TFDS version directory)
there makes a run with changed data miss the cache while an unchanged rerun hits it.
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
        exec_properties[utils.FINGERPRINT_PROPERTY_NAME] = sources.fingerprint(
            exec_properties[executor.DATASET_KEY],
            exec_properties.get(executor.DATA_DIR_KEY) or None,
            exec_properties.get(executor.SOURCE_DIR_KEY) or None)
        return exec_properties
