#!/usr/bin/env bash
# The project's virtualenv ($1, e.g. .venv): installed from requirements.lock by uv, and
# again only when the lock, pyproject.toml or this set-up changed. That is judged by
# their content, not their times: a checkout gives every file a new time.
#
# uv (pinned in the lock) installs from its cache on this machine, without asking the
# index, when the cache holds every pin: a second checkout, or a CI job on a self-hosted
# runner, gets its .venv in about a second (hard links into the cache). Otherwise it
# downloads from the index, as a fresh machine and GitHub's runners do.
set -euo pipefail
venv=$1
want=$(cat pyproject.toml requirements.lock scripts/check-prereqs.sh "$0" | sha256sum | cut -d' ' -f1)
if [ "$(cat "$venv/.installed" 2>/dev/null)" = "$want" ]; then
  exit 0
fi
py=$(scripts/check-prereqs.sh)
uv_pin=$(grep "^uv==" requirements.lock)  # uv installs itself too, so it is locked
"$py" -m venv "$venv"
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check "$uv_pin"
install=("$venv/bin/uv" pip install --quiet --python "$venv/bin/python" -r requirements.lock)
echo "${install[*]}"
# pip is the fallback: it reads this machine's pip configuration (indexes, certificates),
# which uv does not.
"${install[@]}" --offline 2>/dev/null || "${install[@]}" || {
  echo "uv could not install requirements.lock; pip instead" >&2
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r requirements.lock
}
# Bytecode for everything installed: uv, unlike pip, writes no .pyc files, and where
# PYTHONDONTWRITEBYTECODE is set (as on this project's machines) Python never writes them
# either, so every dvc call and every stage compiled its imports from source again: 0.7 s
# of each `dvc status` and 1.0 s of each no-op `dvc repro` (docs/benchmarks.md). compileall
# writes only what is missing or stale: about 30 s once, then seconds. Its exit status is
# not the set-up's: a few packages ship templates that are not Python 3.11 source.
site=$("$venv/bin/python" -c 'import sysconfig; print(sysconfig.get_path("purelib"))')
"$venv/bin/python" -m compileall -q -j 0 "$site" >/dev/null || true
echo "$want" > "$venv/.installed"
