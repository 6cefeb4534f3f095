#!/bin/sh
# As the official image does: options alone run redis-server, and protected mode is off. Without a
# config file there is no password, and protected mode would then refuse every client that is
# not on the container's own loopback; the container's network decides who reaches it. A later
# `--protected-mode yes` in the arguments still wins.
set -e
case "${1:-}" in -*) set -- redis-server "$@" ;; esac
if [ "${1:-}" = redis-server ]; then
    shift
    set -- redis-server --protected-mode no "$@"
fi
exec "$@"
