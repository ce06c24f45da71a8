#!/usr/bin/env bash
# The entry point of souk's PostgreSQL stand-in (postgres.Containerfile): what the official
# image's docker-entrypoint.sh does for deploy/compose.yaml, in short. As root it owns the data
# directory to postgres and runs itself again as postgres; on an empty data directory it runs
# initdb with POSTGRES_PASSWORD, admits password logins from the network, then runs every
# /docker-entrypoint-initdb.d script against a server listening on its socket only.
set -Eeuo pipefail

# initialise: a new cluster, its network logins, and the init scripts, once.
initialise() {
    if [[ -z "${POSTGRES_PASSWORD:-}" && "${POSTGRES_HOST_AUTH_METHOD:-}" != trust ]]; then
        echo "postgres stand-in: POSTGRES_PASSWORD is not set" >&2
        exit 1
    fi
    local user=${POSTGRES_USER:-postgres} db=${POSTGRES_DB:-${POSTGRES_USER:-postgres}}
    # shellcheck disable=SC2086 # POSTGRES_INITDB_ARGS is a list of arguments
    initdb --username="$user" --pwfile=<(printf '%s\n' "${POSTGRES_PASSWORD:-}") \
        --auth-local=trust --auth-host=scram-sha-256 ${POSTGRES_INITDB_ARGS:-} >/dev/null
    printf 'host all all all %s\n' "${POSTGRES_HOST_AUTH_METHOD:-scram-sha-256}" >>"$PGDATA/pg_hba.conf"
    pg_ctl -D "$PGDATA" -o "-c listen_addresses=''" -w start >/dev/null
    if [[ "$db" != postgres ]]; then
        psql -v ON_ERROR_STOP=1 --username "$user" --dbname postgres -c "CREATE DATABASE \"$db\""
    fi
    local f
    shopt -s nullglob
    for f in /docker-entrypoint-initdb.d/*; do
        case "$f" in
            *.sh) echo "postgres stand-in: running $f"
                if [[ -x "$f" ]]; then "$f"; else
                    # shellcheck disable=SC1090 # the official image sources a script that is not executable
                    . "$f"
                fi ;;
            *.sql) echo "postgres stand-in: running $f"
                psql -v ON_ERROR_STOP=1 --username "$user" --dbname "$db" -f "$f" ;;
            *) echo "postgres stand-in: ignoring $f" ;;
        esac
    done
    pg_ctl -D "$PGDATA" -m fast -w stop >/dev/null
    echo "postgres stand-in: initialised $PGDATA"
}

if [[ "${1:0:1}" == - ]]; then
    set -- postgres "$@"
fi
if [[ "$1" == postgres && "$(id -u)" == 0 ]]; then
    mkdir -p "$PGDATA"
    chown postgres:postgres "$PGDATA"
    chmod 0700 "$PGDATA"
    exec setpriv --reuid=postgres --regid=postgres --init-groups "${BASH_SOURCE[0]}" "$@"
fi
if [[ "$1" == postgres && ! -s "$PGDATA/PG_VERSION" ]]; then
    initialise
fi
exec "$@"
