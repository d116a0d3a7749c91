"""Inject faults into the host link: SerialTransport against the bridge model, count the outcomes.

Runs `host.link_campaign.run_trials` (the trial, its workload and its outcomes are defined there;
tests/test_link_faults.py shows the model ends every fault case of its list as the RTL does):
``--trials`` trials with one fault each, ``--multi`` trials with three, ``--storms`` with 40 (so
that some exchange runs out of retries and raises), ``--slow`` with one fault on an accelerator
busy for up to 40 byte times after each word (past the host's timeout). Prints the faults
applied by direction and kind with the outcomes of the trials they were in, then the totals:
faults injected, trials clean / retried OK / raised / silent wrong, exchanges sent again, words
taken twice.

Run: ``python bench/link_faults.py [--trials 10000] [--multi 2000] [--storms 200] [--slow 2000]
[--seed 1]``.
Exits with status 1 when any trial gave a silent wrong result or a word was taken twice.
"""

import argparse
import sys
import time

from host.link_campaign import CAMPAIGN_TIMING, Tally, run_trials
from sim.link_faults import DIRECTIONS, KINDS

OUTCOMES = ("clean", "retried", "raised", "wrong")


def report(title: str, tally: Tally) -> None:
    print(title)
    print(f"  {'fault':<22}{'applied':>9}" + "".join(f"{o:>9}" for o in OUTCOMES))
    for direction in DIRECTIONS:
        for kind in KINDS:
            key = (direction, kind)
            row = "".join(f"{tally.by_kind[key, o]:>9}" for o in OUTCOMES)
            print(f"  {direction + ' ' + kind:<22}{tally.faults[key]:>9}{row}")
    trials = sum(tally.outcomes.values())
    print(
        f"  {sum(tally.faults.values())} faults in {trials} trials: "
        + ", ".join(f"{tally.outcomes[o]} {o}" for o in OUTCOMES)
        + f"; {tally.retried_exchanges} exchanges sent again; "
        f"{tally.duplicated} trials with a word taken twice"
    )


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trials", type=int, default=10_000, help="one-fault trials (10000)")
    parser.add_argument("--multi", type=int, default=2000, help="three-fault trials (2000)")
    parser.add_argument("--storms", type=int, default=200, help="40-fault trials (200)")
    parser.add_argument("--slow", type=int, default=2000, help="slow-accelerator trials (2000)")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    print(f"timing (byte times): {CAMPAIGN_TIMING}; 4 retries; seed {args.seed}")
    total, started = Tally(), time.perf_counter()
    series = [(args.trials, 1, False), (args.multi, 3, False), (args.storms, 40, False)]
    for trials, faults, slow in [*series, (args.slow, 1, True)]:
        tally = run_trials(trials, faults, args.seed, slow=slow)
        accelerator = ", slow accelerator" if slow else ""
        report(f"{trials} trials of {faults} fault{'s' * (faults > 1)}{accelerator}", tally)
        for name in ("faults", "outcomes", "by_kind"):
            getattr(total, name).update(getattr(tally, name))
        total.retried_exchanges += tally.retried_exchanges
        total.duplicated += tally.duplicated
        total.wrong_trials += tally.wrong_trials
    report(f"all ({time.perf_counter() - started:.1f} s)", total)
    for seed, faults in total.wrong_trials:
        print(f"  wrong: trial seed {seed}, faults {faults}")
    return 1 if total.wrong_trials or total.duplicated else 0


if __name__ == "__main__":
    sys.exit(main())
