"""Beam pipeline arguments for local runs and Dataflow, shared by the TFX pipeline and batch prediction.

Below the pipeline layer (no TFX imports), so `modules.batch_predict` builds the same arguments as the
pipeline's Beam components; `pipeline.platform` re-exports them.
"""

import os
from typing import List, Optional

# This source checkout's setup.py (None where the package was installed without its sources).
_CHECKOUT_SETUP_FILE = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), 'setup.py')
CHECKOUT_SETUP_FILE = _CHECKOUT_SETUP_FILE if os.path.isfile(_CHECKOUT_SETUP_FILE) else None


def direct_beam_args(num_workers: int = 1, setup_file: Optional[str] = CHECKOUT_SETUP_FILE) -> List[str]:
    """Local Beam arguments: in-process for one worker, else one process per worker (0: one per CPU core).

    They name Beam's FnApiRunner, the local runner the DirectRunner falls back to here. The DirectRunner first
    tries Prism, a binary it downloads from GitHub at run time and stages the pipeline's packages for: offline
    that fails after 1-4 s per Beam component, and online the pipeline would run on another runner than the one
    its tests ran on.

    Args:
      num_workers: worker processes; 1 runs in this process, 0 lets Beam use every core.
      setup_file: the pipeline's package, declared as its Beam dependency (None: none declared). Local
        workers run in this environment and stage nothing, but where no dependency is declared TFX builds an
        sdist of itself for every Beam component to ship to workers (2-3 s each on 2 cores). A spec compiled
        for another machine passes None: the path is this machine's.

    Returns:
      Beam pipeline arguments.
    """
    if num_workers < 0:
        raise ValueError(f'direct_num_workers must be >= 0, got {num_workers}')
    mode = 'in_memory' if num_workers == 1 else 'multi_processing'
    return ['--runner=FnApiRunner', f'--direct_running_mode={mode}', f'--direct_num_workers={num_workers}',
            *([f'--setup_file={setup_file}'] if setup_file else [])]


def dataflow_beam_args(project: str, region: str, temp_location: str, image: str,
                       machine_type: str = 'n1-standard-4', max_num_workers: int = 10) -> List[str]:
    """DataflowRunner arguments; workers run the pipeline image so user modules import there too."""
    return [
        '--runner=DataflowRunner', f'--project={project}', f'--region={region}', f'--temp_location={temp_location}',
        f'--machine_type={machine_type}', f'--max_num_workers={max_num_workers}',
        f'--sdk_container_image={image}', '--experiments=use_runner_v2',
    ]
