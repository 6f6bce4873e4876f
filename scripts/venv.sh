#!/usr/bin/env bash
# The project's virtualenv ($1, e.g. .venv): installed from requirements.lock by uv, and
# again only when the lock, pyproject.toml or this set-up changed. That is judged by
# their content, not their times: a checkout gives every file a new time.
#
# uv (pinned in the lock) installs from its cache on this machine without asking the index when
# the cache holds every pinned package: a second checkout, or a CI job on a self-hosted
# runner, gets its .venv in about a second (hard links into the cache). Otherwise it
# downloads from the index, which is also how a fresh machine and GitHub's runners start.
set -euo pipefail
venv=$1
uv_pin=$(grep "^uv==" requirements.lock)  # uv installs itself too, so it is locked
want=$(cat pyproject.toml requirements.lock scripts/check-prereqs.sh "$0" | sha256sum | cut -d' ' -f1)
if [ "$(cat "$venv/.installed" 2>/dev/null)" = "$want" ]; then
  exit 0
fi
py=$(scripts/check-prereqs.sh)
"$py" -m venv "$venv"
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check "$uv_pin"
install=("$venv/bin/uv" pip install --quiet --python "$venv/bin/python" -r requirements.lock)
echo "${install[*]}"
"${install[@]}" --offline 2>/dev/null || "${install[@]}"
echo "$want" > "$venv/.installed"
