"""ExampleValidator executor that turns data anomalies into a failed run, naming each feature and bound.

TFX's ExampleValidator writes anomalies and carries on: a Trainer downstream trains on whatever came.
This executor runs TFX's validation unchanged, then reads what it wrote; with `fail_on_anomalies` it
raises `DataAnomaliesError` listing every anomaly (split, feature, what broke which bound), so the run
stops before Transform's output is trained on. Without it the anomalies are logged as warnings.

Given the statistics of the previous data version (`previous_statistics`), it also compares each split's
per-example image features (`keys.is_drift_feature`) with them, TFDV's Jensen-Shannon drift comparator at
`drift_threshold`, and records what drifted on the anomalies artifact (`drift` custom property). Drift is
reported, not a gate: new data is expected to differ somewhat.
"""

import json
import logging
import os
from typing import Any, Dict, List

import tensorflow as tf
import tensorflow_data_validation as tfdv
from tensorflow_metadata.proto.v0 import anomalies_pb2, schema_pb2
from tfx import types
from tfx.components.example_validator import executor as example_validator_executor
from tfx.components.statistics_gen import stats_artifact_utils
from tfx.types import artifact_utils, standard_component_specs
from tfx.utils import io_utils

from modules import keys

FAIL_ON_ANOMALIES_KEY = 'fail_on_anomalies'
PREVIOUS_STATISTICS_KEY = 'previous_statistics'
DRIFT_THRESHOLD_KEY = 'drift_threshold'
MIN_DRIFT_EXAMPLES = 10
DRIFT_PROPERTY = 'drift'


class DataAnomaliesError(RuntimeError):
    """The statistics of the data break the schema; the message lists each anomaly."""


def read_anomalies(anomalies_uri: str) -> Dict[str, List[str]]:
    """split -> ['feature: description', ...] from an ExampleValidator Anomalies artifact (splits without any omitted)."""
    found = {}
    for path in sorted(tf.io.gfile.glob(os.path.join(anomalies_uri, 'Split-*', 'SchemaDiff.pb'))):
        with tf.io.gfile.GFile(path, 'rb') as f:
            anomalies = anomalies_pb2.Anomalies.FromString(f.read())
        split = os.path.basename(os.path.dirname(path))[len('Split-'):]
        lines = [f'{feature}: {info.description or info.short_description}'
                 for feature, info in sorted(anomalies.anomaly_info.items())]
        if anomalies.HasField('dataset_anomaly_info'):
            lines.append(f'dataset: {anomalies.dataset_anomaly_info.description}')
        if lines:
            found[split] = lines
    return found


def drift_between(current: types.Artifact, previous: types.Artifact, schema: schema_pb2.Schema,
                  threshold: float) -> Dict[str, List[str]]:
    """split -> 'feature: drift description' where a per-example image feature's (`keys.is_drift_feature`)
    distribution moved past `threshold`.

    Args:
      current: this run's ExampleStatistics.
      previous: the previous data version's ExampleStatistics.
      schema: the pipeline's schema (TFDV compares features whose type it declares).
      threshold: the Jensen-Shannon divergence above which a feature has drifted.

    Returns:
      Drifted features per split; splits without drift, or of fewer than `MIN_DRIFT_EXAMPLES` examples in either
      version, are omitted.
    """
    current_stats = {split: stats_artifact_utils.load_statistics(current, split).proto()
                     for split in artifact_utils.decode_split_names(current.split_names)}
    previous_splits = set(artifact_utils.decode_split_names(previous.split_names))
    schema = schema_pb2.Schema.FromString(schema.SerializeToString())
    for feature in schema.feature:
        if keys.is_drift_feature(feature.name):
            feature.drift_comparator.jensen_shannon_divergence.threshold = threshold
    drift = {}
    for split, stats in current_stats.items():
        if split not in previous_splits:
            continue
        before = stats_artifact_utils.load_statistics(previous, split).proto()
        if min(stats.datasets[0].num_examples, before.datasets[0].num_examples) < MIN_DRIFT_EXAMPLES:
            continue  # a handful of images differ by chance: 6 against 6 other pets measured 0.55
        found = tfdv.validate_statistics(stats, schema, previous_statistics=before)
        lines = [f'{name}: {info.description or info.short_description}'
                 for name, info in sorted(found.anomaly_info.items())
                 if any(reason.type == anomalies_pb2.AnomalyInfo.COMPARATOR_JENSEN_SHANNON_DIVERGENCE_HIGH
                        for reason in info.reason)]
        if lines:
            drift[split] = lines
    return drift


def describe(anomalies: Dict[str, List[str]]) -> str:
    """'train: pet_fraction: ...; eval: ...' for a log line or an error."""
    return '; '.join(f'{split}: {line}' for split, lines in sorted(anomalies.items()) for line in lines)


class Executor(example_validator_executor.Executor):
    """Validates statistics against the schema, then fails or warns on anomalies."""

    def Do(self, input_dict: Dict[str, List[types.Artifact]], output_dict: Dict[str, List[types.Artifact]],
           exec_properties: Dict[str, Any]):
        result = super().Do(input_dict, output_dict, exec_properties)
        previous = input_dict.get(PREVIOUS_STATISTICS_KEY) or []
        current = artifact_utils.get_single_instance(input_dict[standard_component_specs.STATISTICS_KEY])
        if previous and previous[0].uri != current.uri:
            schema = io_utils.SchemaReader().read(io_utils.get_only_uri_in_dir(
                artifact_utils.get_single_uri(input_dict[standard_component_specs.SCHEMA_KEY])))
            drift = drift_between(current, previous[0], schema, float(exec_properties[DRIFT_THRESHOLD_KEY]))
            if drift:
                logging.warning('Data drift against the previous data version: %s', describe(drift))
            for artifact in result.output_artifacts[standard_component_specs.ANOMALIES_KEY].artifacts:
                artifact.custom_properties[DRIFT_PROPERTY].string_value = json.dumps(drift, sort_keys=True)
        anomalies_uri = artifact_utils.get_single_uri(output_dict[standard_component_specs.ANOMALIES_KEY])
        anomalies = read_anomalies(anomalies_uri)
        if anomalies and exec_properties.get(FAIL_ON_ANOMALIES_KEY):
            raise DataAnomaliesError(
                f'data anomalies, training stopped: {describe(anomalies)}. Fix the data, or relax the bound in the '
                f'schema, or pass --anomalies warn to train anyway. Details: {anomalies_uri}')
        if anomalies:
            logging.warning('Data anomalies (training anyway, anomalies=warn): %s', describe(anomalies))
        return result
