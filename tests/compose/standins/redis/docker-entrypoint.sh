#!/bin/sh
# Entrypoint of the redis STAND-IN, after docker-library/redis: runs the command as given
# (compose passes `redis-server --save "" ...`), as the redis user.
set -eu

# `docker run IMAGE --port 7000` or `IMAGE some.conf` mean redis-server.
if [ "${1#-}" != "$1" ] || [ "${1%.conf}" != "$1" ]; then
	set -- redis-server "$@"
fi

if [ "$1" = redis-server ]; then
	# The official image is built with protected mode off (it would refuse every client from
	# another container, as no password is set); with no config file the default bind is
	# already all interfaces. A config file, if given, stays in charge of both.
	if [ "${2:-}" = "${2%.conf}" ]; then
		shift
		set -- redis-server --protected-mode no "$@"
	fi
	if [ "$(id -u)" = 0 ]; then
		find . \! -user redis -exec chown redis '{}' +
		exec setpriv --reuid=redis --regid=redis --clear-groups -- "$0" "$@"
	fi
	[ "$(umask)" != 0022 ] || umask 0077
fi
exec "$@"
