"""RequestMonitor's executor: `monitor.judge` against the served version's own references."""

import json
import logging
import os
import time
from typing import Any, Dict, List

from tfx import types
from tfx.dsl.components.base import base_executor
from tfx.dsl.io import fileio
from tfx.types import artifact_utils

from components.request_monitor import monitor

LOG_DIR_KEY = 'log_dir'
SERVING_DIR_KEY = 'serving_dir'
WINDOW_HOURS_KEY = 'window_hours'
SKEW_THRESHOLD_KEY = 'skew_threshold'
DRIFT_THRESHOLD_KEY = 'drift_threshold'
MIN_REQUESTS_KEY = 'min_requests'
VERDICT_DIR_KEY = 'verdict_dir'
RETRAIN_PROPERTY = 'retrain'


class Executor(base_executor.BaseExecutor):
    """Writes the verdict into the MonitorVerdict artifact (and `verdict_dir`)."""

    def Do(self, input_dict: Dict[str, List[types.Artifact]], output_dict: Dict[str, List[types.Artifact]],
           exec_properties: Dict[str, Any]) -> None:
        del input_dict
        refs = monitor.version_references(exec_properties[SERVING_DIR_KEY])
        thresholds = monitor.Thresholds(float(exec_properties[SKEW_THRESHOLD_KEY]),
                                        float(exec_properties[DRIFT_THRESHOLD_KEY]),
                                        int(exec_properties[MIN_REQUESTS_KEY]))
        verdict = monitor.judge(exec_properties[LOG_DIR_KEY], refs, thresholds, time.time(),
                                float(exec_properties[WINDOW_HOURS_KEY]))
        artifact = artifact_utils.get_single_instance(output_dict['verdict'])
        with fileio.open(os.path.join(artifact.uri, monitor.VERDICT_FILE), 'w') as f:
            f.write(json.dumps(verdict, indent=1))
        artifact.set_int_custom_property(RETRAIN_PROPERTY, int(verdict['retrain']))
        artifact.set_int_custom_property('version', refs.version)
        artifact.set_int_custom_property('requests', verdict['requests'])
        if exec_properties.get(VERDICT_DIR_KEY):
            monitor.write_verdict(verdict, exec_properties[VERDICT_DIR_KEY])
        logging.info('Request monitor, version %d:\n%s', refs.version, monitor.table(verdict))
