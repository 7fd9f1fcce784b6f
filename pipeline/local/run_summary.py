"""What the latest local run did, read back from MLMD: component states and times, metrics, blessing, push.

`read_run_summary` finds the newest `pipeline_run` context of a pipeline and the executions in it
(cached ones included), then reads the Evaluator's metrics for the candidate and the baseline,
the validation result (why a model was or was not blessed) and the Pusher's destination.
`write_summary` saves it as JSON and Markdown; `format_table` gives the table for the log.
"""

import dataclasses
import json
import os
from typing import Collection, Dict, List, Optional, Set, Tuple

import ml_metadata as mlmd
import tensorflow as tf
import tensorflow_model_analysis as tfma
from google.protobuf import json_format
from ml_metadata.proto import metadata_store_pb2

from components import tfma_results
from components.full_size_eval import executor as full_size_executor
from components.gated_example_validator.executor import DRIFT_PROPERTY, read_anomalies
from components.tfds_example_gen import recorded
from modules.hparams import BATCHNORM_FILE, HISTORY_FILE, TRAINED_SETTINGS_FILE
from pipeline import node_ids
from pipeline.eval_config import GATED_METRICS, overall_threshold

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
    num_skipped: Dict[str, int] = dataclasses.field(default_factory=dict)
    # 'split: file name: reason' of each image/mask pair ExampleGen skipped.
    skipped_examples: List[str] = dataclasses.field(default_factory=list)
    # The classes ExampleGen recorded (the dataset's class description), in class-id order.
    classes: List[str] = dataclasses.field(default_factory=list)
    # split -> 'feature: what broke which bound', from ExampleValidator; drift against the previous data version
    anomalies: Dict[str, List[str]] = dataclasses.field(default_factory=dict)
    drift: Dict[str, List[str]] = dataclasses.field(default_factory=dict)
    final_epoch: Dict[str, float] = dataclasses.field(default_factory=dict)
    # The Trainer's recomputation of the BatchNorm statistics: images, layers, validation scores before and after.
    batchnorm: Dict[str, object] = dataclasses.field(default_factory=dict)
    # The serving check before the push: blessed, reasons (why not), figures (latency, accuracy, bad requests).
    serving_check: Dict[str, object] = dataclasses.field(default_factory=dict)
    # TfliteExport's report: the SavedModel's figures on the same images, then per variant size, scores,
    # latency, passed and reasons (modules/tflite.py).
    tflite: Dict[str, object] = dataclasses.field(default_factory=dict)
    # The Evaluator's slices: {'label=12': {'candidate': {metric: value}, 'baseline': {...}}}.
    slices: Dict[str, Dict[str, Dict[str, float]]] = dataclasses.field(default_factory=dict)
    # The FullSizeEvaluator's full_size.json (metrics at each image's size, worst images, slice value names).
    full_size: Dict[str, object] = dataclasses.field(default_factory=dict)
    full_size_uri: Optional[str] = None
    # When the run started (UNIX seconds), and the data version ExampleGen produced or reused.
    started: float = 0.0
    data_version: Dict[str, object] = dataclasses.field(default_factory=dict)
    # Peak resident memory (MiB) while each component ran, and 'run' for the whole run: measured by the local
    # runner (`pipeline/local/memory.py`), not recorded in MLMD.
    peak_rss_mb: Dict[str, float] = dataclasses.field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), indent=2, sort_keys=True)


def read_only_store(metadata_path: str) -> mlmd.MetadataStore:
    """A read-only connection to the MLMD SQLite file `metadata_path`."""
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


def _gates(eval_config_json: Optional[str]) -> Dict[str, Tuple[Optional[float], Optional[float]]]:
    """metric -> (absolute lower bound, allowed regression vs the baseline) from the Evaluator's eval_config."""
    if not eval_config_json:
        return {}
    eval_config = json_format.Parse(eval_config_json, tfma.EvalConfig())
    gates = {}
    for spec in eval_config.metrics_specs:
        for metric in spec.metrics:
            name = json.loads(metric.config or '{}').get('name', metric.class_name)
            threshold = overall_threshold(metric)
            if threshold is None:
                continue
            lower = (threshold.value_threshold.lower_bound.value
                     if threshold.value_threshold.HasField('lower_bound') else None)
            regression = (-threshold.change_threshold.absolute.value
                          if threshold.change_threshold.HasField('absolute') else None)
            gates[name] = (lower, regression)
    return gates


def _gate_reasons(gates, candidate: Dict[str, float], baseline: Dict[str, float], failed: Set[Tuple[str, bool]]):
    """One sentence per gated metric: the candidate's value against its bound and against the baseline."""
    reasons = []
    for name, (lower, regression) in gates.items():
        value = candidate.get(name)
        if value is None:
            reasons.append(f'{name}: not computed')
            continue
        if lower is not None:
            verdict = 'FAILED' if (name, False) in failed else 'ok'
            sign = '<' if (name, False) in failed else '>='
            reasons.append(f'{name} {value:.4f} {sign} bound {lower:.4f} ({verdict})')
        if regression is not None and name in baseline:
            floor = baseline[name] - regression
            verdict = 'FAILED' if (name, True) in failed else 'ok'
            sign = '<' if (name, True) in failed else '>='
            reasons.append(f'{name} {value:.4f} {sign} baseline {baseline[name]:.4f} - tolerance {regression:.4f} '
                           f'= {floor:.4f} ({verdict})')
    return reasons


def _slice_reasons(validation, slices: Dict[str, Dict[str, Dict[str, float]]]) -> List[str]:
    """One sentence per slice metric that failed its gate (`--max_slice_regression`), naming the slice."""
    reasons = []
    for per_slice in validation.metric_validations_per_slice:
        name = tfma_results.slice_name(per_slice.slice_key)
        for failure in per_slice.failures if name else ():
            metric = failure.metric_key.name
            scores = slices.get(name, {})
            value, base = scores.get('candidate', {}).get(metric), scores.get('baseline', {}).get(metric)
            figures = f' {value:.4f} vs baseline {base:.4f}' if value is not None and base is not None else ''
            reasons.append(f'slice {name}: {metric}{figures} fell below the slice tolerance (FAILED)')
    return reasons


def _blessing_reasons(evaluation_uri: str, gates, candidate: Dict[str, float], baseline: Dict[str, float],
                      has_baseline: bool, slices: Dict[str, Dict[str, Dict[str, float]]]) -> List[str]:
    validation = tfma.load_validation_result(evaluation_uri)
    failed = {(failure.metric_key.name, failure.metric_key.is_diff)
              for per_slice in validation.metric_validations_per_slice for failure in per_slice.failures
              if not per_slice.slice_key.single_slice_keys}
    reasons = _gate_reasons(gates, candidate, baseline, failed) + _slice_reasons(validation, slices)
    if not gates:  # an Evaluator run without our eval_config: TFMA's own messages
        reasons = [f'{name}{" vs baseline" if is_diff else ""} failed' for name, is_diff in sorted(failed)]
    if not has_baseline:
        reasons.append('no blessed baseline yet, so absolute bounds alone decide')
    return reasons


def _read_model_run_json(model_run_uri: str, name: str):
    return _read_json(os.path.join(model_run_uri, name))


def _read_json(path: str):
    if not tf.io.gfile.exists(path):
        return {}
    with tf.io.gfile.GFile(path) as f:
        return json.load(f)


def read_history(model_run_uri: str) -> Dict[str, List[float]]:
    """The Trainer's per-epoch metrics (`history.json` in its ModelRun); {} when it wrote none."""
    return _read_model_run_json(model_run_uri, HISTORY_FILE)


def read_trained_settings(model_run_uri: str) -> Dict[str, object]:
    """The settings the Trainer trained with (`training.json`: the config with the Tuner's values applied); {}
    for runs that wrote none."""
    return _read_model_run_json(model_run_uri, TRAINED_SETTINGS_FILE)


def _trainer_line(summary: RunSummary) -> str:
    """The validation scores of the exported model: after the BatchNorm statistics were recomputed, if they were
    (with the last epoch's before them), else the last epoch's."""
    names = [name for name in ('val_pixel_accuracy', 'val_mean_iou') if name in summary.final_epoch]
    if not summary.batchnorm.get('images'):
        return ', '.join(f'{name.replace("_", " ")} {summary.final_epoch[name]:.3f}' for name in names)
    after, before = summary.batchnorm['after'], summary.batchnorm['before']
    return (', '.join(f'{name.replace("_", " ")} {after[name]:.3f}' for name in names if name in after)
            + ' (BatchNorm statistics recomputed; before: '
            + ', '.join(f'{before[name]:.3f}' for name in names if name in before) + ')')


def _final_epoch(model_run_uri: str) -> Dict[str, float]:
    return {name: values[-1] for name, values in read_history(model_run_uri).items() if values}


def _runs(store: mlmd.MetadataStore, pipeline_name: str, metadata_path: str) -> List:
    """The pipeline's run contexts, oldest first."""
    runs = [c for c in store.get_contexts_by_type('pipeline_run')
            if any(p.name == pipeline_name for p in store.get_parent_contexts_by_context(c.id))]
    if not runs:
        raise ValueError(f'No run of pipeline {pipeline_name!r} in {metadata_path}')
    return sorted(runs, key=lambda c: c.create_time_since_epoch)


def _run_executions(store: mlmd.MetadataStore, pipeline_name: str, run) -> Tuple[List[ComponentRun], Dict]:
    """(every execution of the run as a ComponentRun, in order; node id -> its newest execution)."""
    node_of_execution = {}
    for node in store.get_contexts_by_type('node'):
        if node.name.startswith(pipeline_name + '.'):
            for execution in store.get_executions_by_context(node.id):
                node_of_execution[execution.id] = node.name[len(pipeline_name) + 1:]
    components, latest = [], {}
    for execution in sorted(store.get_executions_by_context(run.id), key=lambda e: e.create_time_since_epoch):
        node_id = node_of_execution.get(execution.id, execution.type)
        latest[node_id] = execution
        seconds = (execution.last_update_time_since_epoch - execution.create_time_since_epoch) / 1000.0
        components.append(ComponentRun(node_id, _STATE_NAMES.get(execution.last_known_state, '?'), seconds))
    return components, latest


def _json_property(artifact, name: str, default):
    value = artifact.custom_properties.get(name)
    return json.loads(value.string_value) if value else default


def _outputs(store: mlmd.MetadataStore, execution) -> Dict:
    return _artifacts_by_key(store, execution.id, (metadata_store_pb2.Event.OUTPUT,))


def _read_example_gen(store, execution, summary: RunSummary) -> None:
    for artifact in _outputs(store, execution).get('examples', []):
        facts = recorded.read(artifact)
        summary.num_examples, summary.num_skipped = facts['num_examples'], facts['num_skipped']
        summary.skipped_examples, summary.classes = facts['skipped_examples'], facts['classes']
        summary.examples_uri = artifact.uri
        summary.data_version = {**facts['data_version'], 'artifact_id': artifact.id}


def _read_example_validator(store, execution, summary: RunSummary) -> None:
    for artifact in _outputs(store, execution).get('anomalies', []):
        summary.anomalies = read_anomalies(artifact.uri)
        summary.drift = _json_property(artifact, DRIFT_PROPERTY, {})


def _read_trainer(store, execution, summary: RunSummary) -> None:
    outputs = _outputs(store, execution)
    summary.model_run_uri = outputs['model_run'][0].uri if outputs.get('model_run') else None
    if summary.model_run_uri:
        summary.final_epoch = _final_epoch(summary.model_run_uri)
        summary.batchnorm = _read_model_run_json(summary.model_run_uri, BATCHNORM_FILE)


def _read_evaluator(store, execution, summary: RunSummary) -> None:
    inputs = _artifacts_by_key(store, execution.id, (metadata_store_pb2.Event.INPUT,))
    outputs = _outputs(store, execution)
    summary.model_uri = inputs['model'][0].uri if inputs.get('model') else None
    summary.baseline_uri = inputs['baseline_model'][0].uri if inputs.get('baseline_model') else None
    if outputs.get('evaluation'):
        summary.evaluation_uri = outputs['evaluation'][0].uri
        metrics = tfma_results.metrics_by_model(summary.evaluation_uri)
        summary.candidate_metrics = metrics.get('candidate', {})
        summary.baseline_metrics = metrics.get('baseline', {})
        summary.slices = tfma_results.metrics_by_slice(summary.evaluation_uri)
    if outputs.get('blessing'):
        summary.blessed = bool(outputs['blessing'][0].custom_properties['blessed'].int_value)
        eval_config = execution.custom_properties.get('eval_config')
        summary.blessing_reasons = _blessing_reasons(
            summary.evaluation_uri, _gates(eval_config.string_value if eval_config else None),
            summary.candidate_metrics, summary.baseline_metrics, summary.baseline_uri is not None, summary.slices)


def _read_serving_check(store, execution, summary: RunSummary) -> None:
    for artifact in _outputs(store, execution).get('blessing', []):
        properties = artifact.custom_properties
        summary.serving_check = {
            'blessed': bool(properties['blessed'].int_value) if 'blessed' in properties else None,
            'reasons': _json_property(artifact, 'reasons', []), 'figures': _json_property(artifact, 'figures', {})}


def _read_tflite_export(store, execution, summary: RunSummary) -> None:
    for artifact in _outputs(store, execution).get('tflite_models', []):
        summary.tflite = _json_property(artifact, 'report', {})


def _read_full_size(store, execution, summary: RunSummary) -> None:
    for artifact in _outputs(store, execution).get('full_size_evaluation', []):
        summary.full_size_uri = artifact.uri
        summary.full_size = _read_json(os.path.join(artifact.uri, full_size_executor.RESULT_FILE))


def _read_pusher(store, execution, summary: RunSummary) -> None:
    for artifact in _outputs(store, execution).get('pushed_model', []):
        if artifact.custom_properties['pushed'].int_value:
            summary.pushed_to = artifact.custom_properties['pushed_destination'].string_value


# What the summary takes from each node's newest execution in the run.
_READERS = {node_ids.EXAMPLE_GEN: _read_example_gen, node_ids.EXAMPLE_VALIDATOR: _read_example_validator,
            node_ids.TRAINER: _read_trainer, node_ids.EVALUATOR: _read_evaluator,
            node_ids.SERVING_CHECK: _read_serving_check, node_ids.INFRA_VALIDATOR: _read_serving_check,
            node_ids.TFLITE_EXPORT: _read_tflite_export, node_ids.FULL_SIZE_EVALUATOR: _read_full_size,
            node_ids.PUSHER: _read_pusher}


def read_run_summary(metadata_path: str, pipeline_name: str, only: Optional[Collection[str]] = None) -> RunSummary:
    """Reads the newest run of `pipeline_name` from an SQLite MLMD database.

    Args:
      metadata_path: the run's metadata.db.
      pipeline_name: the pipeline's name.
      only: node ids whose outputs are read (counts, anomalies, metrics, ...); default all. The list of
        components and their states is always complete.

    Returns:
      The run's summary.

    Raises:
      ValueError: no run of that pipeline is recorded.
    """
    store = read_only_store(metadata_path)
    return _summary(store, pipeline_name, _runs(store, pipeline_name, metadata_path)[-1], only)


def read_run_summaries(metadata_path: str, pipeline_name: str) -> List[RunSummary]:
    """Every run of `pipeline_name` recorded in an SQLite MLMD database, oldest first (see `read_run_summary`)."""
    store = read_only_store(metadata_path)
    return [_summary(store, pipeline_name, run) for run in _runs(store, pipeline_name, metadata_path)]


def _summary(store: mlmd.MetadataStore, pipeline_name: str, run, only: Optional[Collection[str]] = None) -> RunSummary:
    components, latest = _run_executions(store, pipeline_name, run)
    summary = RunSummary(run.name, components, {}, {}, None, [], None, None, None, None, {})
    summary.started = run.create_time_since_epoch / 1000.0
    for node_id, read in _READERS.items():
        if node_id in latest and (only is None or node_id in only):
            read(store, latest[node_id], summary)
    return summary


_STATE_WORDS = {'COMPLETE': 'ran', 'CACHED': 'cached', 'FAILED': 'failed'}


def component_figure(summary: RunSummary, node_id: str) -> str:
    """The one figure that matters for a finished component, e.g. 'train 240, eval 60 examples, 0 skipped'."""
    if node_id == node_ids.EXAMPLE_GEN and summary.num_examples:
        counts = ', '.join(f'{split} {count}' for split, count in sorted(summary.num_examples.items()))
        named = '; '.join(summary.skipped_examples[:3]) + ('; ...' if len(summary.skipped_examples) > 3 else '')
        shown = ', '.join(summary.classes[:8]) + (', ...' if len(summary.classes) > 8 else '')
        classes = f', {len(summary.classes)} classes ({shown})' if summary.classes else ''
        return (f'{counts} examples, {sum(summary.num_skipped.values())} skipped' + (f' ({named})' if named else '')
                + classes)
    if node_id == node_ids.EXAMPLE_VALIDATOR:
        found = '; '.join(f'{split}: {line}' for split, lines in sorted(summary.anomalies.items()) for line in lines)
        drifted = sorted({line.split(':')[0] for lines in summary.drift.values() for line in lines})
        return (found or 'no anomalies') + (f'; drift in {", ".join(drifted)}' if drifted else '')
    if node_id == node_ids.TRAINER and summary.final_epoch:
        return _trainer_line(summary)
    if node_id == node_ids.EVALUATOR and summary.blessed is not None:
        shown = ', '.join(f'{name} {summary.candidate_metrics[name]:.3f}' for name in GATED_METRICS
                          if name in summary.candidate_metrics)
        worst = worst_slices(summary)
        return f'{shown}, {"BLESSED" if summary.blessed else "NOT BLESSED"}' + (
            '; worst slices: ' + ', '.join(_slice_line(summary, name) for name in worst) if worst else '')
    if node_id in (node_ids.SERVING_CHECK, node_ids.INFRA_VALIDATOR) and summary.serving_check:
        return serving_check_line(summary.serving_check)
    if node_id == node_ids.TFLITE_EXPORT and summary.tflite:
        return ', '.join(f'{name} {v["size_mb"]:.1f} MB {v["pixel_accuracy"]:.3f} ({"ok" if v["passed"] else "FAILED"})'
                         for name, v in summary.tflite['variants'].items())
    if node_id == node_ids.FULL_SIZE_EVALUATOR and summary.full_size:
        return full_size_line(summary.full_size)
    if node_id == node_ids.PUSHER:
        return f'pushed version {os.path.basename(summary.pushed_to)}' if summary.pushed_to else 'nothing pushed'
    return ''


def full_size_line(full_size: Dict[str, object]) -> str:
    """'pixel accuracy 0.951, mean IoU 0.781, boundary IoU 0.452 on 60 images; worst: a.jpg 0.41, ...'."""
    figures = full_size['metrics']
    worst = ', '.join(f'{w["file_name"]} {w["mean_iou"]:.2f}' for w in full_size.get('worst', [])[:3])
    return (f'pixel accuracy {figures["pixel_accuracy"]:.3f}, mean IoU {figures["mean_iou"]:.3f}, boundary IoU '
            f'{figures["mean_boundary_iou"]:.3f} on {figures["images"]} images at their own size'
            + (f'; worst: {worst}' if worst else ''))


def worst_slices(summary: RunSummary, count: int = 3, metric: str = 'mean_iou',
                 min_examples: Optional[int] = None) -> List[str]:
    """The `count` slices with the lowest candidate `metric`, worst first, among those of at least
    `min_examples` examples (default: 10, or the largest slice's count where all are smaller), so that a
    slice of one unlucky image does not make the list."""
    candidates = {name: scores['candidate'] for name, scores in summary.slices.items()
                  if metric in scores.get('candidate', {})}
    if min_examples is None:
        largest = max((int(c.get('example_count', 0)) for c in candidates.values()), default=0)
        min_examples = min(10, largest)
    scored = [(c[metric], name) for name, c in candidates.items() if c.get('example_count', 0) >= min_examples]
    return [name for _, name in sorted(scored)[:count]]


def _slice_line(summary: RunSummary, name: str) -> str:
    candidate = summary.slices[name]['candidate']
    return f'{name} mean IoU {candidate["mean_iou"]:.3f} (n {int(candidate.get("example_count", 0))})'


def slice_table(summary: RunSummary) -> List[str]:
    """Markdown rows: every slice, worst mean IoU first, candidate against baseline."""
    if not summary.slices:
        return []
    lines = ['| slice | examples | pixel accuracy | mean IoU | baseline mean IoU |', '|---|---|---|---|---|']
    for name in worst_slices(summary, count=len(summary.slices), min_examples=0):
        candidate, baseline = summary.slices[name]['candidate'], summary.slices[name].get('baseline', {})
        lines.append(f'| {name} | {int(candidate.get("example_count", 0))} | '
                     f'{_fmt(candidate.get("pixel_accuracy"))} | {_fmt(candidate.get("mean_iou"))} | '
                     f'{_fmt(baseline.get("mean_iou"))} |')
    return lines


def serving_check_line(check: Dict[str, object]) -> str:
    """'SERVES: p50 21 ms, p99 30 ms (budget 2000), ...' or 'DOES NOT SERVE: <reasons>'."""
    figures = check.get('figures') or {}
    shown = []
    if 'p50_ms' in figures:
        shown.append(f'p50 {figures["p50_ms"]} ms, p99 {figures["p99_ms"]} ms (budget {figures["latency_budget_ms"]:g})')
    if figures.get('served_pixel_accuracy') is not None:
        shown.append(f'served pixel accuracy {figures["served_pixel_accuracy"]:.4f} on {figures["eval_examples"]} images')
    if figures.get('bad_requests'):
        shown.append(f'{len(figures["bad_requests"])} bad requests handled')
    if check.get('blessed'):
        return 'SERVES: ' + ', '.join(shown)
    return 'DOES NOT SERVE: ' + '; '.join(check.get('reasons') or ['no reason recorded'])


def describe_node(metadata_path: str, pipeline_name: str, node_id: str) -> Tuple[str, str]:
    """(state word, figure) of `node_id` in the newest run, for the console: only that node's outputs are read."""
    summary = read_run_summary(metadata_path, pipeline_name, only=(node_id,))
    states = [c.state for c in summary.components if c.node_id == node_id]
    state = _STATE_WORDS.get(states[-1], states[-1].lower()) if states else 'ran'
    return state, component_figure(summary, node_id)


def format_table(summary: RunSummary) -> str:
    """Markdown table of candidate vs baseline metrics followed by the verdict and push location."""
    names = sorted((set(summary.candidate_metrics) | set(summary.baseline_metrics)) - {'example_count'},
                   key=lambda n: (n not in GATED_METRICS, n))
    lines = ['| metric | candidate | baseline |', '|---|---|---|']
    for name in names:
        candidate = summary.candidate_metrics.get(name)
        baseline = summary.baseline_metrics.get(name)
        lines.append(f'| {name} | {_fmt(candidate)} | {_fmt(baseline)} |')
    verdict = {True: 'BLESSED', False: 'NOT BLESSED', None: 'not evaluated'}[summary.blessed]
    lines += ['', f'**{verdict}**' + (': ' + '; '.join(summary.blessing_reasons) if summary.blessing_reasons else '')]
    if summary.serving_check:
        lines.append(f'Serving check: {serving_check_line(summary.serving_check)}')
    for split, problems in sorted(summary.anomalies.items()):
        lines.append(f'Data anomalies in {split}: ' + '; '.join(problems))
    for split, problems in sorted(summary.drift.items()):
        lines.append(f'Data drift in {split} against the previous data version: ' + '; '.join(problems))
    lines.append(f'Pushed to: {summary.pushed_to or "nothing pushed"}')
    worst = worst_slices(summary)
    if worst:
        lines.append('Worst slices: ' + ', '.join(_slice_line(summary, name) for name in worst))
    if summary.full_size:
        lines.append('Full size (reported, not gated): ' + full_size_line(summary.full_size))
    if summary.tflite:
        lines += ['', *tflite_table(summary)]
    return '\n'.join(lines)


def tflite_table(summary: RunSummary) -> List[str]:
    """Markdown rows: each TFLite variant next to the SavedModel, and whether it went out with the push."""
    reference = summary.tflite['saved_model']
    lines = [f'TFLite variants on {summary.tflite["eval_images"]} eval images (the SavedModel scores '
             f'{reference["pixel_accuracy"]:.4f} pixel accuracy, {reference["mean_iou"]:.4f} mean IoU on them; the '
             f'Evaluator {_fmt(summary.candidate_metrics.get("pixel_accuracy"))} on the whole split):', '',
             '| variant | size MB | pixel accuracy | mean IoU | same class as SavedModel | ms, 1 thread | '
             'ms, 2 threads | pushed |', '|---|---|---|---|---|---|---|---|']
    for name, v in summary.tflite['variants'].items():
        pushed = ('yes' if summary.pushed_to else 'no (the model was not pushed)') if v['passed'] else \
            'no: ' + '; '.join(v['reasons'])
        lines.append(f'| {name} | {v["size_mb"]:.1f} | {v["pixel_accuracy"]:.4f} | {v["mean_iou"]:.4f} | '
                     f'{v["agreement"] * 100:.2f}% | {v["latency_ms"]["1_thread"]:.1f} | '
                     f'{v["latency_ms"]["2_threads"]:.1f} | {pushed} |')
    return lines


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
        if summary.slices:
            f.write('\n## Slices\n\n' + '\n'.join(slice_table(summary)) + '\n')
    return path
