"""FullSizeEvaluator: the candidate's figures at each eval image's own size, beside the Evaluator's.

    FullSizeEvaluator(model=trainer.outputs['model'], examples=example_gen.outputs['examples'],
                      max_examples=1000, worst_images=6, slice_features=('species', 'label'))

The Evaluator (TFMA) blesses on the model's input size against the resized mask, continuous with every run
so far; this component reports what a client of `serving_full_size` gets: pixel accuracy, IoU per class and
mean, and boundary IoU per class and mean against the original mask, plus each image's scores and the worst
images drawn. It gates nothing (docs/evaluation.md says why); the run summary, the report and the model
card show its figures.
"""

import json
from typing import Sequence

from tfx import types
from tfx.dsl.components.base import base_component, executor_spec
from tfx.types import component_spec, standard_artifacts

from components.full_size_eval import executor


class FullSizeEvaluation(types.Artifact):
    """A directory of `full_size.json`, `per_image.csv`, `worst_images.png` and `per_image_iou.png`."""

    TYPE_NAME = 'petseg.FullSizeEvaluation'


class FullSizeEvaluatorSpec(component_spec.ComponentSpec):
    """Inputs: the candidate and ExampleGen's raw examples; output: the full-size evaluation."""

    PARAMETERS = {
        executor.MAX_EXAMPLES_KEY: component_spec.ExecutionParameter(type=int),
        executor.WORST_IMAGES_KEY: component_spec.ExecutionParameter(type=int),
        executor.SLICE_FEATURES_KEY: component_spec.ExecutionParameter(type=str),
        executor.DILATION_RATIO_KEY: component_spec.ExecutionParameter(type=float),
    }
    INPUTS = {
        'model': component_spec.ChannelParameter(type=standard_artifacts.Model),
        'examples': component_spec.ChannelParameter(type=standard_artifacts.Examples),
    }
    OUTPUTS = {'full_size_evaluation': component_spec.ChannelParameter(type=FullSizeEvaluation)}


class FullSizeEvaluator(base_component.BaseComponent):
    """Scores a trained model on raw eval images at their own size."""

    SPEC_CLASS = FullSizeEvaluatorSpec
    EXECUTOR_SPEC = executor_spec.ExecutorClassSpec(executor.Executor)

    def __init__(self, model: types.BaseChannel, examples: types.BaseChannel, *, max_examples: int = 1000,
                 worst_images: int = 6, slice_features: Sequence[str] = (), dilation_ratio: float = 0.02):
        """Configures the evaluation.

        Args:
          model: the Trainer's Model channel.
          examples: ExampleGen's raw examples (eval split).
          max_examples: eval images scored at most.
          worst_images: the lowest-IoU images drawn.
          slice_features: features recorded with each image's scores (and named from file names).
          dilation_ratio: the boundary band's width as a fraction of the image diagonal (0.02, as the paper).
        """
        spec = FullSizeEvaluatorSpec(
            model=model, examples=examples, max_examples=max_examples, worst_images=worst_images,
            slice_features=json.dumps(list(slice_features)), dilation_ratio=float(dilation_ratio),
            full_size_evaluation=types.Channel(type=FullSizeEvaluation))
        super().__init__(spec=spec)
