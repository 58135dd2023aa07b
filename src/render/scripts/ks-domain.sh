#!/bin/bash
# Keelson's ks-domain Job: a domain a service owns (Heat's stack domain), its admin user with the admin
# role on it, and the roles the service hands to the domain's users. Idempotent; the admin's password is
# set on every run so that a rotation reaches Keystone.
set -euo pipefail

openstack domain create --or-show --description "Owned by ${SERVICE_NAME}" "${DOMAIN_NAME}" >/dev/null
openstack user create --or-show --domain "${DOMAIN_NAME}" --password "${DOMAIN_ADMIN_PASSWORD}" \
  "${DOMAIN_ADMIN_USER}" >/dev/null
openstack user set --domain "${DOMAIN_NAME}" --password "${DOMAIN_ADMIN_PASSWORD}" "${DOMAIN_ADMIN_USER}"
openstack role add --domain "${DOMAIN_NAME}" --user-domain "${DOMAIN_NAME}" --user "${DOMAIN_ADMIN_USER}" admin
for role in ${DOMAIN_ROLES:-}; do
  openstack role create --or-show "${role}" >/dev/null
done
echo "ks-domain: domain ${DOMAIN_NAME} with admin ${DOMAIN_ADMIN_USER}"
