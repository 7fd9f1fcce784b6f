"""What the latest local run did, read back from MLMD: component states and times, metrics, blessing, push.

`read_run_summary` finds the newest `pipeline_run` context of a pipeline and the executions in it
(cached ones included), then reads the Evaluator's metrics for the candidate and the baseline,
the validation result (why a model was or was not blessed) and the Pusher's destination.
`write_summary` saves it as JSON and Markdown; `format_table` gives the table for the log.
"""

import dataclasses
import json
import os
from typing import Dict, List, Optional

import ml_metadata as mlmd
import tensorflow_model_analysis as tfma
from ml_metadata.proto import metadata_store_pb2

from pipeline.eval_config import GATED_METRICS

SUMMARY_JSON = 'evaluation_summary.json'
SUMMARY_MARKDOWN = 'evaluation_summary.md'
_STATE_NAMES = {metadata_store_pb2.Execution.State.Value(n): n for n in ('COMPLETE', 'CACHED', 'FAILED', 'RUNNING', 'NEW', 'CANCELED', 'UNKNOWN')}


@dataclasses.dataclass
class ComponentRun:
    """One node's execution in the run."""

    node_id: str
    state: str
    seconds: float


@dataclasses.dataclass
class RunSummary:
    """The facts a person checks after a run."""

    run_id: str
    components: List[ComponentRun]
    candidate_metrics: Dict[str, float]
    baseline_metrics: Dict[str, float]
    blessed: Optional[bool]
    blessing_reasons: List[str]
    pushed_to: Optional[str]
    model_uri: Optional[str]
    baseline_uri: Optional[str]
    evaluation_uri: Optional[str]
    num_examples: Dict[str, int]
    examples_uri: Optional[str] = None
    model_run_uri: Optional[str] = None

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), indent=2, sort_keys=True)


def _store(metadata_path: str) -> mlmd.MetadataStore:
    config = metadata_store_pb2.ConnectionConfig()
    config.sqlite.filename_uri = metadata_path
    config.sqlite.connection_mode = metadata_store_pb2.SqliteMetadataSourceConfig.READONLY
    return mlmd.MetadataStore(config)


def _artifacts_by_key(store: mlmd.MetadataStore, execution_id: int, event_types) -> Dict[str, list]:
    events = [e for e in store.get_events_by_execution_ids([execution_id]) if e.type in event_types]
    artifacts = {a.id: a for a in store.get_artifacts_by_id([e.artifact_id for e in events])}
    by_key: Dict[str, list] = {}
    for event in events:
        # One artifact in two roles (candidate and baseline) is one event whose path names both keys.
        for step in event.path.steps:
            if step.WhichOneof('value') == 'key':
                by_key.setdefault(step.key, []).append(artifacts[event.artifact_id])
    return by_key


def _metrics_by_model(evaluation_uri: str) -> Dict[str, Dict[str, float]]:
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


def _blessing_reasons(evaluation_uri: str, blessed: Optional[bool], has_baseline: bool) -> List[str]:
    validation = tfma.load_validation_result(evaluation_uri)
    reasons = []
    for per_slice in validation.metric_validations_per_slice:
        for failure in per_slice.failures:
            reasons.append(f'{failure.metric_key.name}'
                           f'{" vs baseline" if failure.metric_key.is_diff else ""}: {failure.message.strip()}')
    if blessed and not reasons:
        bounds = ', '.join(GATED_METRICS)
        reasons.append(f'{bounds} above their lower bounds'
                       + (' and within the allowed regression of the baseline' if has_baseline
                          else '; no blessed baseline yet, so absolute bounds alone decide'))
    return reasons


def read_run_summary(metadata_path: str, pipeline_name: str) -> RunSummary:
    """Reads the newest run of `pipeline_name` from an SQLite MLMD database.

    Args:
      metadata_path: the run's metadata.db.
      pipeline_name: the pipeline's name.

    Returns:
      The run's summary.

    Raises:
      ValueError: no run of that pipeline is recorded.
    """
    store = _store(metadata_path)
    runs = [c for c in store.get_contexts_by_type('pipeline_run')
            if any(p.name == pipeline_name for p in store.get_parent_contexts_by_context(c.id))]
    if not runs:
        raise ValueError(f'No run of pipeline {pipeline_name!r} in {metadata_path}')
    run = max(runs, key=lambda c: c.create_time_since_epoch)
    node_of_execution = {}
    for node in store.get_contexts_by_type('node'):
        if node.name.startswith(pipeline_name + '.'):
            for execution in store.get_executions_by_context(node.id):
                node_of_execution[execution.id] = node.name[len(pipeline_name) + 1:]
    executions = sorted(store.get_executions_by_context(run.id), key=lambda e: e.create_time_since_epoch)
    components, latest = [], {}
    for execution in executions:
        node_id = node_of_execution.get(execution.id, execution.type)
        latest[node_id] = execution
        seconds = (execution.last_update_time_since_epoch - execution.create_time_since_epoch) / 1000.0
        components.append(ComponentRun(node_id, _STATE_NAMES.get(execution.last_known_state, '?'), seconds))

    summary = RunSummary(run.name, components, {}, {}, None, [], None, None, None, None, {})
    if 'TfdsExampleGen' in latest:
        examples = _artifacts_by_key(store, latest['TfdsExampleGen'].id, (metadata_store_pb2.Event.OUTPUT,))
        for artifact in examples.get('examples', []):
            counts = artifact.custom_properties.get('num_examples')
            summary.num_examples = json.loads(counts.string_value) if counts else {}
            summary.examples_uri = artifact.uri
    if 'Trainer' in latest:
        outputs = _artifacts_by_key(store, latest['Trainer'].id, (metadata_store_pb2.Event.OUTPUT,))
        summary.model_run_uri = outputs['model_run'][0].uri if outputs.get('model_run') else None
    if 'Evaluator' in latest:
        inputs = _artifacts_by_key(store, latest['Evaluator'].id, (metadata_store_pb2.Event.INPUT,))
        outputs = _artifacts_by_key(store, latest['Evaluator'].id, (metadata_store_pb2.Event.OUTPUT,))
        summary.model_uri = inputs['model'][0].uri if inputs.get('model') else None
        summary.baseline_uri = inputs['baseline_model'][0].uri if inputs.get('baseline_model') else None
        if outputs.get('evaluation'):
            summary.evaluation_uri = outputs['evaluation'][0].uri
            metrics = _metrics_by_model(summary.evaluation_uri)
            summary.candidate_metrics = metrics.get('candidate', {})
            summary.baseline_metrics = metrics.get('baseline', {})
        if outputs.get('blessing'):
            summary.blessed = bool(outputs['blessing'][0].custom_properties['blessed'].int_value)
            summary.blessing_reasons = _blessing_reasons(summary.evaluation_uri, summary.blessed,
                                                         summary.baseline_uri is not None)
    if 'Pusher' in latest:
        outputs = _artifacts_by_key(store, latest['Pusher'].id, (metadata_store_pb2.Event.OUTPUT,))
        for artifact in outputs.get('pushed_model', []):
            if artifact.custom_properties['pushed'].int_value:
                summary.pushed_to = artifact.custom_properties['pushed_destination'].string_value
    return summary


def format_table(summary: RunSummary) -> str:
    """Markdown table of candidate vs baseline metrics followed by the verdict and push location."""
    names = sorted(set(summary.candidate_metrics) | set(summary.baseline_metrics),
                   key=lambda n: (n not in GATED_METRICS, n))
    lines = ['| metric | candidate | baseline |', '|---|---|---|']
    for name in names:
        candidate = summary.candidate_metrics.get(name)
        baseline = summary.baseline_metrics.get(name)
        lines.append(f'| {name} | {_fmt(candidate)} | {_fmt(baseline)} |')
    verdict = {True: 'BLESSED', False: 'NOT BLESSED', None: 'not evaluated'}[summary.blessed]
    lines += ['', f'**{verdict}**' + (': ' + '; '.join(summary.blessing_reasons) if summary.blessing_reasons else ''),
              f'Pushed to: {summary.pushed_to or "nothing pushed"}']
    return '\n'.join(lines)


def _fmt(value: Optional[float]) -> str:
    return '-' if value is None else f'{value:.4f}'


def write_summary(summary: RunSummary, directory: str) -> str:
    """Writes `evaluation_summary.json` and `.md` into `directory`; returns the Markdown path."""
    os.makedirs(directory, exist_ok=True)
    with open(os.path.join(directory, SUMMARY_JSON), 'w') as f:
        f.write(summary.to_json())
    path = os.path.join(directory, SUMMARY_MARKDOWN)
    with open(path, 'w') as f:
        f.write(f'# Evaluation of run {summary.run_id}\n\n{format_table(summary)}\n')
    return path
