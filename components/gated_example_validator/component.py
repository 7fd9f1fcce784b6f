"""GatedExampleValidator: TFX's ExampleValidator with a switch that makes anomalies stop the run, and drift.

    GatedExampleValidator(statistics=..., schema=..., fail_on_anomalies=True,
                          previous_statistics=latest_statistics_resolver.outputs['statistics'])

Make the Trainer depend on it (`trainer.add_upstream_node(validator)`) so that, on every orchestrator,
training starts only after the data passed.
"""

from typing import Optional

from tfx import types
from tfx.dsl.components.base import base_component, executor_spec
from tfx.types import component_spec, standard_artifacts, standard_component_specs
from tfx.utils import json_utils

from components.gated_example_validator import executor


class GatedExampleValidatorSpec(standard_component_specs.ExampleValidatorSpec):
    """ExampleValidator's parameters plus `fail_on_anomalies` and drift; the previous statistics as input."""

    PARAMETERS = {
        **standard_component_specs.ExampleValidatorSpec.PARAMETERS,
        executor.FAIL_ON_ANOMALIES_KEY: component_spec.ExecutionParameter(type=int),
        executor.DRIFT_THRESHOLD_KEY: component_spec.ExecutionParameter(type=float),
    }
    INPUTS = {
        **standard_component_specs.ExampleValidatorSpec.INPUTS,
        executor.PREVIOUS_STATISTICS_KEY: component_spec.ChannelParameter(
            type=standard_artifacts.ExampleStatistics, optional=True),
    }


class GatedExampleValidator(base_component.BaseComponent):
    """Validates statistics against a schema; anomalies fail the run unless `fail_on_anomalies` is False."""

    SPEC_CLASS = GatedExampleValidatorSpec
    EXECUTOR_SPEC = executor_spec.ExecutorClassSpec(executor.Executor)

    def __init__(self, statistics: types.BaseChannel, schema: types.BaseChannel, fail_on_anomalies: bool = True,
                 previous_statistics: Optional[types.BaseChannel] = None, drift_threshold: float = 0.3):
        """Configures the component.

        Args:
          statistics: StatisticsGen's ExampleStatistics channel.
          schema: the Schema channel.
          fail_on_anomalies: raise on anomalies (True) or only log them (False).
          previous_statistics: the previous data version's statistics (a resolver's output), for drift.
          drift_threshold: Jensen-Shannon divergence above which a per-example image feature has drifted.
        """
        spec = GatedExampleValidatorSpec(
            statistics=statistics, schema=schema, exclude_splits=json_utils.dumps([]),
            anomalies=types.Channel(type=standard_artifacts.ExampleAnomalies),
            fail_on_anomalies=int(fail_on_anomalies), previous_statistics=previous_statistics,
            drift_threshold=float(drift_threshold))
        super().__init__(spec=spec)
