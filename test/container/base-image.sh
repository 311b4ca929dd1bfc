#!/usr/bin/env bash
# Builds a local stand-in for docker.io/library/debian:bookworm-slim when no registry can be reached:
# `debootstrap --variant=minbase bookworm`, trimmed the way the official slim image is (docs, man pages, info,
# locales and apt lists removed, and dpkg told to keep them out of later installs too), then `podman import`ed
# under that name. Run by test/container/test_deploy.py with its own podman configuration in the environment.
#
#   test/container/base-image.sh IMAGE_NAME WORKDIR
#
# Needs root (debootstrap), debootstrap, debian-archive-keyring and podman. Prints nothing on stdout.
set -euo pipefail

if [ "$#" -ne 2 ]; then
	echo "usage: test/container/base-image.sh IMAGE_NAME WORKDIR" >&2
	exit 2
fi
image=$1
work=$2
mirror=${INKLOOP_DEBIAN_MIRROR:-http://deb.debian.org/debian}
rootfs="$work/rootfs"

say() { echo "base-image.sh: $*" >&2; }

rm -rf "$rootfs"
mkdir -p "$work"
say "debootstrap --variant=minbase bookworm from $mirror"
if ! debootstrap --variant=minbase bookworm "$rootfs" "$mirror" >"$work/debootstrap.log" 2>&1; then
	tail -n 30 "$work/debootstrap.log" >&2
	say "debootstrap failed (full log: $work/debootstrap.log)"
	exit 1
fi

# What the official image's build (debuerreotype) configures: no docs, man pages or translations in later
# installs, apt caches cleaned after every install, compressed lists, no service starts during builds.
cat >"$rootfs/etc/dpkg/dpkg.cfg.d/docker" <<'EOF'
# Like the official slim image: keep documentation and translations out of installed packages.
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/groff/*
path-exclude /usr/share/info/*
path-exclude /usr/share/linda/*
path-exclude /usr/share/lintian/overrides/*
path-exclude /usr/share/locale/*
path-include /usr/share/locale/locale.alias
path-exclude /usr/share/man/*
EOF
echo force-unsafe-io >"$rootfs/etc/dpkg/dpkg.cfg.d/docker-apt-speedup"
cat >"$rootfs/etc/apt/apt.conf.d/docker-clean" <<'EOF'
DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
APT::Update::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
Dir::Cache::pkgcache "";
Dir::Cache::srcpkgcache "";
EOF
echo 'Acquire::GzipIndexes "true";' >"$rootfs/etc/apt/apt.conf.d/docker-gzip-indexes"
echo 'Acquire::Languages "none";' >"$rootfs/etc/apt/apt.conf.d/docker-no-languages"
echo 'Apt::AutoRemove::SuggestsImportant "false";' >"$rootfs/etc/apt/apt.conf.d/docker-autoremove-suggests"
printf '#!/bin/sh\nexit 101\n' >"$rootfs/usr/sbin/policy-rc.d"
chmod 755 "$rootfs/usr/sbin/policy-rc.d"

# The official image's sources: the release, its updates and security, in deb822 form.
rm -f "$rootfs/etc/apt/sources.list"
cat >"$rootfs/etc/apt/sources.list.d/debian.sources" <<EOF
Types: deb
URIs: $mirror
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: ${mirror%/debian}/debian-security
Suites: bookworm-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF

# The slimming itself (what was installed before the dpkg excludes existed).
find "$rootfs/usr/share/doc" -mindepth 1 -not -name copyright -not -type d -delete
find "$rootfs/usr/share/doc" -mindepth 1 -type d -empty -delete
for d in groff info linda lintian/overrides man; do
	rm -rf "${rootfs:?}/usr/share/$d"/*
done
find "$rootfs/usr/share/locale" -mindepth 1 -maxdepth 1 -not -name locale.alias -exec rm -rf {} +
rm -rf "$rootfs/var/lib/apt/lists"/* "$rootfs/var/cache/apt"/*.bin "$rootfs/var/cache/apt/archives"/*.deb
find "$rootfs/var/log" -type f -delete
rm -f "$rootfs/etc/machine-id" "$rootfs/var/lib/dbus/machine-id"
: >"$rootfs/etc/hostname"
rm -f "$rootfs/etc/resolv.conf"

say "podman import as $image"
tar --numeric-owner --xattrs -C "$rootfs" -c . |
	podman import --quiet --change 'CMD ["bash"]' --change 'LABEL inkloop.standin=debootstrap' - "$image" >/dev/null
rm -rf "$rootfs"
say "done: $(podman image inspect --format '{{.Size}}' "$image") bytes"
