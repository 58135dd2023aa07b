#!/usr/bin/env bash
# Installs the third-party tools the tests drive into ./.tools (idempotent).
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p .tools/bin
