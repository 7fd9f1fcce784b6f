"""ServingCheck: TFX's InfraValidator idea without Docker or Kubernetes; the Pusher takes its InfraBlessing.

    ServingCheck(model=trainer.outputs['model'], examples=example_gen.outputs['examples'],
                 evaluation=evaluator.outputs['evaluation'], latency_budget_ms=250.0)

It proves, in a fresh process, that the candidate loads, has the signatures of the serving contract, answers
every eval image with a valid mask that agrees with the Evaluator, rejects the bad-request catalogue cleanly,
gives full-size masks and meets the latency budget. See `executor.py` for the decision.
"""

from typing import Optional

from tfx import types
from tfx.dsl.components.base import base_component, executor_spec
from tfx.types import component_spec, standard_artifacts

from components.serving_check import executor


class ServingCheckSpec(component_spec.ComponentSpec):
    """Inputs: the candidate, the examples (eval split), the Evaluator's output; output: an InfraBlessing."""

    PARAMETERS = {
        executor.MAX_EXAMPLES_KEY: component_spec.ExecutionParameter(type=int),
        executor.LATENCY_CALLS_KEY: component_spec.ExecutionParameter(type=int),
        executor.LATENCY_BUDGET_MS_KEY: component_spec.ExecutionParameter(type=float),
        executor.ACCURACY_TOLERANCE_KEY: component_spec.ExecutionParameter(type=float),
        executor.TIMEOUT_S_KEY: component_spec.ExecutionParameter(type=int),
    }
    INPUTS = {
        'model': component_spec.ChannelParameter(type=standard_artifacts.Model),
        'examples': component_spec.ChannelParameter(type=standard_artifacts.Examples),
        'evaluation': component_spec.ChannelParameter(type=standard_artifacts.ModelEvaluation, optional=True),
    }
    OUTPUTS = {'blessing': component_spec.ChannelParameter(type=standard_artifacts.InfraBlessing)}


class ServingCheck(base_component.BaseComponent):
    """Blesses a model for pushing only when it demonstrably serves."""

    SPEC_CLASS = ServingCheckSpec
    EXECUTOR_SPEC = executor_spec.ExecutorClassSpec(executor.Executor)

    def __init__(self, model: types.BaseChannel, examples: types.BaseChannel,
                 evaluation: Optional[types.BaseChannel] = None, *, max_examples: int = 200,
                 latency_calls: int = 50, latency_budget_ms: float = 2000.0, accuracy_tolerance: float = 0.005,
                 timeout_s: int = 900):
        """Configures the check.

        Args:
          model: the Trainer's Model channel.
          examples: ExampleGen's Examples (its eval split is served).
          evaluation: the Evaluator's ModelEvaluation, to compare served pixel accuracy with.
          max_examples: eval images sent at most.
          latency_calls: timed calls of one 500x375 JPEG after warm-up (p50/p99).
          latency_budget_ms: the highest acceptable p99 latency.
          accuracy_tolerance: allowed difference from the Evaluator's pixel accuracy (0.005 = 0.5 points).
          timeout_s: the probe process is killed (and the model not blessed) after this long.
        """
        spec = ServingCheckSpec(
            model=model, examples=examples, evaluation=evaluation, max_examples=max_examples,
            latency_calls=latency_calls, latency_budget_ms=float(latency_budget_ms),
            accuracy_tolerance=float(accuracy_tolerance), timeout_s=timeout_s,
            blessing=types.Channel(type=standard_artifacts.InfraBlessing))
        super().__init__(spec=spec)
