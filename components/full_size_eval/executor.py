"""FullSizeEvaluator's executor: scores the candidate at each eval image's own size and draws what fails.

Writes into the FullSizeEvaluation artifact: `full_size.json` (the dataset's figures, the slice value names
and the worst images by file), `per_image.csv` (every scored image, with its predicted class fractions), `worst_images.png` (image / truth /
prediction of the lowest-IoU images, named by file) and `per_image_iou.png` (the distribution). The figures
and the worst images' names are also custom properties, for the run summary and the model card.
"""

import csv
import json
import logging
import os
from typing import Any, Dict, List

from tfx import types
from tfx.dsl.components.base import base_executor
from tfx.types import artifact_utils

from components.full_size_eval import scoring
from modules import classes, paths, visualize

MAX_EXAMPLES_KEY = 'max_examples'
WORST_IMAGES_KEY = 'worst_images'
SLICE_FEATURES_KEY = 'slice_features'
DILATION_RATIO_KEY = 'dilation_ratio'
RESULT_FILE = 'full_size.json'
PER_IMAGE_FILE = 'per_image.csv'
WORST_IMAGES_FILE = 'worst_images.png'
HISTOGRAM_FILE = 'per_image_iou.png'
METRICS_PROPERTY = 'metrics'
WORST_PROPERTY = 'worst'


def write_outputs(result: scoring.FullSizeResult, output_dir: str, slice_features: List[str],
                  colors, dilation_ratio: float) -> Dict[str, Any]:
    """Writes the JSON, CSV and pictures of `result` into `output_dir`; returns what the JSON holds."""
    worst = [{'file_name': w.score.file_name, 'mean_iou': w.score.mean_iou, 'pixel_accuracy': w.score.pixel_accuracy,
              'mean_boundary_iou': w.score.mean_boundary_iou, **w.score.slices} for w in result.worst]
    summary = {'metrics': result.metrics, 'dilation_ratio': dilation_ratio, 'worst': worst,
               'slice_value_names': {f: scoring.slice_value_names(result.images, f) for f in slice_features}}
    with open(os.path.join(output_dir, RESULT_FILE), 'w') as f:
        json.dump(summary, f, indent=1)
    with open(os.path.join(output_dir, PER_IMAGE_FILE), 'w', newline='') as f:
        writer = csv.writer(f)
        fractions = list(result.images[0].predicted_fractions) if result.images else []
        writer.writerow(['file_name', *slice_features, 'height', 'width', 'pixel_accuracy', 'mean_iou',
                         'mean_boundary_iou', *fractions])
        for image in result.images:
            writer.writerow([image.file_name, *(image.slices.get(f, '') for f in slice_features), image.height,
                             image.width, f'{image.pixel_accuracy:.5f}', f'{image.mean_iou:.5f}',
                             f'{image.mean_boundary_iou:.5f}', *(f'{image.predicted_fractions[k]:.5f}' for k in fractions)])
    if result.worst:
        visualize.prediction_grid(
            [w.image for w in result.worst], [w.truth for w in result.worst], [w.predicted for w in result.worst],
            os.path.join(output_dir, WORST_IMAGES_FILE), title='Lowest mean IoU at full size',
            names=[f'{w.score.file_name}: IoU {w.score.mean_iou:.2f}' for w in result.worst], colors=colors)
    visualize.histogram([image.mean_iou for image in result.images], os.path.join(output_dir, HISTOGRAM_FILE),
                        title=f'Mean IoU per eval image at full size ({len(result.images)} images)',
                        xlabel='mean IoU of the image')
    return summary


class Executor(base_executor.BaseExecutor):
    """Scores up to `max_examples` eval images at full size; never blesses or blocks anything."""

    def Do(self, input_dict: Dict[str, List[types.Artifact]], output_dict: Dict[str, List[types.Artifact]],
           exec_properties: Dict[str, Any]) -> None:
        self._log_startup(input_dict, output_dict, exec_properties)
        model = artifact_utils.get_single_instance(input_dict['model'])
        examples = artifact_utils.get_single_instance(input_dict['examples'])
        output = artifact_utils.get_single_instance(output_dict['full_size_evaluation'])
        slice_features = json.loads(exec_properties[SLICE_FEATURES_KEY])
        dilation_ratio = float(exec_properties[DILATION_RATIO_KEY])
        model_dir = paths.serving_model_dir(model.uri)
        records = paths.read_gzip_records(paths.split_dir(examples.uri, 'eval'),
                                          limit=int(exec_properties[MAX_EXAMPLES_KEY]))
        result = scoring.score_examples(model_dir, records, slice_features, int(exec_properties[WORST_IMAGES_KEY]),
                                        dilation_ratio)
        os.makedirs(output.uri, exist_ok=True)
        summary = write_outputs(result, output.uri, slice_features, classes.read_from_model(model_dir)[0].colors,
                                dilation_ratio)
        output.set_json_value_custom_property(METRICS_PROPERTY, result.metrics)
        output.set_json_value_custom_property(WORST_PROPERTY, summary['worst'])
        logging.info('Full size on %d images: %s', len(result.images), result.metrics)
