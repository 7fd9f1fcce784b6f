"""Beam pipeline arguments for the DirectRunner and Dataflow, shared by the TFX pipeline and batch prediction.

Below the pipeline layer (no TFX imports), so `modules.batch_predict` builds the same arguments as the
pipeline's Beam components; `pipeline.platform` re-exports them.
"""

from typing import List


def direct_beam_args(num_workers: int = 1) -> List[str]:
    """DirectRunner arguments: in-process for one worker, else one process per worker (0: one per CPU core).

    Args:
      num_workers: worker processes; 1 runs in this process, 0 lets Beam use every core.

    Returns:
      Beam pipeline arguments.
    """
    if num_workers < 0:
        raise ValueError(f'direct_num_workers must be >= 0, got {num_workers}')
    if num_workers == 1:
        return ['--direct_running_mode=in_memory', '--direct_num_workers=1']
    return ['--direct_running_mode=multi_processing', f'--direct_num_workers={num_workers}']


def dataflow_beam_args(project: str, region: str, temp_location: str, image: str,
                       machine_type: str = 'n1-standard-4', max_num_workers: int = 10) -> List[str]:
    """DataflowRunner arguments; workers run the pipeline image so user modules import there too."""
    return [
        '--runner=DataflowRunner', f'--project={project}', f'--region={region}', f'--temp_location={temp_location}',
        f'--machine_type={machine_type}', f'--max_num_workers={max_num_workers}',
        f'--sdk_container_image={image}', '--experiments=use_runner_v2',
    ]
