"""TfliteExport: converts the candidate to TFLite variants, scores them on the eval split, judges each.

    TfliteExport(model=trainer.outputs['model'], examples=transform.outputs['transformed_examples'],
                 transform_graph=transform.outputs['transform_graph'], variants=('float32', 'float16', 'int8'))

A component after the Trainer rather than code in `run_fn`: conversion and scoring are evaluation, not
training (a Vertex training job stays a training job); it is cached on its own, so changing a TFLite setting
does not retrain; and its figures and verdicts show as one step of the run. The Pusher copies the variants
that met their targets into the pushed version, only when the SavedModel itself is pushed.
"""

import json
from typing import Sequence

from tfx import types
from tfx.dsl.components.base import base_component, executor_spec
from tfx.types import component_spec, standard_artifacts

from components.tflite_export import executor


class TfliteModels(types.Artifact):
    """A directory of `<variant>.tflite` + `<variant>.json` files and `tflite.json` (figures and verdicts)."""

    TYPE_NAME = 'petseg.TfliteModels'


class TfliteExportSpec(component_spec.ComponentSpec):
    """Inputs: the candidate, Transform's examples and graph; output: the TFLite variants."""

    PARAMETERS = {
        executor.VARIANTS_KEY: component_spec.ExecutionParameter(type=str),
        executor.REPRESENTATIVE_EXAMPLES_KEY: component_spec.ExecutionParameter(type=int),
        executor.MAX_EVAL_EXAMPLES_KEY: component_spec.ExecutionParameter(type=int),
        executor.LATENCY_CALLS_KEY: component_spec.ExecutionParameter(type=int),
        executor.TOLERANCES_KEY: component_spec.ExecutionParameter(type=str),
        executor.INT8_MAX_SIZE_RATIO_KEY: component_spec.ExecutionParameter(type=float),
    }
    INPUTS = {
        'model': component_spec.ChannelParameter(type=standard_artifacts.Model),
        'examples': component_spec.ChannelParameter(type=standard_artifacts.Examples),
        'transform_graph': component_spec.ChannelParameter(type=standard_artifacts.TransformGraph),
    }
    OUTPUTS = {'tflite_models': component_spec.ChannelParameter(type=TfliteModels)}


class TfliteExport(base_component.BaseComponent):
    """Makes the TFLite variants of a trained model and says which of them may ship."""

    SPEC_CLASS = TfliteExportSpec
    EXECUTOR_SPEC = executor_spec.ExecutorClassSpec(executor.Executor)

    def __init__(self, model: types.BaseChannel, examples: types.BaseChannel, transform_graph: types.BaseChannel, *,
                 variants: Sequence[str] = ('float32', 'float16', 'int8'), representative_examples: int = 100,
                 max_eval_examples: int = 500, latency_calls: int = 20,
                 tolerances: Sequence[float] = (0.001, 0.002, 0.015), int8_max_size_ratio: float = 1 / 3):
        """Configures the export.

        Args:
          model: the Trainer's Model channel.
          examples: Transform's transformed examples (train split: int8 calibration; eval split: scoring).
          transform_graph: Transform's graph, for the transformed feature spec.
          variants: which of float32, float16, int8 to make.
          representative_examples: training images that calibrate the int8 activation ranges.
          max_eval_examples: eval images scored at most.
          latency_calls: timed single-image invokes per thread count.
          tolerances: how far below the SavedModel's pixel accuracy float32, float16 and int8 may be (fractions).
          int8_max_size_ratio: the int8 file's largest allowed size as a fraction of float32's.
        """
        spec = TfliteExportSpec(
            model=model, examples=examples, transform_graph=transform_graph,
            variants=json.dumps(list(variants)), representative_examples=representative_examples,
            max_eval_examples=max_eval_examples, latency_calls=latency_calls,
            tolerances=json.dumps([float(t) for t in tolerances]),
            int8_max_size_ratio=float(int8_max_size_ratio), tflite_models=types.Channel(type=TfliteModels))
        super().__init__(spec=spec)
