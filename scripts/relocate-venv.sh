#!/usr/bin/env bash
# A virtualenv restored from a CI cache into another folder (act's workspaces are new on
# every run) keeps the old folder in its scripts' first lines (`#!/old/.venv/bin/python`):
# point them at this one. pip's own script tells whether anything moved.
set -euo pipefail
bin="$(cd "$1/bin" && pwd)"
first_line() { head -c 256 "$1" | head -n 1 | tr -d '\0'; }
case "$(first_line "$bin/pip")" in "#!$bin/python"*) exit 0 ;; esac
for script in "$bin"/*; do
  [ -f "$script" ] && [ ! -L "$script" ] || continue
  case "$(first_line "$script")" in
    "#!$bin/python"*) ;;
    "#!"*/bin/python*) sed -i "1s|.*|#!$bin/python|" "$script" ;;
  esac
done
