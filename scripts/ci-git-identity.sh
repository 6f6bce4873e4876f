#!/usr/bin/env bash
# CI only: tags are made in the name of whoever triggered the run (the audit trail's
# author), and pushed with the job's own token, which checkout was told not to keep.
set -euo pipefail
git config user.name "${GITHUB_ACTOR}"
git config user.email "${GITHUB_ACTOR_ID}+${GITHUB_ACTOR}@users.noreply.github.com"
git config "http.https://github.com/.extraheader" \
  "AUTHORIZATION: basic $(printf 'x-access-token:%s' "${GH_TOKEN}" | base64 -w0)"
