"""Compares what the served model receives with what it was trained and evaluated on: skew, drift, a verdict.

Two references, read from the files the Pusher stores in each version (`reference_files`, `version_references`;
lineage on Vertex AI lives in its metadata service), or, for a version pushed without them, found through MLMD
lineage (`petseg_push.json` names the Trainer's model; `references`):
- the training split the model was trained on (ExampleGen's examples, which carry each image's
  `image_height`, `image_width` and `image_channels`), for the request images' own features:
  training/serving skew;
- the FullSizeEvaluator's predictions of that same model on the eval images (`per_image.csv`), for the predicted
  class fractions: a model that suddenly predicts almost no pet has been sent something else.
Every feature is compared in bands (`bands`: 32 px for sizes, 5 points for class shares, channels as they
are): TFDV's Jensen-Shannon divergence of numeric histograms measured noise on windows of tens of requests
(1.0 between a share of 0% everywhere and one of 0-5%), while on categories it is 0 for the same distribution
and 1 for disjoint ones. A window of logged requests (`modules.request_log`) and each reference are summarised
with TFDV and compared (skew), and the window with the one before it (drift), per feature.
Retraining is warranted when a feature skews or drifts past its threshold and the window holds at least
`min_requests` requests.
"""

import csv
import dataclasses
import json
import os
import time
from typing import Dict, List, Optional, Sequence, Tuple

import ml_metadata as mlmd
import pandas as pd
import tensorflow as tf
import tensorflow_data_validation as tfdv
from ml_metadata.proto import metadata_store_pb2
from tensorflow_metadata.proto.v0 import schema_pb2, statistics_pb2

from components.full_size_eval import executor as full_size_executor
from components.versioned_pusher import executor as pusher_executor
from modules import keys, paths, request_log

IMAGE_FEATURES = keys.IMAGE_FEATURES
# Band widths: a model that predicts a class on 0.2% of one image's pixels and 0.5% of another's has not been
# sent anything different; a share that moves from 30% to 2% still shows, as does a size that halves.
FRACTION_STEP = 0.05
SIZE_STEP = 32
MAX_TRAINING_EXAMPLES = 20000
# Written into each pushed version (`reference_files`).
REFERENCE_FILES = {'training_images': 'monitor_training_images.csv',
                   'evaluated_predictions': 'monitor_evaluated_predictions.csv'}
VERDICT_FILE = 'verdict.json'
LATEST_FILE = 'latest.json'


@dataclasses.dataclass
class Thresholds:
    """Jensen-Shannon divergences above which a feature has skewed (vs the references) or drifted (vs the
    previous window), and the fewest requests a verdict needs."""

    skew: float = 0.3
    drift: float = 0.3
    min_requests: int = 50


@dataclasses.dataclass
class References:
    """What the served version was trained and evaluated on."""

    version: int
    model_uri: str
    training_images: pd.DataFrame
    evaluated_predictions: pd.DataFrame
    examples_uri: str
    full_size_uri: str


def _store(metadata_path: str) -> mlmd.MetadataStore:
    config = metadata_store_pb2.ConnectionConfig()
    config.sqlite.filename_uri = metadata_path
    config.sqlite.connection_mode = metadata_store_pb2.SqliteMetadataSourceConfig.READONLY
    return mlmd.MetadataStore(config)


def _neighbours(store: mlmd.MetadataStore, artifact_id: int, event_type) -> List[int]:
    """Executions that produced (OUTPUT) or consumed (INPUT) an artifact."""
    return [e.execution_id for e in store.get_events_by_artifact_ids([artifact_id]) if e.type == event_type]


def _artifacts_of(store: mlmd.MetadataStore, execution_id: int, event_type, type_name: str) -> List:
    ids = [e.artifact_id for e in store.get_events_by_execution_ids([execution_id]) if e.type == event_type]
    type_id = store.get_artifact_type(type_name).id
    return [a for a in store.get_artifacts_by_id(ids) if a.type_id == type_id]


def _upstream_examples(store: mlmd.MetadataStore, artifact_id: int) -> List:
    """Every Examples artifact upstream of an artifact (the Trainer's transformed examples, ExampleGen's raw ones)."""
    found, frontier, seen = [], [artifact_id], set()
    while frontier:
        current = frontier.pop()
        for execution_id in _neighbours(store, current, metadata_store_pb2.Event.OUTPUT):
            for example in _artifacts_of(store, execution_id, metadata_store_pb2.Event.INPUT, 'Examples'):
                if example.id not in seen:
                    seen.add(example.id)
                    found.append(example)
                    frontier.append(example.id)
    return found


def _version(serving_dir: str, version: Optional[int]) -> int:
    versions = paths.numbered_versions(serving_dir)
    if not versions:
        raise ValueError(f'No pushed version under {serving_dir}')
    if version is not None and version not in versions:
        raise ValueError(f'No version {version} under {serving_dir} (there are {versions})')
    return versions[-1] if version is None else version


def references(metadata_path: str, serving_dir: str, version: Optional[int] = None) -> References:
    """The served version's training statistics and evaluated predictions, through MLMD lineage.

    Args:
      metadata_path: the pipeline's MLMD database.
      serving_dir: the Pusher's serving root.
      version: the version to judge (default: the newest).

    Returns:
      The references.

    Raises:
      ValueError: no pushed version, or lineage that does not reach the statistics or the evaluation.
    """
    version = _version(serving_dir, version)
    with tf.io.gfile.GFile(os.path.join(serving_dir, str(version), pusher_executor.PUSH_RECORD)) as f:
        source = json.load(f)['source']
    store = _store(metadata_path)
    model_uri = os.path.dirname(source.rstrip('/'))
    models = [a for a in store.get_artifacts_by_uri(model_uri) if a.type_id == store.get_artifact_type('Model').id]
    if not models:
        raise ValueError(f'Version {version} came from {source}, which {metadata_path} does not know')
    model = models[0]
    # ExampleGen's examples (the transformed ones upstream of the Trainer came from them).
    raw = [examples for examples in _upstream_examples(store, model.id)
           for execution in store.get_executions_by_id(_neighbours(store, examples.id, metadata_store_pb2.Event.OUTPUT))
           if store.get_execution_types_by_id([execution.type_id])[0].name.endswith('ExampleGen')]
    evaluations = [a for execution_id in _neighbours(store, model.id, metadata_store_pb2.Event.INPUT)
                   for a in _artifacts_of(store, execution_id, metadata_store_pb2.Event.OUTPUT,
                                          'petseg.FullSizeEvaluation')]
    if not raw or not evaluations:
        raise ValueError(f'The lineage of version {version} ({model_uri}) reaches no '
                         + ('training examples' if not raw else 'full-size evaluation'))
    predicted = _predicted_fractions(os.path.join(evaluations[-1].uri, full_size_executor.PER_IMAGE_FILE))
    return References(version, model_uri, _image_features(paths.split_dir(raw[-1].uri, 'train')), predicted,
                      raw[-1].uri, evaluations[-1].uri)


def _image_features(split_uri: str) -> pd.DataFrame:
    """Each training example's image height, width and channels, as ExampleGen measured them (read in batches:
    the records hold the image bytes too)."""
    spec = {key: tf.io.FixedLenFeature([], tf.int64) for key in IMAGE_FEATURES}
    files = sorted(tf.io.gfile.glob(os.path.join(split_uri, '*')))
    columns = {key: [] for key in IMAGE_FEATURES}
    if files:
        records = tf.data.TFRecordDataset(files, compression_type='GZIP').take(MAX_TRAINING_EXAMPLES).batch(512)
        for batch in records:
            for key, value in tf.io.parse_example(batch, spec).items():
                columns[key].extend(value.numpy().tolist())
    return pd.DataFrame(columns, dtype='int64')


def _predicted_fractions(per_image_csv: str) -> pd.DataFrame:
    with tf.io.gfile.GFile(per_image_csv) as f:
        rows = list(csv.DictReader(f))
    columns = [name for name in (rows[0] if rows else {}) if name.endswith(keys.FRACTION_SUFFIX)]
    return pd.DataFrame({c: [float(r[c]) for r in rows] for c in columns})


def reference_files(examples_uri: str, full_size_uri: str) -> Dict[str, str]:
    """The references as CSV texts, to be stored beside a pushed version: the monitoring pipeline reads them from
    the serving directory, where no MLMD lineage reaches (Vertex AI keeps it in its own metadata service).

    Args:
      examples_uri: ExampleGen's Examples the model was trained on.
      full_size_uri: the FullSizeEvaluator's evaluation of the model.

    Returns:
      {file name: CSV text} (`REFERENCE_FILES`).
    """
    frames = {'training_images': _image_features(paths.split_dir(examples_uri, 'train')),
              'evaluated_predictions': _predicted_fractions(os.path.join(full_size_uri,
                                                                         full_size_executor.PER_IMAGE_FILE))}
    return {REFERENCE_FILES[name]: frame.to_csv(index=False) for name, frame in frames.items()}


def version_references(serving_dir: str, version: Optional[int] = None) -> References:
    """The references a pushed version carries (`reference_files`), without MLMD.

    Raises:
      ValueError: no pushed version, or one pushed without its references.
    """
    version_dir = os.path.join(serving_dir, str(_version(serving_dir, version)))
    found = {}
    for name, file_name in REFERENCE_FILES.items():
        path = os.path.join(version_dir, file_name)
        if not tf.io.gfile.exists(path):
            raise ValueError(f'{path} is missing: versions pushed before the monitor references were written carry '
                             'none; run `python -m pipeline.monitor`, which finds them through MLMD')
        with tf.io.gfile.GFile(path) as f:
            found[name] = pd.read_csv(f)
    return References(int(os.path.basename(version_dir)), version_dir, found['training_images'],
                      found['evaluated_predictions'], version_dir, version_dir)


def served_references(serving_dir: str, version: Optional[int], metadata_path: str) -> Tuple[References, str]:
    """The version's own reference files, or, for a version pushed before it carried them, its MLMD lineage.

    Returns:
      (references, where they were found: 'the version\'s files' or 'MLMD lineage').

    Raises:
      ValueError: no pushed version, or neither its files nor a lineage to follow.
    """
    try:
        return version_references(serving_dir, version), "the version's files"
    except ValueError as carried:
        if not os.path.exists(metadata_path):
            raise ValueError(f'{carried}; and there is no {metadata_path} to follow lineage in') from None
        return references(metadata_path, serving_dir, version), 'MLMD lineage'


def read_window(log_dir: str, since: float, until: float) -> pd.DataFrame:
    """The logged requests logged in [since, until) (UNIX seconds), one row per image, numeric features only."""
    rows = []
    for path in request_log.log_files(log_dir):
        for record in tf.data.TFRecordDataset(path).as_numpy_iterator():
            feature = tf.train.Example.FromString(record).features.feature
            logged_at = feature[request_log.LOGGED_AT_KEY].int64_list.value[0] / 1000
            if since <= logged_at < until:
                rows.append({name: (value.float_list.value or value.int64_list.value)[0]
                             for name, value in feature.items() if name != keys.IMAGE_KEY})
    return pd.DataFrame(rows)


def bands(frame: pd.DataFrame, columns: Sequence[str]) -> pd.DataFrame:
    """Each value as its band, a category: '5%' for a class share of 2.5-7.5%, '352px' for a side of 352-383
    pixels, '3' for three channels."""
    banded = {}
    for column in columns:
        values = frame[column].astype(float)
        if column.endswith(keys.FRACTION_SUFFIX):
            banded[column] = [f'{int(round(v / FRACTION_STEP)) * int(FRACTION_STEP * 100)}%' for v in values]
        elif column == keys.IMAGE_CHANNELS_KEY:
            banded[column] = [str(int(v)) for v in values]
        else:
            banded[column] = [f'{int(v) // SIZE_STEP * SIZE_STEP}px' for v in values]
    return pd.DataFrame(banded)


def _statistics(frame: pd.DataFrame, columns: Sequence[str]) -> statistics_pb2.DatasetFeatureStatisticsList:
    """TFDV statistics of the banded `columns`."""
    return tfdv.generate_statistics_from_dataframe(bands(frame, columns))


def _schema(reference: statistics_pb2.DatasetFeatureStatisticsList, features: Sequence[str], kind: str,
            threshold: float) -> schema_pb2.Schema:
    """A schema of `features` only, each with a Jensen-Shannon `kind` ('skew' or 'drift') comparator."""
    schema = tfdv.infer_schema(reference)
    for feature in list(schema.feature):
        if feature.name not in features:
            schema.feature.remove(feature)
            continue
        # Only the distribution is compared: the bands seen in training are not a contract.
        feature.ClearField('domain')
        comparator = feature.skew_comparator if kind == 'skew' else feature.drift_comparator
        comparator.jensen_shannon_divergence.threshold = threshold
    del schema.string_domain[:]
    return schema


def _measurements(anomalies, kind: str) -> Dict[str, float]:
    found = {}
    for info in anomalies.drift_skew_info:
        for measurement in (info.skew_measurements if kind == 'skew' else info.drift_measurements):
            found[info.path.step[-1]] = float(measurement.value)
    return found


def compare(window: pd.DataFrame, previous: pd.DataFrame, refs: References,
            thresholds: Thresholds) -> Dict[str, object]:
    """Skew against the references and drift against the previous window, per feature, and the verdict.

    Args:
      window: the logged requests to judge (`read_window`).
      previous: the window before it (may be empty: no drift is measured then).
      refs: the served version's references.
      thresholds: when a divergence counts, and how many requests a verdict needs.

    Returns:
      The verdict's JSON-ready dict: `requests`, `skew` and `drift` ({feature: divergence}), `skewed` and
      `drifted` (the features past their threshold), `retrain` and `reasons`.
    """
    fractions = [c for c in window.columns if c.endswith(keys.FRACTION_SUFFIX)]
    image_features = [c for c in IMAGE_FEATURES if c in window.columns]
    verdict: Dict[str, object] = {'requests': int(len(window)), 'previous_requests': int(len(previous)),
                                  'version': refs.version, 'skew': {}, 'drift': {}, 'skewed': [], 'drifted': [],
                                  'thresholds': dataclasses.asdict(thresholds)}
    if len(window) == 0:
        verdict.update(retrain=False, reasons=['no logged requests in the window'])
        return verdict
    serving = _statistics(window, image_features + fractions)
    for reference, features in ((refs.training_images, image_features), (refs.evaluated_predictions, fractions)):
        features = [f for f in features if f in reference.columns]
        if not features or reference.empty:
            continue
        before = _statistics(reference, features)
        found = tfdv.validate_statistics(before, _schema(before, features, 'skew', thresholds.skew),
                                         serving_statistics=serving)
        verdict['skew'].update(_measurements(found, 'skew'))
    if len(previous):
        columns = [c for c in image_features + fractions if c in previous.columns]
        before = _statistics(previous, columns)
        found = tfdv.validate_statistics(_statistics(window, columns), _schema(before, columns, 'drift',
                                                                                thresholds.drift),
                                         previous_statistics=before)
        verdict['drift'] = _measurements(found, 'drift')
    verdict['skewed'] = sorted(f for f, v in verdict['skew'].items() if v > thresholds.skew)
    verdict['drifted'] = sorted(f for f, v in verdict['drift'].items() if v > thresholds.drift)
    reasons = [f'skew in {f}: {verdict["skew"][f]:.3f} > {thresholds.skew}' for f in verdict['skewed']]
    reasons += [f'drift in {f}: {verdict["drift"][f]:.3f} > {thresholds.drift}' for f in verdict['drifted']]
    enough = len(window) >= thresholds.min_requests
    if not enough:
        reasons.append(f'only {len(window)} requests in the window (a verdict needs {thresholds.min_requests})')
    verdict.update(retrain=bool(enough and (verdict['skewed'] or verdict['drifted'])),
                   reasons=reasons or ['no feature skewed or drifted'])
    return verdict


def table(verdict: Dict[str, object]) -> str:
    """Markdown: each feature's skew and drift against its threshold, then the verdict."""
    features = sorted(set(verdict['skew']) | set(verdict['drift']))
    lines = ['| feature | skew (vs training / evaluation) | drift (vs previous window) |', '|---|---|---|']
    for feature in features:
        cells = []
        for kind, flagged in (('skew', 'skewed'), ('drift', 'drifted')):
            value = verdict[kind].get(feature)
            cells.append('-' if value is None else f'{value:.3f}' + (' **past threshold**' if feature in verdict[flagged]
                                                                     else ''))
        lines.append(f'| {feature} | {cells[0]} | {cells[1]} |')
    lines += ['', f'{verdict["requests"]} requests (previous window {verdict["previous_requests"]}): '
              + ('RETRAINING WARRANTED' if verdict['retrain'] else 'no retraining needed') + ': '
              + '; '.join(verdict['reasons'])]
    return '\n'.join(lines)


def windows(until: float, hours: float, since: Optional[float] = None,
            previous_since: Optional[float] = None) -> Tuple[Tuple[float, float], Tuple[float, float]]:
    """((since, until), (previous since, since)): the window judged and the one before it, of the same length
    unless `previous_since` says otherwise."""
    since = until - hours * 3600 if since is None else since
    previous_since = since - (until - since) if previous_since is None else previous_since
    return (since, until), (previous_since, since)


def judge(log_dir: str, refs: References, thresholds: Thresholds, until: float, hours: float,
          since: Optional[float] = None, previous_since: Optional[float] = None) -> Dict[str, object]:
    """`compare` on the window of `log_dir` ending at `until` and the one before it, with where it looked."""
    (since, until), (previous_since, _) = windows(until, hours, since, previous_since)
    verdict = compare(read_window(log_dir, since, until), read_window(log_dir, previous_since, since), refs,
                      thresholds)
    verdict.update(checked_at=time.time(), window=[since, until], previous_window=[previous_since, since],
                   log_dir=log_dir, training_examples=refs.examples_uri, evaluated_predictions=refs.full_size_uri)
    return verdict


def write_verdict(verdict: Dict[str, object], directory: str) -> str:
    """Writes `verdict-<UTC time>.json` and `latest.json` (what the server page and `--when_drift` read) into
    `directory`; returns the latter's path."""
    tf.io.gfile.makedirs(directory)
    stamp = time.strftime('%Y%m%dT%H%M%SZ', time.gmtime(verdict['checked_at']))
    for name in (f'verdict-{stamp}.json', LATEST_FILE):
        with tf.io.gfile.GFile(os.path.join(directory, name), 'w') as f:
            f.write(json.dumps(verdict, indent=1))
    return os.path.join(directory, LATEST_FILE)
