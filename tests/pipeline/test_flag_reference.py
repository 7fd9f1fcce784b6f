"""docs/flags.md is what the runner's parser says: regenerate it with `python -m pipeline.flag_reference --write`."""

import local_runner
from pipeline import flag_reference, flags


def test_the_committed_flag_reference_is_the_parsers():
    rendered = flag_reference.render(local_runner.build_parser())
    with open(flag_reference.PAGE) as f:
        assert f.read() == rendered, 'docs/flags.md is stale: run python -m pipeline.flag_reference --write'


def test_every_settings_flag_and_runner_flag_is_on_the_page():
    rendered = flag_reference.render(local_runner.build_parser())
    for dotted, name, *_ in flags._settings():
        assert f'`--{name}' in rendered or f'`--[no-]{name}`' in rendered, dotted
    for name in ('--output_dir', '--direct_num_workers', '--no_cache', '--wait', '--preset'):
        assert f'`{name}' in rendered
    assert 'dotted' not in rendered and '| data.' not in rendered, 'every setting has words, not its dotted name'


def test_help_formats_every_settings_text():
    # argparse formats help with %: a bare % in a text breaks --help.
    assert 'train[:90%]' in local_runner.build_parser().format_help()
