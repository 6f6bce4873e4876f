"""Stage production: which model is in production now, and its package, for the gate.

Production is a git tag (model#prod#N), which DVC cannot see, so dvc.yaml marks this stage
always_changed: it runs on every repro, resolves the tag and writes

    models/production/ref.json   {"version", "tag", "commit", "digest"} (all null when
                                 nothing is in production yet)
    models/production/package/   that version's package, from the DVC cache or remote,
                                 verified against its manifest

The bytes only change when production moves, so the gate, which depends on this folder,
re-runs exactly then.
"""

import argparse
import json
import time

from ctrpipe import fileio
from ctrpipe.errors import exits_cleanly
from ctrpipe.release import registry


@exits_cleanly
def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repo", default=".")
    parser.add_argument("--out", required=True)
    args = parser.parse_args(argv)

    started = time.perf_counter()
    current = registry.production(args.repo)
    ref = {"version": None, "tag": None, "commit": None, "digest": None}
    with fileio.atomic_path(args.out) as tmp:
        tmp.mkdir()
        if current:
            # Imported here: with nothing in production this stage, which runs on every
            # repro, takes about 0.1 s.
            from ctrpipe.release import fetch, remote

            _, digest, _ = fetch.fetch(
                args.repo, remote.resolve(args.repo), tmp / "package", version=current.version
            )
            ref = {
                "version": current.version,
                "tag": current.tag,
                "commit": current.commit,
                "digest": digest,
            }
        (tmp / "ref.json").write_text(json.dumps(ref, indent=2, sort_keys=True) + "\n")
    what = f"{ref['version']} ({ref['tag']})" if current else "nothing yet"
    print(f"production: {what} in {time.perf_counter() - started:.1f} s")


if __name__ == "__main__":
    main()
