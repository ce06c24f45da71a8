#!/bin/sh
# Writes deploy/.env for deploy/compose.yaml: random passwords and secrets, made on this machine
# and never committed (.gitignore names deploy/.env). Refuses to overwrite an existing file, whose
# passwords the PostgreSQL volume already holds.
#
#   deploy/make-env.sh you@your-shop.example     # the first administrator's address: yours
#
# SOUK_ENV_FILE names another file to write (deploy/smoke.sh writes a throwaway one there, and
# passes it to Compose with --env-file, so a real deploy/.env is never touched).
#
# The administrator's address is the operator's own, never an example's: identity refuses to
# start rather than promote an account someone else registered with it.
set -eu

cd "$(dirname "$0")"
# Relative to deploy/ (an absolute path is safest).
env_file=${SOUK_ENV_FILE:-.env}
if [ $# -ne 1 ] || [ -z "$1" ]; then
    echo "usage: deploy/make-env.sh ADMIN_EMAIL (the first administrator's address: one of yours)" >&2
    exit 2
fi
admin_email=$1
if [ -e "$env_file" ]; then
    echo "${SOUK_ENV_FILE:-deploy/.env} exists; delete it (and the postgres-data volume) to start over" >&2
    exit 1
fi
random() { od -An -tx1 -N24 /dev/urandom | tr -d ' \n'; }
# nats-server reads a `$VARIABLE` of its configuration as a configuration value, and one that
# starts with a digit as a number: the server refuses to start (nats-io/nats-server#5189, still
# in 2.10). Hex starts with a digit 10 times in 16, so a NATS password starts with a letter.
nats_password() { printf 'n%s' "$(random)"; }

umask 077
{
    echo "SOUK_POSTGRES_PASSWORD=$(random)"
    for service in IDENTITY CATALOG INVENTORY CART PAYMENTS ORDERS HISTORY; do
        echo "SOUK_${service}_DB_PASSWORD=$(random)"
    done
    # Services that ask identity for service tokens, and the secret each proves itself with.
    for service in ORDERS HISTORY INVENTORY CART; do
        echo "SOUK_SERVICE_SECRET_${service}=$(random)"
    done
    # Each event producer's and consumer's NATS password (nats/souk-users.conf).
    for service in ORDERS PAYMENTS CATALOG INVENTORY CART HISTORY; do
        echo "SOUK_NATS_${service}_PASSWORD=$(nats_password)"
    done
    echo "SOUK_STOREFRONT_CSRF_SECRET=$(random)"
    # The gateway admin API's bearer token, and the secret that seals identity's signing keys.
    echo "SOUK_GATEWAY_ADMIN_TOKEN=$(random)"
    echo "SOUK_IDENTITY_KEY_SECRET=$(random)"
    echo "SOUK_PAYMENTS_VAULT_KEY=$(random)"
    echo "SOUK_ADMIN_EMAIL=$admin_email"
    echo "SOUK_ADMIN_PASSWORD=$(random)"
} > "$env_file"
echo "wrote ${SOUK_ENV_FILE:-deploy/.env} (the administrator is $admin_email; its password is in the file)"
