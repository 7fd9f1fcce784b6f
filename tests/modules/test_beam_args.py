"""DirectRunner arguments: what TFX makes of them."""

from tfx.utils import dependency_utils

from modules import beam_args


def test_the_checkouts_package_is_declared_so_tfx_builds_no_sdist_of_itself():
    assert beam_args.CHECKOUT_SETUP_FILE and beam_args.CHECKOUT_SETUP_FILE.endswith('setup.py')
    for workers in (1, 2):
        args = beam_args.direct_beam_args(workers)
        assert f'--setup_file={beam_args.CHECKOUT_SETUP_FILE}' in args
        assert dependency_utils.make_beam_dependency_flags(args) == args


def test_without_a_setup_file_no_path_of_this_machine_is_in_the_arguments():
    assert beam_args.direct_beam_args(2, setup_file=None) == ['--direct_running_mode=multi_processing',
                                                             '--direct_num_workers=2']
