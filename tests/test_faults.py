"""The fault-injection suite, short: a few kills of each process and every scenario
once. `make faults` runs the long one (200 kills each) into docs/reliability.md."""

from fault_suite import row, run_all


def test_every_fault_scenario_leaves_the_cache_equal_to_the_backend():
    results = run_all(kills=4, acks=150, freezes_n=1, seed=3)
    failed = [row(r) for r in results if not r.ok]
    assert not failed, "\n".join(failed)
    assert len(results) == 8
