"""TfliteExport's executor: reads Transform's images, calls `modules.tflite.export_variants`, records verdicts.

The TfliteModels artifact gets `passed` (the variants that met their targets, JSON) and `report` (the
figures) as custom properties, for the Pusher and the run summary.
"""

import json
import logging
from typing import Any, Dict, List

import tensorflow as tf
import tensorflow_transform as tft
from tfx import types
from tfx.dsl.components.base import base_executor
from tfx.types import artifact_utils
from tfx.utils import path_utils

from modules import data, paths, tflite

VARIANTS_KEY = 'variants'
REPRESENTATIVE_EXAMPLES_KEY = 'representative_examples'
MAX_EVAL_EXAMPLES_KEY = 'max_eval_examples'
LATENCY_CALLS_KEY = 'latency_calls'
TOLERANCES_KEY = 'tolerances'
INT8_MAX_SIZE_RATIO_KEY = 'int8_max_size_ratio'
PASSED_PROPERTY = 'passed'
REPORT_PROPERTY = 'report'


def read_images(split_uri: str, transform_graph_uri: str, limit: int):
    """(images float32 [N, S, S, 3], masks [N, S, S, 1]) of up to `limit` transformed examples."""
    spec = tft.TFTransformOutput(transform_graph_uri).transformed_feature_spec()
    feature_spec = {data.IMAGE_XF: spec[data.IMAGE_XF], data.MASK_XF: spec[data.MASK_XF]}
    records = paths.read_gzip_records(split_uri, limit=limit)
    if not records:
        raise ValueError(f'No transformed examples in {split_uri}')
    parsed = tf.io.parse_example(tf.constant(records), feature_spec)
    return parsed[data.IMAGE_XF].numpy(), parsed[data.MASK_XF].numpy()


def passed_variants(artifact: types.Artifact) -> List[str]:
    """The variants of a TfliteModels artifact that met their targets."""
    value = artifact.mlmd_artifact.custom_properties.get(PASSED_PROPERTY)
    return json.loads(value.string_value) if value is not None else []


class Executor(base_executor.BaseExecutor):
    """Converts, scores, times and judges each TFLite variant."""

    def Do(self, input_dict: Dict[str, List[types.Artifact]], output_dict: Dict[str, List[types.Artifact]],
           exec_properties: Dict[str, Any]) -> None:
        self._log_startup(input_dict, output_dict, exec_properties)
        model = artifact_utils.get_single_instance(input_dict['model'])
        examples = artifact_utils.get_single_instance(input_dict['examples'])
        transform_graph = artifact_utils.get_single_instance(input_dict['transform_graph'])
        output = artifact_utils.get_single_instance(output_dict['tflite_models'])
        variants = json.loads(exec_properties[VARIANTS_KEY])
        tolerances = dict(zip(tflite.VARIANTS, json.loads(exec_properties[TOLERANCES_KEY])))
        representative, _ = read_images(paths.split_dir(examples.uri, 'train'), transform_graph.uri,
                                        int(exec_properties[REPRESENTATIVE_EXAMPLES_KEY]))
        eval_images, eval_masks = read_images(paths.split_dir(examples.uri, 'eval'), transform_graph.uri,
                                              int(exec_properties[MAX_EVAL_EXAMPLES_KEY]))
        report = tflite.export_variants(
            path_utils.serving_model_path(model.uri, path_utils.is_old_model_artifact(model)), output.uri, variants,
            list(representative), eval_images, eval_masks,
            tflite.Targets(tolerances, float(exec_properties[INT8_MAX_SIZE_RATIO_KEY])),
            latency_calls=int(exec_properties[LATENCY_CALLS_KEY]), progress=lambda line: logging.info('TFLite %s', line))
        passed = [name for name, result in report['variants'].items() if result['passed']]
        output.set_string_custom_property(PASSED_PROPERTY, json.dumps(passed))
        output.set_string_custom_property(REPORT_PROPERTY, json.dumps(report))
        for name, result in report['variants'].items():
            logging.info('TFLite %s: %s', name, 'passed' if result['passed'] else 'NOT pushed: ' + '; '.join(result['reasons']))
