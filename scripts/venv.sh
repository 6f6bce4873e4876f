#!/usr/bin/env bash
# The project's virtualenv ($1, e.g. .venv): installed from requirements.lock, and again
# only when the lock, pyproject.toml or the prerequisites check changed. That is judged
# by their content, not their times: a checkout gives every file a new time, and a .venv
# restored from a CI cache keeps its old ones, so times would reinstall on every run.
set -euo pipefail
venv=$1
want=$(cat pyproject.toml requirements.lock scripts/check-prereqs.sh | sha256sum | cut -d' ' -f1)
if [ "$(cat "$venv/.installed" 2>/dev/null)" != "$want" ]; then
  py=$(scripts/check-prereqs.sh)
  "$py" -m venv "$venv"
  echo "$venv/bin/python -m pip install -r requirements.lock"
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r requirements.lock
  echo "$want" > "$venv/.installed"
fi

# Restored into another folder (act's workspaces are new on every run), the scripts'
# first lines still name the old one (`#!/old/.venv/bin/python`): point them here.
bin="$(cd "$venv/bin" && pwd)"
first_line() { head -c 256 "$1" | head -n 1 | tr -d '\0'; }
case "$(first_line "$bin/pip")" in "#!$bin/python"*) exit 0 ;; esac
for script in "$bin"/*; do
  [ -f "$script" ] && [ ! -L "$script" ] || continue
  case "$(first_line "$script")" in
    "#!$bin/python"*) ;;
    "#!"*/bin/python*) sed -i "1s|.*|#!$bin/python|" "$script" ;;
  esac
done
