"""modules/timing.py: the calls are timed in turn, after untimed warm-up rounds."""

from modules import timing


def test_calls_are_timed_in_turn_after_the_warmup():
    order = []
    seconds = timing.seconds_in_turn({'a': lambda: order.append('a'), 'b': lambda: order.append('b')},
                                     rounds=3, warmup=1)
    assert order == ['a', 'b'] * 4
    assert [len(seconds['a']), len(seconds['b'])] == [3, 3] and min(seconds['a'] + seconds['b']) >= 0
