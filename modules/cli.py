"""argparse types every command line shares: the runners, the server, the tools and the benchmarks."""

import argparse


def _bounded_int(minimum: int):
    def parse(text: str) -> int:
        value = int(text)
        if value < minimum:
            raise argparse.ArgumentTypeError(f'must be >= {minimum}, got {value}')
        return value
    parse.__name__ = 'int'
    return parse


positive_int = _bounded_int(1)
non_negative_int = _bounded_int(0)
