#!/bin/sh
# Writes deploy/.env for deploy/compose.yaml: random passwords and secrets, made on this machine
# and never committed (.gitignore names deploy/.env). Refuses to overwrite an existing file, whose
# passwords the PostgreSQL volume already holds.
set -eu

cd "$(dirname "$0")"
if [ -e .env ]; then
    echo "deploy/.env exists; delete it (and the postgres-data volume) to start over" >&2
    exit 1
fi
random() { od -An -tx1 -N24 /dev/urandom | tr -d ' \n'; }

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
    echo "SOUK_STOREFRONT_CSRF_SECRET=$(random)"
    echo "SOUK_ADMIN_EMAIL=admin@example.com"
    echo "SOUK_ADMIN_PASSWORD=$(random)"
} > .env
echo "wrote deploy/.env (the administrator is admin@example.com; its password is in the file)"
