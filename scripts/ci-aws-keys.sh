#!/usr/bin/env bash
# CI only: the remote's key pair (KEY_ID, SECRET) for the job's later steps. GitHub masks
# secrets in logs already; a value with a line break would add lines to GITHUB_ENV.
set -euo pipefail
case "${KEY_ID}${SECRET}" in
  *$'\n'* | *$'\r'*) echo "error: the remote's key pair contains a line break" >&2; exit 1 ;;
esac
{
  echo "AWS_ACCESS_KEY_ID=${KEY_ID}"
  echo "AWS_SECRET_ACCESS_KEY=${SECRET}"
} >> "${GITHUB_ENV}"
