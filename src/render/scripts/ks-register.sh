#!/bin/bash
# Keelson's ks-register Job: a Keystone service, its endpoints in one region and, when given, its service
# user with roles in the service project. Every step looks before it acts, so the Job can run again; an
# endpoint whose URL changed in Git is updated in place. The admin's credentials come from OS_* variables.
set -euo pipefail

echo "ks-register: service ${SERVICE_NAME} (${SERVICE_TYPE})"
service_id=$(openstack service list -f value -c ID -c Name -c Type |
  awk -v name="${SERVICE_NAME}" -v type="${SERVICE_TYPE}" '$2 == name && $3 == type { print $1; exit }')
if [ -z "${service_id}" ]; then
  service_id=$(openstack service create -f value -c id --name "${SERVICE_NAME}" \
    --description "${SERVICE_DESCRIPTION}" "${SERVICE_TYPE}")
fi

for interface in public internal admin; do
  variable="ENDPOINT_${interface^^}"
  url="${!variable}"
  existing=$(openstack endpoint list --service "${service_id}" --interface "${interface}" \
    --region "${REGION}" -f value -c ID -c URL | head -n 1)
  if [ -z "${existing}" ]; then
    openstack endpoint create --region "${REGION}" "${service_id}" "${interface}" "${url}" >/dev/null
    echo "ks-register: created ${interface} endpoint ${url}"
  elif [ "${existing#* }" != "${url}" ]; then
    openstack endpoint set --url "${url}" "${existing%% *}"
    echo "ks-register: moved ${interface} endpoint to ${url}"
  fi
done

if [ -n "${SERVICE_USER:-}" ]; then
  openstack project create --or-show --domain default --description "Service project" \
    "${SERVICE_PROJECT}" >/dev/null
  # The password is set on every run, so that a rotation in Git reaches Keystone.
  openstack user create --or-show --domain default --password "${SERVICE_PASSWORD}" "${SERVICE_USER}" >/dev/null
  openstack user set --domain default --password "${SERVICE_PASSWORD}" "${SERVICE_USER}"
  for role in ${SERVICE_ROLES}; do
    openstack role create --or-show "${role}" >/dev/null
    openstack role add --project "${SERVICE_PROJECT}" --project-domain default \
      --user "${SERVICE_USER}" --user-domain default "${role}"
  done
  echo "ks-register: user ${SERVICE_USER} holds ${SERVICE_ROLES} in ${SERVICE_PROJECT}"
fi
