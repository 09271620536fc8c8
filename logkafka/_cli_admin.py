"""``logkafka check``, ``logkafka topics`` and ``logkafka replay``."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser) -> None:
    """Add the subcommands of this module to ``sub``."""
