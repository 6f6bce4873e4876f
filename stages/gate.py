"""Stage gate: may the candidate package replace the production one?

Scores both packages on the golden set and writes a verdict with every check behind it:
reports/gate/gate.json and summary.md (see ctrpipe/release/gate.py). Exits 0 on either verdict;
`publish` enforces it. A bad input exits 1 with one line, and nothing is written.
"""

import argparse
import time

from ctrpipe import config
from ctrpipe.errors import exits_cleanly
from ctrpipe.model import evaluation
from ctrpipe.model.settings import Evaluate, SliceColumns
from ctrpipe.release import gate
from ctrpipe.release.settings import Gate


@exits_cleanly
def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--params", default=config.PARAMS_FILE)
    parser.add_argument("--candidate", required=True, help="the package to judge")
    parser.add_argument(
        "--production",
        required=True,
        help="a folder with ref.json and, when it names a version, package/",
    )
    parser.add_argument("--golden", required=True)
    parser.add_argument("--validation", required=True, help="the reference of the drift warning")
    parser.add_argument("--report", required=True, help="gate.json: every check, the verdict")
    parser.add_argument("--summary", required=True, help="the same in Markdown")
    args = parser.parse_args(argv)

    started = time.perf_counter()
    params = config.load(args.params)
    settings = params.section("gate", Gate)
    evaluate = params.section("evaluate", Evaluate)
    slices = params.section("data", SliceColumns).slices
    # Open and read everything before scoring: a bad input fails fast and writes nothing.
    candidate = gate.open_candidate(args.candidate)
    production = gate.open_production(args.production)
    models = [candidate] + ([production.package] if production.package else [])
    golden = gate.read_golden(args.golden, models, slices)
    validation = evaluation.read_split(args.validation, candidate.schema, [])
    report = gate.run(
        candidate, production, golden, validation, settings, evaluate, slices, source=args.golden
    )
    gate.write(args.report, args.summary, report)
    print(f"gate: {gate.headline(report)} in {time.perf_counter() - started:.1f} s")


if __name__ == "__main__":
    main()
