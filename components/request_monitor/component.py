"""RequestMonitor: the monitor as a pipeline step, so a Kubeflow / Vertex AI schedule can run it.

    RequestMonitor(log_dir='gs://BUCKET/request_log', serving_dir='gs://BUCKET/petseg/serving_model',
                   window_hours=24, skew_threshold=0.3, drift_threshold=0.3, min_requests=50,
                   verdict_dir='gs://BUCKET/petseg/monitor')

The same judgement as `python -m pipeline.monitor` (`monitor.judge`), against the references the served version
carries (`monitor.version_references`: on Vertex AI the lineage lives in its metadata service, not in a file
this step could open). Output: a `petseg.MonitorVerdict` artifact holding `verdict.json`, with the decision as
custom properties (`retrain` 0/1, `version`, `requests`) for a `tfx.dsl.Cond` or a reader of the metadata, and
the same JSON as `latest.json` in `verdict_dir` (what the server's `--monitor_verdict` and the runner's
`--when_drift` read).
"""

from typing import Optional

from tfx import types
from tfx.dsl.components.base import base_component, executor_spec
from tfx.types import component_spec

from components.request_monitor import executor


class MonitorVerdict(types.Artifact):
    """A directory holding `verdict.json`; custom properties `retrain`, `version`, `requests`."""

    TYPE_NAME = 'petseg.MonitorVerdict'


class RequestMonitorSpec(component_spec.ComponentSpec):
    """No inputs (the references come with the served version); output: the verdict."""

    PARAMETERS = {
        executor.LOG_DIR_KEY: component_spec.ExecutionParameter(type=str),
        executor.SERVING_DIR_KEY: component_spec.ExecutionParameter(type=str),
        executor.WINDOW_HOURS_KEY: component_spec.ExecutionParameter(type=float),
        executor.SKEW_THRESHOLD_KEY: component_spec.ExecutionParameter(type=float),
        executor.DRIFT_THRESHOLD_KEY: component_spec.ExecutionParameter(type=float),
        executor.MIN_REQUESTS_KEY: component_spec.ExecutionParameter(type=int),
        executor.VERDICT_DIR_KEY: component_spec.ExecutionParameter(type=str, optional=True),
    }
    INPUTS = {}
    OUTPUTS = {'verdict': component_spec.ChannelParameter(type=MonitorVerdict)}


class RequestMonitor(base_component.BaseComponent):
    """Judges a window of logged requests against the served version's references."""

    SPEC_CLASS = RequestMonitorSpec
    EXECUTOR_SPEC = executor_spec.ExecutorClassSpec(executor.Executor)

    def __init__(self, log_dir: str, serving_dir: str, *, window_hours: float = 24.0, skew_threshold: float = 0.3,
                 drift_threshold: float = 0.3, min_requests: int = 50, verdict_dir: Optional[str] = None):
        """Configures the monitor.

        Args:
          log_dir: the server's (or batch prediction's) request log.
          serving_dir: the Pusher's serving root; the newest version is judged.
          window_hours: the window judged ends when the step runs and lasts this long; drift is measured against
            the window as long just before it.
          skew_threshold: Jensen-Shannon divergence from the references that counts as skew.
          drift_threshold: Jensen-Shannon divergence from the previous window that counts as drift.
          min_requests: fewer requests in the window never warrant retraining.
          verdict_dir: also write the verdict there as `latest.json` (and a dated copy).
        """
        super().__init__(spec=RequestMonitorSpec(
            log_dir=log_dir, serving_dir=serving_dir, window_hours=float(window_hours),
            skew_threshold=float(skew_threshold), drift_threshold=float(drift_threshold), min_requests=min_requests,
            verdict_dir=verdict_dir, verdict=types.Channel(type=MonitorVerdict)))
