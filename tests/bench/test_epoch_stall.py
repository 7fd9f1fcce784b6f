"""bench/epoch_stall.py: which epochs count as stalled, and the four ways run and are written down."""

import json

from bench import epoch_stall


def test_an_epoch_stalled_where_it_ended_at_an_autotune_wake_up_well_above_the_fastest():
    assert epoch_stall.stalled([7.4, 10.28, 7.6, 10.54, 5.12]) == [False, True, False, True, False]
    # 5.12 s is at a wake-up but is this way's normal epoch when the fastest is 5.0 s.
    assert epoch_stall.stalled([5.0, 5.12, 10.3]) == [False, False, True]
    # Slow, but not in the 0.4 s after a wake-up: 10.2 s ended before it, 9.5 and 12 s nowhere near one.
    assert epoch_stall.stalled([7.0, 10.2, 9.5, 12.0]) == [False, False, False, False]


def test_every_way_trains_and_the_results_are_written(tmp_path):
    results = epoch_stall.main(['--epochs', '2', '--steps', '2', '--batch_size', '2', '--size', '16', '--layers', '1',
                                '--width', '4', '--results_dir', str(tmp_path)])
    assert list(results['ways']) == list(epoch_stall.WAYS)
    for way in results['ways'].values():
        assert len(way['epoch_s']) == 2 and len(way['stalled']) == 2 and way['fastest_epoch_s'] > 0
    stored = json.loads(next(tmp_path.glob('epoch-stall-*.json')).read_text())
    assert stored['machine']['cpu']['model_name'] and stored['settings']['steps'] == 2
    assert '| train_function |' in next(tmp_path.glob('epoch-stall-*.md')).read_text()
