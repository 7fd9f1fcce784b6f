"""ServingCheck's executor: runs the probe in a fresh process, judges its findings, writes an InfraBlessing.

The probe (`probe.py`) loads the candidate SavedModel in a new Python process, as a model server would, and
reports what it saw; `judge` turns those findings and the configured budget into blessed / not blessed with
one reason per failed check. The InfraBlessing artifact carries `blessed`, the reasons and the figures as
custom properties, with `serving_check.json` (everything) beside TFX's INFRA_BLESSED / INFRA_NOT_BLESSED file.
A probe that crashes or hangs names the request it was serving, and the model is not blessed.
"""

import dataclasses
import json
import logging
import os
import subprocess
import sys
from typing import Any, Dict, List, Optional

from tfx import types
from tfx.dsl.components.base import base_executor
from tfx.types import artifact_utils
from tfx.utils import io_utils, path_utils

from components import tfma_results
from components.serving_check import requests
from modules import paths

MAX_EXAMPLES_KEY = 'max_examples'
LATENCY_CALLS_KEY = 'latency_calls'
LATENCY_BUDGET_MS_KEY = 'latency_budget_ms'
ACCURACY_TOLERANCE_KEY = 'accuracy_tolerance'
TIMEOUT_S_KEY = 'timeout_s'
REPORT_FILE = 'serving_check.json'
_BLESSED_FILES = {True: 'INFRA_BLESSED', False: 'INFRA_NOT_BLESSED'}


@dataclasses.dataclass
class Verdict:
    """What the check concluded, with the figures a person wants to see."""

    blessed: bool
    reasons: List[str]
    figures: Dict[str, Any]


def read_findings(path: str) -> List[Dict[str, Any]]:
    if not os.path.exists(path):
        return []
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def judge(findings: List[Dict[str, Any]], *, latency_budget_ms: float, accuracy_tolerance: float,
          evaluator_pixel_accuracy: Optional[float], evaluated_examples: Optional[int],
          failure: Optional[str] = None) -> Verdict:
    """Blessed when every check passed; otherwise one reason per failure.

    Args:
      findings: the probe's JSON lines, in order.
      latency_budget_ms: the highest acceptable p99 latency of one 500x375 JPEG.
      accuracy_tolerance: how far (as a fraction, 0.005 = 0.5 points) served pixel accuracy may differ from
        the Evaluator's view of the same model.
      evaluator_pixel_accuracy: the Evaluator's pixel accuracy of this model, if known.
      evaluated_examples: how many eval examples the Evaluator saw (its figure is comparable only when the
        probe sent them all).
      failure: how the probe process ended, when it did not finish ('exit code -9', 'timed out after 600 s').

    Returns:
      The verdict.
    """
    by_kind: Dict[str, List[Dict[str, Any]]] = {}
    for finding in findings:
        by_kind.setdefault(finding['kind'], []).append(finding)
    reasons, figures = [], {}
    if failure:
        started = [f['name'] for f in by_kind.get('bad_request_started', [])]
        finished = [f['name'] for f in by_kind.get('bad_request', [])]
        during = f' while serving the bad request {started[-1]!r}' if len(started) > len(finished) else ''
        reasons.append(f'the serving process died ({failure}){during}')
    if not by_kind.get('loaded'):
        reasons.append('the SavedModel did not load in a fresh process')
    for name, problems in (by_kind.get('signatures') or [{'problems': {}}])[0]['problems'].items():
        if problems:
            reasons.append(f'signature {name}: {"; ".join(problems)}')
    if by_kind.get('loaded'):
        figures['load_s'] = round(by_kind['loaded'][0]['seconds'], 2)
    evaluation = (by_kind.get('eval_split') or [None])[0]
    if evaluation:
        figures['eval_examples'] = evaluation['examples']
        figures['served_pixel_accuracy'] = evaluation['pixel_accuracy']
        reasons += [f'invalid mask for eval {problem}' for problem in evaluation['invalid']]
        served, reference = evaluation['pixel_accuracy'], evaluation['serving_tf_example_pixel_accuracy']
        if served is not None and abs(served - reference) > accuracy_tolerance:
            reasons.append(f'served pixel accuracy {served:.4f} differs from serving_tf_example\'s {reference:.4f} '
                           f'by more than {accuracy_tolerance:.4f}')
        if served is not None and evaluator_pixel_accuracy is not None and evaluation['examples'] == evaluated_examples:
            figures['evaluator_pixel_accuracy'] = evaluator_pixel_accuracy
            if abs(served - evaluator_pixel_accuracy) > accuracy_tolerance:
                reasons.append(f'served pixel accuracy {served:.4f} differs from the Evaluator\'s '
                               f'{evaluator_pixel_accuracy:.4f} by more than {accuracy_tolerance:.4f}')
    bad = by_kind.get('bad_request', [])
    figures['bad_requests'] = {f['name']: f['outcome'] for f in bad}
    for finding in bad:
        allowed = {requests.MASK, requests.ERROR} if finding['expect'] == requests.EITHER else {finding['expect']}
        if finding['outcome'] not in allowed:
            reasons.append(f'bad request {finding["name"]!r}: expected {finding["expect"]}, got {finding["outcome"]}'
                           + (f' ({finding["detail"]})' if finding['detail'] else ''))
    for finding in by_kind.get('full_size', []):
        reasons += [f'full-size mask {problem}' for problem in finding['problems']]
    latency = (by_kind.get('latency') or [None])[0]
    if latency:
        figures.update(p50_ms=round(latency['p50_ms'], 1), p99_ms=round(latency['p99_ms'], 1),
                       latency_budget_ms=latency_budget_ms)
        if latency['p99_ms'] > latency_budget_ms:
            reasons.append(f'p99 latency {latency["p99_ms"]:.1f} ms of one 500x375 JPEG is over the budget of '
                           f'{latency_budget_ms:.1f} ms')
    if not failure and not by_kind.get('done'):
        reasons.append('the check did not finish')
    return Verdict(not reasons, reasons, figures)


def _evaluator_view(evaluation: Optional[types.Artifact], examples: types.Artifact):
    """(pixel accuracy the Evaluator reported for the candidate, eval examples it scored), or Nones.

    The Evaluator scores the whole eval split, whose size ExampleGen records on the Examples artifact.
    """
    if evaluation is None:
        return None, None
    accuracy = tfma_results.metrics_by_model(evaluation.uri).get('candidate', {}).get('pixel_accuracy')
    count = examples.mlmd_artifact.custom_properties.get('num_examples_eval')
    return accuracy, count.int_value if count is not None else None


class Executor(base_executor.BaseExecutor):
    """Checks that the candidate serves, in a fresh process, and blesses it or not."""

    def Do(self, input_dict: Dict[str, List[types.Artifact]], output_dict: Dict[str, List[types.Artifact]],
           exec_properties: Dict[str, Any]) -> None:
        self._log_startup(input_dict, output_dict, exec_properties)
        model = artifact_utils.get_single_instance(input_dict['model'])
        examples = artifact_utils.get_single_instance(input_dict['examples'])
        evaluation = (input_dict.get('evaluation') or [None])[0]
        blessing = artifact_utils.get_single_instance(output_dict['blessing'])
        os.makedirs(blessing.uri, exist_ok=True)
        findings_path = os.path.join(blessing.uri, 'findings.jsonl')
        timeout_s = int(exec_properties[TIMEOUT_S_KEY])
        command = [sys.executable, '-m', 'components.serving_check.probe',
                   '--model', path_utils.serving_model_path(model.uri, path_utils.is_old_model_artifact(model)),
                   '--examples', paths.split_dir(examples.uri, 'eval'), '--out', findings_path,
                   '--max_examples', str(exec_properties[MAX_EXAMPLES_KEY]),
                   '--latency_calls', str(exec_properties[LATENCY_CALLS_KEY])]
        failure = None
        try:
            done = subprocess.run(command, capture_output=True, text=True, timeout=timeout_s)
            logging.info('Serving check probe output:\n%s', done.stderr[-5000:])
            if done.returncode:
                failure = f'exit code {done.returncode}'
        except subprocess.TimeoutExpired:
            failure = f'timed out after {timeout_s} s'
        accuracy, count = _evaluator_view(evaluation, examples)
        verdict = judge(read_findings(findings_path), latency_budget_ms=float(exec_properties[LATENCY_BUDGET_MS_KEY]),
                        accuracy_tolerance=float(exec_properties[ACCURACY_TOLERANCE_KEY]),
                        evaluator_pixel_accuracy=accuracy, evaluated_examples=count, failure=failure)
        write_blessing(blessing, verdict)
        logging.info('Serving check: %s. %s', 'blessed' if verdict.blessed else 'NOT blessed',
                     '; '.join(verdict.reasons) or json.dumps(verdict.figures))


def write_blessing(blessing: types.Artifact, verdict: Verdict) -> None:
    """Marks `blessing` the way TFX's InfraValidator does, plus the reasons, figures and a JSON report."""
    io_utils.write_string_file(os.path.join(blessing.uri, _BLESSED_FILES[verdict.blessed]), '')
    io_utils.write_string_file(os.path.join(blessing.uri, REPORT_FILE), json.dumps(dataclasses.asdict(verdict), indent=1))
    blessing.set_int_custom_property('blessed', int(verdict.blessed))
    blessing.set_string_custom_property('reasons', json.dumps(verdict.reasons))
    blessing.set_string_custom_property('figures', json.dumps(verdict.figures))
