"""Local Beam arguments: what TFX and Beam make of them."""

import apache_beam as beam
from apache_beam.options.pipeline_options import PipelineOptions
from apache_beam.runners.portability.fn_api_runner import FnApiRunner
from apache_beam.testing.util import assert_that, equal_to
from tfx.utils import dependency_utils

from modules import beam_args


def test_the_checkouts_package_is_declared_so_tfx_builds_no_sdist_of_itself():
    assert beam_args.CHECKOUT_SETUP_FILE and beam_args.CHECKOUT_SETUP_FILE.endswith('setup.py')
    for workers in (1, 2):
        args = beam_args.direct_beam_args(workers)
        assert f'--setup_file={beam_args.CHECKOUT_SETUP_FILE}' in args
        assert dependency_utils.make_beam_dependency_flags(args) == args


def test_without_a_setup_file_no_path_of_this_machine_is_in_the_arguments():
    assert beam_args.direct_beam_args(2, setup_file=None) == [
        '--runner=FnApiRunner', '--direct_running_mode=multi_processing', '--direct_num_workers=2']


def test_a_pipeline_with_them_runs_on_the_fn_api_runner_and_counts_right():
    pipeline = beam.Pipeline(options=PipelineOptions(beam_args.direct_beam_args(1)))
    assert isinstance(pipeline.runner, FnApiRunner)
    with pipeline:
        counted = pipeline | beam.Create(range(5)) | beam.combiners.Count.Globally()
        assert_that(counted, equal_to([5]))
