#!/usr/bin/env bash
# CI only: a GitHub release for the model version tagged on HEAD, if it has none yet,
# carrying the package (as a tarball) and its model card as the notes.
set -euo pipefail
tag=$(git tag --points-at HEAD --list 'model@v*' | sort -V | tail -n 1)
if [ -z "${tag}" ]; then
  echo "no model version on this commit: no release"
  exit 0
fi
if gh release view "${tag}" >/dev/null 2>&1; then
  echo "release ${tag} exists"
  exit 0
fi
version=${tag#model@}
tar -czf "model-package-${version}.tar.gz" -C models package
gh release create "${tag}" "model-package-${version}.tar.gz" models/package/model_card.md \
  --verify-tag --title "model ${version}" --notes-file models/package/model_card.md
