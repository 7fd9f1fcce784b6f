"""The history of a pipeline's local runs from MLMD: one row per run, and its metrics drawn over the runs.

Each row says when the run started, which data version it read (ExampleGen's Examples artifact: span,
version and source fingerprint; a cached ExampleGen reuses the artifact, so an unchanged source shows the
same id), the candidate's gated metrics, whether it was blessed and why not, and the version it pushed.
"""

import datetime
import os
from typing import List, Optional

import matplotlib

matplotlib.use('Agg')  # no display on servers and CI

import matplotlib.pyplot as plt  # noqa: E402

from pipeline.local import run_summary  # noqa: E402
from pipeline.local.run_summary import RunSummary  # noqa: E402


def _when(seconds: float) -> str:
    return datetime.datetime.fromtimestamp(seconds, datetime.timezone.utc).strftime('%Y-%m-%d %H:%M:%S')


def _data(summary: RunSummary) -> str:
    version = summary.data_version
    if not version:
        return '-'
    fingerprint = (version.get('fingerprint') or '').split('\n')[0][-12:]
    return f'#{version["artifact_id"]} span {version["span"]}' + (f' ({fingerprint})' if fingerprint else '')


def _verdict(summary: RunSummary) -> str:
    if summary.blessed is None:
        failed = [c.node_id for c in summary.components if c.state == 'FAILED']
        return 'not evaluated' + (f' ({", ".join(failed)} failed)' if failed else '')
    if summary.blessed:
        check = summary.serving_check
        if check and check.get('blessed') is False:
            return 'BLESSED; ' + run_summary.serving_check_line(check)
        return 'BLESSED'
    failures = [reason for reason in summary.blessing_reasons if 'FAILED' in reason]
    return 'NOT BLESSED: ' + ('; '.join(failures) or '; '.join(summary.blessing_reasons))


def table(summaries: List[RunSummary]) -> str:
    """Markdown table of the runs, oldest first."""
    lines = ['| # | started (UTC) | data | pixel accuracy | mean IoU | verdict | pushed |', '|---|---|---|---|---|---|---|']
    for number, summary in enumerate(summaries, 1):
        metrics = summary.candidate_metrics
        pushed = os.path.basename(summary.pushed_to) if summary.pushed_to else '-'
        lines.append(f'| {number} | {_when(summary.started)} | {_data(summary)} | '
                     f'{_fmt(metrics.get("pixel_accuracy"))} | {_fmt(metrics.get("mean_iou"))} | '
                     f'{_verdict(summary)} | {pushed} |')
    return '\n'.join(lines)


def _fmt(value: Optional[float]) -> str:
    return '-' if value is None else f'{value:.4f}'


def plot(summaries: List[RunSummary], path: str) -> str:
    """Draws each run's candidate pixel accuracy and mean IoU, blessed runs filled; returns `path`."""
    figure, axis = plt.subplots(figsize=(7, 3.5))
    numbers = range(1, len(summaries) + 1)
    for metric, color in (('pixel_accuracy', '#4c72b0'), ('mean_iou', '#dd8452')):
        values = [s.candidate_metrics.get(metric) for s in summaries]
        axis.plot([n for n, v in zip(numbers, values) if v is not None], [v for v in values if v is not None],
                  '-', color=color, label=metric.replace('_', ' '))
        for number, value, summary in zip(numbers, values, summaries):
            if value is not None:
                axis.plot(number, value, 'o', color=color, markerfacecolor=color if summary.blessed else 'white')
    axis.set_xlabel('run (filled: blessed)')
    axis.set_ylabel('candidate on the eval split')
    axis.set_xticks(list(numbers))
    axis.legend(loc='lower right')
    figure.tight_layout()
    figure.savefig(path, dpi=80)
    plt.close(figure)
    return path


def read(run_dir: str, pipeline_name: str) -> List[RunSummary]:
    """Every run of the pipeline whose outputs are in `run_dir` (`<output_dir>/<name>`), oldest first."""
    return run_summary.read_run_summaries(os.path.join(run_dir, 'metadata.db'), pipeline_name)
