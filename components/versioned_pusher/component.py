"""VersionedPusher: TFX's Pusher with an executor that stages each push and renames it into place.

    VersionedPusher(model=..., model_blessing=..., infra_blessing=..., tflite_models=...,
                    push_destination=PushDestination(
                        filesystem=PushDestination.Filesystem(base_directory='/serving/petseg')))

With `tflite_models`, the TFLite variants that met their targets go into the same version, under `tflite/`;
with `model_card` (and the artifacts it is written from), `model_card.md` and `.html` too.
"""

import json
from typing import Any, Dict, Optional

from tfx import types
from tfx.dsl.components.base import base_component, executor_spec
from tfx.proto import pusher_pb2
from tfx.types import component_spec, standard_artifacts, standard_component_specs

from components.full_size_eval.component import FullSizeEvaluation
from components.tflite_export.component import TfliteModels
from components.versioned_pusher import executor


class VersionedPusherSpec(standard_component_specs.PusherSpec):
    """TFX's Pusher inputs plus the optional TFLite variants and what the model card is written from."""

    PARAMETERS = {**standard_component_specs.PusherSpec.PARAMETERS,
                  executor.MODEL_CARD_KEY: component_spec.ExecutionParameter(type=str, optional=True)}
    INPUTS = {**standard_component_specs.PusherSpec.INPUTS,
              executor.TFLITE_MODELS_KEY: component_spec.ChannelParameter(type=TfliteModels, optional=True),
              'examples': component_spec.ChannelParameter(type=standard_artifacts.Examples, optional=True),
              'evaluation': component_spec.ChannelParameter(type=standard_artifacts.ModelEvaluation, optional=True),
              'full_size_evaluation': component_spec.ChannelParameter(type=FullSizeEvaluation, optional=True),
              'model_run': component_spec.ChannelParameter(type=standard_artifacts.ModelRun, optional=True)}


class VersionedPusher(base_component.BaseComponent):
    """Pushes blessed models to `<base_directory>/<version>/`, never touching published versions."""

    SPEC_CLASS = VersionedPusherSpec
    EXECUTOR_SPEC = executor_spec.ExecutorClassSpec(executor.Executor)

    def __init__(self, model: types.BaseChannel, model_blessing: types.BaseChannel,
                 push_destination: pusher_pb2.PushDestination, infra_blessing: Optional[types.BaseChannel] = None,
                 tflite_models: Optional[types.BaseChannel] = None, model_card: Optional[Dict[str, Any]] = None,
                 **card_inputs: types.BaseChannel):
        """Configures the push.

        Args:
          model: the Trainer's Model channel.
          model_blessing: the Evaluator's blessing.
          push_destination: a filesystem destination (numbered versions under its base directory).
          infra_blessing: the serving check's blessing; required to push when given.
          tflite_models: TfliteExport's variants; those that passed are pushed with the model.
          model_card: `model_card.card_settings`' dict; each version then gets its model card.
          **card_inputs: what the card is written from (`executor.CARD_INPUT_KEYS`: examples, evaluation,
            full_size_evaluation, model_run).
        """
        unknown = sorted(set(card_inputs) - set(executor.CARD_INPUT_KEYS))
        if unknown:
            raise ValueError(f'VersionedPusher takes no input {", ".join(unknown)}')
        spec = VersionedPusherSpec(
            model=model, model_blessing=model_blessing, infra_blessing=infra_blessing,
            tflite_models=tflite_models, push_destination=push_destination, custom_config='null',
            model_card=json.dumps(model_card) if model_card else None,
            pushed_model=types.Channel(type=standard_artifacts.PushedModel), **card_inputs)
        super().__init__(spec=spec)
