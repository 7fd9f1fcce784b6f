"""Reads an Evaluator's metrics back, per model and slice: shared by the serving check, the run summary and the
model card."""

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


def slice_name(slice_key) -> str:
    """'species=1', 'label=12', or '' for the overall slice, from TFMA's `SliceKey` proto."""
    parts = []
    for key in slice_key.single_slice_keys:
        kind = key.WhichOneof('kind')
        value = getattr(key, kind)
        parts.append(f'{key.column}={value.decode() if isinstance(value, bytes) else value}')
    return ', '.join(parts)


def metrics_by_slice(evaluation_uri: str) -> Dict[str, Dict[str, Dict[str, float]]]:
    """{slice name: {'candidate': {metric: value}, 'baseline': {...}}} of every slice but the overall one.

    Args:
      evaluation_uri: a ModelEvaluation artifact's directory.

    Returns:
      Metrics per slice and model (diffs left out), `example_count` among them; {} without slices.
    """
    by_slice: Dict[str, Dict[str, Dict[str, float]]] = {}
    for metrics_for_slice in tfma.load_metrics(evaluation_uri):
        name = slice_name(metrics_for_slice.slice_key)
        if not name:
            continue
        for item in metrics_for_slice.metric_keys_and_values:
            if item.key.is_diff or not item.value.HasField('double_value'):
                continue
            model = 'baseline' if item.key.model_name == 'baseline' else 'candidate'
            by_slice.setdefault(name, {}).setdefault(model, {})[item.key.name] = item.value.double_value.value
    return by_slice
