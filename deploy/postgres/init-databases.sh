#!/bin/sh
# Creates a role and a database of its own for every souk service that keeps data in PostgreSQL.
#
# Run once by the postgres image on an empty data directory (deploy/compose.yaml mounts it into
# /docker-entrypoint-initdb.d). Each service's password comes from SOUK_<SERVICE>_DB_PASSWORD
# (deploy/make-env.sh makes them). A service's role owns its database and nobody else may connect,
# so one service can never read another's tables. tests/workspace/tests/deploy.rs checks that this
# list is exactly the services that depend on sqlx.
set -eu

SERVICES="identity catalog inventory cart payments orders history"

for service in $SERVICES; do
    variable="SOUK_$(echo "$service" | tr '[:lower:]' '[:upper:]')_DB_PASSWORD"
    password=$(printenv "$variable" || true)
    if [ -z "$password" ]; then
        echo "init-databases: $variable is not set (run deploy/make-env.sh)" >&2
        exit 1
    fi
    echo "init-databases: role and database souk_$service"
    psql --no-psqlrc -v ON_ERROR_STOP=1 --username "${POSTGRES_USER:-postgres}" --dbname postgres \
        -v name="souk_$service" -v password="$password" <<'SQL'
CREATE ROLE :"name" LOGIN PASSWORD :'password';
CREATE DATABASE :"name" OWNER :"name";
REVOKE ALL ON DATABASE :"name" FROM PUBLIC;
SQL
done
