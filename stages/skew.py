"""Stage skew: training/serving skew, measured on golden rows served from raw records.

The checked package answers sampled golden rows sent as raw requests through the
service's request path (ctrpipe/serving/skew.py); the figures (rows checked, rows
different: 0 when there is no skew) are a metric of the pipeline and a line of the PR
report.
"""

import argparse
import time

import pyarrow.parquet as pq

from ctrpipe import fileio
from ctrpipe.errors import exits_cleanly
from ctrpipe.serving import skew


@exits_cleanly
def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__)
    for name in ("package", "sample", "golden", "out"):
        parser.add_argument(f"--{name}", required=True)
    args = parser.parse_args(argv)

    started = time.perf_counter()
    figures = skew.check(args.package, pq.read_table(args.sample), pq.read_table(args.golden))
    fileio.write_json(args.out, figures)
    print(
        f"skew: {figures['rows_different']} of {figures['rows_checked']} golden rows differ "
        f"(features {figures['features_different'] or 'none'}, predictions "
        f"{figures['predictions_different']}) in {time.perf_counter() - started:.1f} s"
    )


if __name__ == "__main__":
    main()
