import gc

import pytest

from rebill.bulk.runner import collector_paused


def test_a_run_pauses_the_collector_and_hands_everything_back_when_it_ends():
    assert gc.isenabled()
    frozen_before = gc.get_freeze_count()
    with collector_paused():
        assert not gc.isenabled()
        assert gc.get_freeze_count() > frozen_before  # what existed before the run is left alone
    assert gc.isenabled()
    assert gc.get_freeze_count() == 0


def test_a_failing_run_restores_the_collector_too():
    with pytest.raises(RuntimeError), collector_paused():
        raise RuntimeError("the run failed")
    assert gc.isenabled() and gc.get_freeze_count() == 0


def test_a_process_that_runs_without_the_collector_keeps_it_off():
    gc.disable()
    try:
        with collector_paused():
            pass
        assert not gc.isenabled()
    finally:
        gc.enable()
