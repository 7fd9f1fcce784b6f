"""A Pusher executor that never half-writes, overwrites or deletes a pushed model version.

TFX's stock Pusher copies straight into `<base_directory>/<version>/`; a crash mid-copy leaves a
partial version that a model server may load. This executor copies into a hidden staging
directory (`.<version>.incomplete`, which TF Serving and Vertex ignore), then renames it to
`<version>/` in one step. Versions are UNIX seconds, bumped when that second's version exists, so
a push never lands in an existing version. Each version records the model it came from
(`petseg_push.json`), so a model that is already published is not published again (after a push,
the next run re-evaluates the same model against itself as the new baseline). Unblessed models are
not pushed; nothing is deleted. The TFLite variants that met their targets (TfliteExport) are staged with the
model under `<version>/tflite/` (TF Serving ignores the extra directory), so they appear and vanish with it,
and so is the model card (`model_card.md` and `.html`, `model_card.py`) and what the request monitor compares
served requests with (`monitor_*.csv`, `components/request_monitor/monitor.py`).
"""

import json
import logging
import os
import time
from typing import Any, Callable, Dict, List, Optional, Sequence

from tfx import types
from tfx.components.pusher import executor as pusher_executor
from tfx.dsl.io import fileio
from tfx.proto import pusher_pb2
from tfx.types import artifact_utils, standard_component_specs
from tfx.utils import io_utils, proto_utils

from components.request_monitor import monitor
from components.tflite_export import executor as tflite_executor
from components.versioned_pusher import model_card
from modules import tflite
from modules.paths import numbered_versions


PUSH_RECORD = 'petseg_push.json'
TFLITE_MODELS_KEY = 'tflite_models'
TFLITE_SUBDIR = 'tflite'
MODEL_CARD_KEY = 'model_card'
# The optional inputs the model card is written from (besides the blessing and the TFLite variants).
CARD_INPUT_KEYS = ('examples', 'evaluation', 'full_size_evaluation', 'model_run')


def published_version_of(base_directory: str, model_path: str):
    """The version directory that already holds the model from `model_path`, or None."""
    for version in numbered_versions(base_directory):
        record = os.path.join(base_directory, str(version), PUSH_RECORD)
        if fileio.exists(record):
            with fileio.open(record) as f:
                if json.load(f).get('source') == model_path:
                    return os.path.join(base_directory, str(version))
    return None


def next_version(base_directory: str, now: float) -> int:
    """The version for a push at time `now`: its UNIX second, or one above the newest existing version."""
    versions = numbered_versions(base_directory)
    return max([int(now)] + [v + 1 for v in versions[-1:]])


def publish(model_path: str, base_directory: str, now: float, tflite_dir: str = None,
            tflite_variants: Sequence[str] = (), card: Optional[Callable[[int], Dict[str, str]]] = None) -> str:
    """Copies the SavedModel at `model_path` (and TFLite variants) to a new version directory, atomically named.

    Args:
      model_path: SavedModel directory to publish.
      base_directory: serving root holding numbered versions.
      now: current time in seconds.
      tflite_dir: TfliteExport's output directory.
      tflite_variants: the variants in it to publish under `tflite/` (with their metadata and the report).
      card: the version number -> {file name: text} written into the version (the model card, the monitor's
        references).

    Returns:
      The new version directory.

    Raises:
      FileNotFoundError: `model_path` holds no SavedModel.
    """
    if not fileio.exists(os.path.join(model_path, 'saved_model.pb')):
        raise FileNotFoundError(f'No SavedModel at {model_path!r}: nothing to push.')
    version = next_version(base_directory, now)
    staging = os.path.join(base_directory, f'.{version}.incomplete')
    final = os.path.join(base_directory, str(version))
    if fileio.exists(staging):
        fileio.rmtree(staging)  # left by a crashed push of this same version; never a published one
    fileio.makedirs(base_directory)
    io_utils.copy_dir(model_path, staging)
    if tflite_variants:
        target = os.path.join(staging, TFLITE_SUBDIR)
        fileio.makedirs(target)
        for name in [f'{v}.tflite' for v in tflite_variants] + [f'{v}.json' for v in tflite_variants] + [
                tflite.REPORT_FILE]:
            fileio.copy(os.path.join(tflite_dir, name), os.path.join(target, name))
    for name, text in (card(version) if card else {}).items():
        io_utils.write_string_file(os.path.join(staging, name), text)
    io_utils.write_string_file(os.path.join(staging, PUSH_RECORD), json.dumps(
        {'source': model_path, 'time': now, 'tflite': list(tflite_variants)}))
    if not fileio.exists(os.path.join(staging, 'saved_model.pb')):
        raise IOError(f'Copy of {model_path!r} to {staging!r} is incomplete; not publishing it.')
    fileio.rename(staging, final, overwrite=False)
    return final


class Executor(pusher_executor.Executor):
    """Pushes blessed models to a filesystem destination through stage-then-rename."""

    def Do(self, input_dict: Dict[str, List[types.Artifact]], output_dict: Dict[str, List[types.Artifact]],
           exec_properties: Dict[str, Any]) -> None:
        self._log_startup(input_dict, output_dict, exec_properties)
        model_push = artifact_utils.get_single_instance(output_dict[standard_component_specs.PUSHED_MODEL_KEY])
        if not self.CheckBlessing(input_dict):
            self._MarkNotPushed(model_push)
            return
        destination = pusher_pb2.PushDestination()
        proto_utils.json_to_proto(exec_properties[standard_component_specs.PUSH_DESTINATION_KEY], destination)
        if destination.WhichOneof('destination') != 'filesystem':
            raise ValueError('The versioned pusher pushes to a filesystem destination only.')
        model_path = self.GetModelPath(input_dict)
        base_directory = destination.filesystem.base_directory
        serving_path = published_version_of(base_directory, model_path)
        if serving_path:
            logging.info('Model %s is already published as %s; not publishing it again.', model_path, serving_path)
        else:
            tflite_models = (input_dict.get(TFLITE_MODELS_KEY) or [None])[0]
            variants = tflite_executor.passed_variants(tflite_models) if tflite_models else []
            now = time.time()
            serving_path = publish(model_path, base_directory, now, tflite_models.uri if tflite_models else None,
                                   variants, card=self._version_files(input_dict, exec_properties, model_path, now))
        io_utils.copy_dir(model_path, model_push.uri)
        self._MarkPushed(model_push, pushed_destination=serving_path, pushed_version=os.path.basename(serving_path))
        logging.info('Model pushed to %s.', serving_path)

    @classmethod
    def _version_files(cls, input_dict: Dict[str, List[types.Artifact]], exec_properties: Dict[str, Any],
                       model_path: str, now: float) -> Callable[[int], Dict[str, str]]:
        """The version number -> the files written into it: the model card, and what the request monitor
        compares the served model's requests with (the training images' sizes, the evaluated predictions)."""
        card = cls._card(input_dict, exec_properties, model_path, now)
        examples, evaluation = input_dict.get('examples'), input_dict.get('full_size_evaluation')
        references = monitor.reference_files(examples[0].uri, evaluation[0].uri) if examples and evaluation else {}
        return lambda version: {**(card(version) if card else {}), **references}

    @staticmethod
    def _card(input_dict: Dict[str, List[types.Artifact]], exec_properties: Dict[str, Any], model_path: str,
              now: float) -> Optional[Callable[[int], Dict[str, str]]]:
        """The model card of the version to be published, or None when the pipeline asked for none."""
        settings = exec_properties.get(MODEL_CARD_KEY)
        if not settings:
            return None
        inputs = {key: input_dict.get(key) or [] for key in (*CARD_INPUT_KEYS, 'infra_blessing', TFLITE_MODELS_KEY)}
        return lambda version: model_card.render(model_card.gather(
            inputs, json.loads(settings), model_path=model_path, version=str(version), pushed_at=now))
