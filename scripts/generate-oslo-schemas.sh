#!/usr/bin/env bash
# Regenerates the oslo.config option data example-repo's config files are checked against
# (example-repo/schemas/<release>/*.yaml, referenced from example-repo/keelson.yaml spec.configSchemas).
#
# For each oslo.config file the example ships, the data is what the service's own sample-config
# definition produces: the service's PyPI package pinned to the release is installed into a virtualenv
# together with its dependencies as PyPI served them on the release day (so the oslo libraries are the
# release's too), the generator configuration `etc/...-config-generator.conf` is taken from the
# package's source distribution, and
#     oslo-config-generator --config-file <that file> --format yaml
# writes the data. keystoneauth1's authentication plugins (whose options [keystone_authtoken] and the
# other auth sections load at run time, by auth_type) are written the same way with oslo.config's
# generator functions.
#
# The generator's YAML carries every option's help text, which is most of its size. The reduction below
# keeps the fields `keelson validate` and `oslo-config-validator --opt-data` read (names, types,
# defaults, choices, bounds, deprecations, dynamic and driver groups) and drops the rest; it removes
# fields, never options. Each file's header says what it was generated from.
#
# Usage: scripts/generate-oslo-schemas.sh [OUTPUT_DIR]   (default: example-repo/schemas/2025.1)
# Needs python3 (3.10-3.12) and the PyPI registry; takes a few minutes, most of it pip.
set -euo pipefail
cd "$(dirname "$0")/.."

release="2025.1"
# The 2025.1 (Epoxy) release day: dependencies are resolved as PyPI served them then.
uploaded_before="2025-04-03T00:00:00Z"
out="${1:-example-repo/schemas/$release}"

# The service packages of the release and the generator configuration inside each source distribution.
#   <output name> <package==version> <generator configuration, relative to the unpacked sdist>
targets=(
  "keystone keystone==27.0.0 config-generator/keystone.conf"
  "nova nova==31.0.0 etc/nova/nova-config-generator.conf"
  "glance-api glance==30.0.0 etc/oslo-config-generator/glance-api.conf"
  "neutron neutron==26.0.0 etc/oslo-config-generator/neutron.conf"
  "neutron-ml2_conf neutron==26.0.0 etc/oslo-config-generator/ml2_conf.ini"
  "neutron-l3_agent neutron==26.0.0 etc/oslo-config-generator/l3_agent.ini"
  "neutron-dhcp_agent neutron==26.0.0 etc/oslo-config-generator/dhcp_agent.ini"
  "neutron-metadata_agent neutron==26.0.0 etc/oslo-config-generator/metadata_agent.ini"
  "neutron-openvswitch_agent neutron==26.0.0 etc/oslo-config-generator/openvswitch_agent.ini"
  "cinder cinder==26.0.0 tools/config/cinder-config-generator.conf"
  "placement openstack-placement==13.0.0 etc/placement/config-generator.conf"
  "heat openstack-heat==24.0.0 etc/heat/heat-config-generator.conf"
)

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
python3 -m venv "$work/venv"
pip=("$work/venv/bin/pip" --quiet --disable-pip-version-check)
# --uploaded-prior-to needs a recent pip.
"${pip[@]}" install --upgrade pip
if ! "$work/venv/bin/pip" install --help | grep -q -- --uploaded-prior-to; then
  echo "generate-oslo-schemas: this pip has no --uploaded-prior-to" >&2
  exit 1
fi

packages=()
for target in "${targets[@]}"; do
  read -r _ package _ <<<"$target"
  [[ " ${packages[*]} " == *" $package "* ]] || packages+=("$package")
done
echo "installing ${packages[*]} (dependencies as of $uploaded_before)"
"${pip[@]}" install --uploaded-prior-to "$uploaded_before" "${packages[@]}" oslo.config
"${pip[@]}" download --no-deps --no-binary :all: --uploaded-prior-to "$uploaded_before" \
  -d "$work/sdist" "${packages[@]}"

oslo_config_version="$("$work/venv/bin/python" -c 'import importlib.metadata as m; print(m.version("oslo.config"))')"
mkdir -p "$out" "$work/raw"

# Keeps the fields the checks read. Arguments: raw YAML, reduced YAML, header line.
reduce() {
  "$work/venv/bin/python" - "$@" <<'PY'
import sys
import yaml

raw, reduced, header = sys.argv[1:4]
with open(raw) as f:
    data = yaml.safe_load(f)

# Per option: what it is called, what it accepts, what it defaults to (for $name substitution; a default
# computed at run time is replaced by the generator's sample_default), whether its value is secret (never
# echoed in a message) and how it is deprecated.
OPT_FIELDS = ("name", "dest", "type", "default", "choices", "min", "max", "secret",
              "deprecated_for_removal", "deprecated_reason", "deprecated_since", "deprecated_opts")
GROUP_FIELDS = ("dynamic_group_owner", "driver_option", "driver_opts")

def empty(value):
    return value is None or value is False or value == [] or value == {} or value == ""

options = {}
for group, body in data["options"].items():
    kept = {key: body[key] for key in GROUP_FIELDS if not empty(body.get(key))}
    kept["opts"] = []
    for opt in body["opts"]:
        entry = {key: opt[key] for key in OPT_FIELDS if key in opt and not empty(opt[key])}
        entry["name"] = opt["name"]
        entry["type"] = opt["type"]
        entry["default"] = opt.get("default")
        if opt.get("sample_default") is not None:
            # The real default is computed where the generator runs (a path, the host name): the data keeps
            # what the sample config shows instead, so that it does not depend on the generating machine.
            entry["default"] = None
            entry["sample_default"] = opt["sample_default"]
        if entry.get("choices"):
            # [value, description] pairs: the description is help text.
            entry["choices"] = [[choice[0], None] for choice in opt["choices"]]
        kept["opts"].append(entry)
    options[group] = kept

generator = data.get("generator_options", {})
out = {
    "generator_options": {"namespace": generator.get("namespace", [])},
    "deprecated_options": data.get("deprecated_options", {}),
    "options": options,
}
with open(reduced, "w") as f:
    f.write(header + "\n")
    f.write(yaml.safe_dump(out, default_flow_style=False, sort_keys=True))
PY
}

for target in "${targets[@]}"; do
  read -r name package generator_conf <<<"$target"
  project="${package%%==*}"
  version="${package##*==}"
  sdist="$(find "$work/sdist" -maxdepth 1 -iname "${project//-/[-_]}-$version.tar.gz" -print -quit)"
  if [ -z "$sdist" ]; then
    echo "generate-oslo-schemas: no source distribution of $package in $work/sdist" >&2
    exit 1
  fi
  top="$(basename "$sdist" .tar.gz)"
  tar -xzf "$sdist" -C "$work" "$top/$generator_conf"
  echo "$name: oslo-config-generator --config-file $top/$generator_conf --format yaml"
  # The generator configuration names its own output file; the command line wins.
  "$work/venv/bin/oslo-config-generator" --config-file "$work/$top/$generator_conf" \
    --format yaml --output-file "$work/raw/$name.yaml"
  reduce "$work/raw/$name.yaml" "$out/$name.yaml" \
    "# Generated by scripts/generate-oslo-schemas.sh: oslo-config-generator --config-file $generator_conf --format yaml, from $project $version (oslo.config $oslo_config_version, dependencies as of $uploaded_before); help texts dropped."
done

# keystoneauth1's plugins, one group per plugin name, in the generator's own format.
keystoneauth_version="$("$work/venv/bin/python" -c 'import importlib.metadata as m; print(m.version("keystoneauth1"))')"
echo "keystoneauth1: authentication plugin options"
"$work/venv/bin/python" - "$work/raw/keystoneauth1.yaml" <<'PY'
import sys

import yaml
from keystoneauth1 import loading
from oslo_config import cfg
from oslo_config import generator

conf = cfg.ConfigOpts()
generator.register_cli_opts(conf)
conf(["--namespace", "keystoneauth1", "--format", "yaml"])
listing = []
for plugin in sorted(loading.get_available_plugin_names()):
    try:
        options = loading.get_plugin_options(plugin)
    except Exception:  # a plugin whose optional dependency is missing
        continue
    listing.append((plugin, [option._to_oslo_opt() for option in options]))
groups = generator._get_groups([("keystoneauth1", listing)])
data = generator._generate_machine_readable_data(groups, conf)
with open(sys.argv[1], "w") as f:
    f.write(yaml.safe_dump(data, default_flow_style=False))
PY
reduce "$work/raw/keystoneauth1.yaml" "$out/keystoneauth1.yaml" \
  "# Generated by scripts/generate-oslo-schemas.sh: the options of every keystoneauth1 $keystoneauth_version authentication plugin (one group per plugin name), written by oslo.config $oslo_config_version's generator; help texts dropped."

du -ch "$out"/*.yaml | tail -1
