#!/bin/sh
# The load generator's image entrypoint. Compose mounts ./reports at /reports; on a Linux host
# the files written there belong to whichever uid writes them, and a fixed uid (10001) could
# neither write into the invoking user's directory nor leave files that user owns. So the
# generator runs as the owner of /reports: the user who cloned the lab (the repository ships
# ./reports). Started as a non-root user already (`user:` in compose, Kubernetes), it runs as is.
set -eu
if [ "$(id -u)" != 0 ]; then
  exec loadtest "$@"
fi
owner=$(stat -c %u /reports)
group=$(stat -c %g /reports)
if [ "$owner" = 0 ]; then
  # Root's directory: the invoking user is root, or Docker created a missing ./reports. Either
  # way its files are root's to read and delete; running as anyone else could not write them.
  echo "loadtest: /reports belongs to root: running as root" >&2
  exec loadtest "$@"
fi
exec setpriv --reuid="$owner" --regid="$group" --clear-groups -- loadtest "$@"
