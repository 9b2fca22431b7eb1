"""How many returns CI's soak puts through on this machine: printed for `.ci/run`.

The soak is bound by CPU (about 380 ms a return across workers, desks and database on
the machine it was measured on, where 10,000 returns took 36 minutes). The virtual
machines CI runs on are not all as fast: on one that runs bare SpiffWorkflow at half
the rate, 10,000 returns would pass the soak's 60 minutes and CI's 90. So the rate of
bare SpiffWorkflow is measured here first (the benchmark's own measure, five rounds,
the median): at FAST or more the soak runs all 10,000 returns; below, a share in
proportion to the rate (in steps of 500, at least FLOOR), so that it takes about as
long as the full soak does on a fast machine. The count and the rate go to stderr.
"""

from __future__ import annotations

import statistics
import sys

from engine.bench import bare_rate

FULL = 10_000
#: Bare instances/s from which the whole soak fits (measured: 1,370 to 1,430 on the
#: machines where 10,000 returns took 36 to 43 minutes).
FAST = 1_200
FLOOR = 3_000


def soak_returns(rate: float) -> int:
    if rate >= FAST:
        return FULL
    return max(FLOOR, int(FULL * rate / FAST) // 500 * 500)


def main() -> None:
    rate = statistics.median(bare_rate(300) for _ in range(5))
    returns = soak_returns(rate)
    sys.stderr.write(
        f"bare SpiffWorkflow here: {rate:,.0f} instances/s; the soak runs {returns:,} "
        f"returns ({FULL:,} from {FAST:,} instances/s)\n"
    )
    sys.stdout.write(f"{returns}\n")


if __name__ == "__main__":
    main()
