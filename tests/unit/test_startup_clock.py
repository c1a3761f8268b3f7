"""The daemon's start-up clock: every step in the order it ended, and the total."""

from __future__ import annotations

import re

from cri.daemon import StartupClock


def test_steps_are_listed_in_order_with_the_time_before_main_first() -> None:
    clock = StartupClock(since_exec=0.25)
    clock.lap("db")
    clock.lap("recovery: tasks")
    summary = clock.summary()
    match = re.fullmatch(
        r"(\d+) ms \(exec\+imports\+config 250, db (\d+), recovery: tasks (\d+)\)", summary
    )
    assert match is not None, summary
    total, db, tasks = (int(g) for g in match.groups())
    assert total >= 250 and abs(total - (250 + db + tasks)) <= 2


def test_without_a_process_age_only_the_laps_are_listed() -> None:
    clock = StartupClock()
    clock.lap("listen")
    assert re.fullmatch(r"\d+ ms \(listen \d+\)", clock.summary())
