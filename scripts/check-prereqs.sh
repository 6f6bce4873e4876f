#!/usr/bin/env bash
# Fail early, in one line, when the machine lacks what the pipeline needs.
set -u
py="${PYTHON:-python3.11}"
command -v "$py" >/dev/null 2>&1 || py=python3
if ! command -v "$py" >/dev/null 2>&1; then
  echo "error: Python 3.11 is needed and no python3.11 or python3 is on PATH" >&2; exit 1
fi
pyver=$("$py" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
if [ "$pyver" != "3.11" ]; then
  echo "error: Python 3.11 is needed; $py is $pyver (set PYTHON=/path/to/python3.11)" >&2; exit 1
fi
java="${JAVA_HOME:+$JAVA_HOME/bin/}java"
if ! command -v "$java" >/dev/null 2>&1; then
  echo "error: Java 17 is needed by PySpark and no java is on PATH (install a JDK 17 or set JAVA_HOME)" >&2; exit 1
fi
jver=$("$java" -version 2>&1 | sed -n 's/.*version "\([0-9]*\).*/\1/p' | head -1)
if [ -z "$jver" ] || [ "$jver" -lt 17 ]; then
  echo "error: Java 17 or newer is needed by PySpark; found '${jver:-unknown}' at $(command -v "$java")" >&2; exit 1
fi
echo "$py"
