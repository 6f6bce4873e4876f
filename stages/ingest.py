"""Stage ingest: write the raw source tables named in `data.tables` to data/raw/.

`data.source` picks the adapter: `synthetic` generates seeded ad-auction logs, `files`
copies the user's own files from `data.input_dir`.
"""

import argparse
import time

from ctrpipe import config, fileio
from ctrpipe.data import sources
from ctrpipe.data.settings import Data
from ctrpipe.errors import exits_cleanly


@exits_cleanly
def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--params", default=config.PARAMS_FILE)
    parser.add_argument("--out", required=True, help="the raw tables' folder")
    args = parser.parse_args(argv)

    started = time.perf_counter()
    data = config.load(args.params).section("data", Data)
    with fileio.atomic_path(args.out) as tmp:
        tmp.mkdir()
        counts = sources.write(data, tmp)
    summary = ", ".join(f"{name} {n:,}" for name, n in counts.items())
    elapsed = time.perf_counter() - started
    print(f"ingest ({data.source.name}): {summary} records in {elapsed:.1f} s")


if __name__ == "__main__":
    main()
