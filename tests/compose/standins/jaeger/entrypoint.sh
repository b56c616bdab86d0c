#!/bin/sh
# Entrypoint of the jaeger STAND-IN. Compose passes Jaeger's own flags (`--config ...`); they
# mean nothing to span_report, so they are ignored.
set -eu
[ $# -eq 0 ] || echo "jaeger stand-in: ignoring Jaeger arguments: $*" >&2
out=${SPAN_REPORT_DIR:-/spans}
listen=${SPAN_REPORT_LISTEN:-0.0.0.0:4317}
mkdir -p "$out"

# A bind-mounted host directory belongs to whoever made it (root when Docker made it). As root,
# write as that owner so the report is the host user's to read and delete; as any other uid
# (compose `user:`), the directory must already be writable by it.
if [ "$(id -u)" = 0 ]; then
	owner=$(stat -c %u "$out")
	group=$(stat -c %g "$out")
	if [ "$owner" != 0 ]; then
		exec setpriv --reuid="$owner" --regid="$group" --clear-groups -- "$0"
	fi
elif [ ! -w "$out" ]; then
	echo "jaeger stand-in: $out is not writable by uid $(id -u): chmod it on the host or run as its owner" >&2
	exit 1
fi
echo "jaeger stand-in: span_report on $listen, report to $out on SIGTERM" >&2
# exec: span_report must be PID 1 to receive compose's SIGTERM and write its report.
exec /usr/local/bin/span_report "$listen" "$out"
