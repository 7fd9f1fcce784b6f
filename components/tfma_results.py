"""Reads an Evaluator's overall-slice metrics back, per model: shared by the serving check and the run summary."""

from typing import Dict

import tensorflow_model_analysis as tfma


def metrics_by_model(evaluation_uri: str) -> Dict[str, Dict[str, float]]:
    """{'candidate': {metric: value}, 'baseline': {...}} of the overall slice (diffs left out).

    Args:
      evaluation_uri: a ModelEvaluation artifact's directory.

    Returns:
      Metrics per model; a model without metrics is absent.
    """
    by_model: Dict[str, Dict[str, float]] = {}
    for metrics_for_slice in tfma.load_metrics(evaluation_uri):
        if metrics_for_slice.slice_key.single_slice_keys:
            continue  # overall slice only
        for item in metrics_for_slice.metric_keys_and_values:
            if item.key.is_diff or not item.value.HasField('double_value'):
                continue
            model = 'baseline' if item.key.model_name == 'baseline' else 'candidate'
            by_model.setdefault(model, {})[item.key.name] = item.value.double_value.value
    return by_model
