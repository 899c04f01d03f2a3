"""A toy launcher plugin: the workers run one after another inside this process (no subprocess)."""
from ssl_bench import register_launcher
from ssl_bench.run.launchers import worker_command, worst_code

CALLS: list = []  # (workers, out) of each launch, for the test


@register_launcher("toy_inline")
def toy_inline(plan):
    """plan.workers workers in turn, in this process"""
    from ssl_bench.cli.main import main

    CALLS.append((plan.workers, plan.out))
    argv = worker_command(plan, 1)[3:]  # drop `python -m ssl_bench`
    return worst_code([main(argv) for _ in range(plan.workers)])
