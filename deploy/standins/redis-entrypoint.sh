#!/bin/sh
# The entry point of souk's Redis stand-in (redis.Containerfile), as the official image's: options
# alone run redis-server; as root it owns /data to redis and runs itself again as redis. Protected
# mode is off, as the official image builds it, yet a configuration file or option still decides.
set -eu

if [ "${1#-}" != "$1" ] || [ "${1%.conf}" != "$1" ]; then
    set -- redis-server "$@"
fi
if [ "$1" = redis-server ] && [ "$(id -u)" = 0 ]; then
    find . \! -user redis -exec chown redis '{}' +
    exec setpriv --reuid=redis --regid=redis --init-groups "$0" "$@"
fi
if [ "$1" = redis-server ]; then
    shift
    # A configuration file comes first; options after it override it, and ours comes first.
    if [ $# -gt 0 ] && [ "${1#-}" = "$1" ]; then
        config=$1
        shift
        set -- redis-server "$config" --protected-mode no "$@"
    else
        set -- redis-server --protected-mode no "$@"
    fi
fi
umask 0077
exec "$@"
