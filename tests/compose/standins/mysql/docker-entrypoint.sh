#!/bin/bash
# Entrypoint of the mysql STAND-IN (MariaDB). Mirrors docker-library/mysql's docker-entrypoint.sh
# where docker-compose.yml depends on it:
#   - args starting with '-' are mysqld options (compose's `command:`); options MariaDB does not
#     know (MySQL-8-only ones) are passed as --loose-<opt> so they are logged and ignored;
#   - first start on an empty /var/lib/mysql: MYSQL_ROOT_PASSWORD / MYSQL_ALLOW_EMPTY_PASSWORD /
#     MYSQL_RANDOM_ROOT_PASSWORD, MYSQL_DATABASE, MYSQL_USER/MYSQL_PASSWORD, 'root'@'%', then every
#     *.sh / *.sql(.gz|.xz|.zst|.bz2) in /docker-entrypoint-initdb.d, on a temporary server
#     without networking, so a TCP healthcheck only passes once init is done;
#   - then exec the server as PID 1, as the mysql user.
set -Eeuo pipefail
shopt -s nullglob

_log() { printf '%s [%s] [Entrypoint]: %s\n' "$(date --rfc-3339=seconds)" "$1" "$2"; }
note() { _log Note "$*"; }
warn() { _log Warn "$*" >&2; }
error() { _log ERROR "$*" >&2; exit 1; }

if [ "${1:0:1}" = '-' ]; then
	set -- mysqld "$@"
fi
case "${1:-}" in mysqld | mariadbd) ;; *) exec "$@" ;; esac
shift
for arg; do
	case "$arg" in -'?' | --help | --print-defaults | -V | --version) exec mariadbd "$@" ;; esac
done

# Loosen only what MariaDB rejects: one --help run when all is well, one per option otherwise.
args=()
if mariadbd "$@" --verbose --help >/dev/null 2>&1; then
	args=("$@")
else
	for arg; do
		case "$arg" in
		--loose-* | --defaults-file=* | --defaults-extra-file=* | --no-defaults | --defaults-group-suffix=*) ;;
		--*)
			if ! mariadbd --no-defaults "$arg" --verbose --help >/dev/null 2>&1; then
				warn "MariaDB does not accept $arg (a MySQL-only option?): passing it as --loose-${arg#--}, i.e. ignored"
				arg=--loose-${arg#--}
			fi
			;;
		esac
		args+=("$arg")
	done
fi
set -- mariadbd "${args[@]}"

# The effective value of a server setting (config files and args included), as the official image.
cfg() { local name=$1; shift; "$@" --verbose --help 2>/dev/null | awk -v c="$name" '$1 == c && /^[^ \t]/ { sub(/^[^ \t]+[ \t]+/, ""); print; exit }'; }
DATADIR=$(cfg datadir "$@")
SOCKET=$(cfg socket "$@")
DATADIR=${DATADIR%/}

if [ "$(id -u)" = 0 ]; then
	mkdir -p "$DATADIR" "$(dirname "$SOCKET")"
	find "$DATADIR" "$(dirname "$SOCKET")" \! -user mysql -exec chown --no-dereference mysql:mysql '{}' +
	note "Switching to dedicated user 'mysql'"
	exec setpriv --reuid=mysql --regid=mysql --init-groups "${BASH_SOURCE[0]}" "$@"
fi

if [ -d "$DATADIR/mysql" ]; then
	exec "$@"
fi

# --- first start: initialise -------------------------------------------------------------
: "${MYSQL_ROOT_PASSWORD:=}" "${MYSQL_ALLOW_EMPTY_PASSWORD:=}" "${MYSQL_RANDOM_ROOT_PASSWORD:=}"
: "${MYSQL_DATABASE:=}" "${MYSQL_USER:=}" "${MYSQL_PASSWORD:=}" "${MYSQL_ROOT_HOST:=%}"
if [ -z "$MYSQL_ROOT_PASSWORD$MYSQL_ALLOW_EMPTY_PASSWORD$MYSQL_RANDOM_ROOT_PASSWORD" ]; then
	error "Database is uninitialized and password option is not specified: set one of MYSQL_ROOT_PASSWORD, MYSQL_ALLOW_EMPTY_PASSWORD, MYSQL_RANDOM_ROOT_PASSWORD"
fi
[ "$MYSQL_USER" != root ] || error 'MYSQL_USER="root" is not allowed: use MYSQL_ROOT_PASSWORD'
[ -z "${MYSQL_ONETIME_PASSWORD:-}" ] || warn "MYSQL_ONETIME_PASSWORD is not supported by this stand-in: ignored"
ls /docker-entrypoint-initdb.d/ >/dev/null # fail now, not half-way, if it is unreadable

note "Initializing database files (MariaDB stand-in for MySQL)"
# normal: root@localhost gets a password login (Debian's default is unix_socket auth only).
mariadb-install-db --datadir="$DATADIR" --auth-root-authentication-method=normal --skip-test-db \
	--skip-log-bin "${@:2}" >/dev/null
note "Database files initialized"

note "Starting temporary server"
"$@" --skip-networking --socket="$SOCKET" --skip-log-bin &
tmp_pid=$!
for _ in $(seq 60); do
	mariadb-admin --socket="$SOCKET" -uroot ping >/dev/null 2>&1 && break
	kill -0 "$tmp_pid" 2>/dev/null || error "Unable to start server."
	sleep 0.5
done
mariadb-admin --socket="$SOCKET" -uroot ping >/dev/null 2>&1 || error "temporary server did not come up in 30 s"
note "Temporary server started."

passfile() { [ -n "$MYSQL_ROOT_PASSWORD" ] && printf '[client]\npassword="%s"\n' "$MYSQL_ROOT_PASSWORD"; true; }
sql() { # sql [--no-pass] [mariadb args...] < statements
	local pf=passfile
	[ "${1:-}" = --no-pass ] && { pf=true; shift; }
	local db=()
	[ -n "$MYSQL_DATABASE" ] && db=(--database="$MYSQL_DATABASE")
	mariadb --defaults-extra-file=<($pf) --protocol=socket --socket="$SOCKET" -uroot --comments "${db[@]}" "$@"
}
q() { printf '%s' "$1" | sed "s/\\\\/\\\\\\\\/g; s/'/\\\\'/g"; } # quote for a '...' SQL literal

if [ -z "${MYSQL_INITDB_SKIP_TZINFO:-}" ]; then
	mariadb-tzinfo-to-sql /usr/share/zoneinfo 2>/dev/null | sql --no-pass --database=mysql
fi
if [ -n "$MYSQL_RANDOM_ROOT_PASSWORD" ]; then
	MYSQL_ROOT_PASSWORD=$(head -c 18 /dev/urandom | base64)
	note "GENERATED ROOT PASSWORD: $MYSQL_ROOT_PASSWORD"
fi
pw=$(q "$MYSQL_ROOT_PASSWORD")
root_create=
if [ "$MYSQL_ROOT_HOST" != localhost ]; then
	root_create="CREATE USER 'root'@'$(q "$MYSQL_ROOT_HOST")' IDENTIFIED BY '$pw';
GRANT ALL ON *.* TO 'root'@'$(q "$MYSQL_ROOT_HOST")' WITH GRANT OPTION;"
fi
# mariadb-install-db also makes anonymous users and password-less root@127.0.0.1/::1/<hostname>,
# which would take precedence over 'root'@'%' (and its password); the official image has none.
sql --no-pass --database=mysql <<-SQL
	SET autocommit = 1;
	SET @@SESSION.SQL_LOG_BIN = 0;
	DELETE FROM mysql.global_priv WHERE User = '' OR (User = 'root' AND Host <> 'localhost');
	DELETE FROM mysql.proxies_priv WHERE Host <> 'localhost';
	FLUSH PRIVILEGES;
	ALTER USER 'root'@'localhost' IDENTIFIED BY '$pw';
	GRANT ALL ON *.* TO 'root'@'localhost' WITH GRANT OPTION;
	$root_create
	DROP DATABASE IF EXISTS test;
SQL
if [ -n "$MYSQL_DATABASE" ]; then
	note "Creating database $MYSQL_DATABASE"
	sql --database=mysql <<<"CREATE DATABASE IF NOT EXISTS \`$MYSQL_DATABASE\`;"
fi
if [ -n "$MYSQL_USER" ] && [ -n "$MYSQL_PASSWORD" ]; then
	note "Creating user $MYSQL_USER"
	sql --database=mysql <<<"CREATE USER '$(q "$MYSQL_USER")'@'%' IDENTIFIED BY '$(q "$MYSQL_PASSWORD")';"
	[ -z "$MYSQL_DATABASE" ] ||
		sql --database=mysql <<<"GRANT ALL ON \`${MYSQL_DATABASE//_/\\_}\`.* TO '$(q "$MYSQL_USER")'@'%';"
fi

for f in /docker-entrypoint-initdb.d/*; do
	case "$f" in
	*.sh)
		if [ -x "$f" ]; then
			note "$0: running $f"
			"$f"
		else
			note "$0: sourcing $f"
			# shellcheck disable=SC1090
			. "$f"
		fi
		;;
	*.sql) note "$0: running $f"; sql <"$f" ;;
	*.sql.gz) note "$0: running $f"; gunzip -c "$f" | sql ;;
	*.sql.xz) note "$0: running $f"; xzcat "$f" | sql ;;
	*.sql.bz2) note "$0: running $f"; bunzip2 -c "$f" | sql ;;
	*.sql.zst) note "$0: running $f"; zstd -dc "$f" | sql ;;
	*) warn "$0: ignoring $f" ;;
	esac
done

note "Stopping temporary server"
mariadb-admin --defaults-extra-file=<(passfile) --socket="$SOCKET" -uroot shutdown
wait "$tmp_pid" || error "temporary server did not stop cleanly"
note "Temporary server stopped"
note "MySQL (MariaDB stand-in) init process done. Ready for start up."
exec "$@"
