#!/bin/sh
# The entry point of souk's NATS stand-in (nats.Containerfile), as the official image's: options
# alone are nats-server's.
set -eu

if [ "${1#-}" != "$1" ]; then
    set -- nats-server "$@"
fi
exec "$@"
