#!/usr/bin/env bash
# scripts/deb.sh: make deb: the Debian package scanwarden_VERSION_ARCH.deb,
# built from the tree with Debian's own tools: a staged install (the
# binary in /usr/sbin, the unit in /lib/systemd/system, the config in
# /etc/scanwarden as a conffile, the man page, the Grafana dashboard), the
# maintainer scripts of packaging/deb, dpkg-shlibdeps for the library
# dependencies, dpkg-deb to build it, and lintian to check it (fails on
# any tag that packaging/deb/lintian-overrides does not explain).
#
# Environment: DEB_VERSION (default 0.1.0+gitN.HASH, N the commit count,
# so that a later commit is a later version; +dirtyTIME for a tree with
# changes), DEB_OUT (default: the repository's top directory).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
REPO=$PWD
PKG=$REPO/packaging/deb

log() { printf 'deb: %s\n' "$*"; }
die() {
	printf 'deb: error: %s\n' "$*" >&2
	exit 1
}

version() {
	if [[ -n ${DEB_VERSION:-} ]]; then
		printf '%s\n' "$DEB_VERSION"
		return
	fi
	local v
	v=0.1.0+git$(git rev-list --count HEAD).$(git rev-parse --short=12 HEAD)
	[[ -z $(git status --porcelain --untracked-files=no) ]] || v+=+dirty$(date -u +%Y%m%d%H%M%S)
	printf '%s\n' "$v"
}

main() {
	local v arch out stage shlibs size deb
	for c in go dpkg-deb dpkg-shlibdeps dpkg-buildflags objcopy gzip; do
		command -v "$c" >/dev/null || die "$c is missing: run scripts/deps.sh as root"
	done
	v=$(version)
	[[ $v =~ ^[0-9][A-Za-z0-9.+~-]*$ ]] || die "DEB_VERSION '$v' is not a Debian version"
	arch=$(dpkg --print-architecture)
	out=${DEB_OUT:-$REPO}
	WORK=$(mktemp -d /tmp/scanwarden-deb.XXXXXX)
	trap 'rm -rf "$WORK"' EXIT
	stage=$WORK/scanwarden_${v}_$arch
	log "building scanwarden $v for $arch"

	# the binary: PIE, full RELRO and bind-now, Debian's hardening flags
	# for the cgo part, stripped (-s -w)
	install -d "$stage/usr/sbin"
	export DEB_BUILD_MAINT_OPTIONS=hardening=+all
	CGO_CFLAGS="$(dpkg-buildflags --get CFLAGS) $(dpkg-buildflags --get CPPFLAGS)" \
		CGO_LDFLAGS="$(dpkg-buildflags --get LDFLAGS)" \
		go build -trimpath -buildmode=pie \
		-ldflags "-s -w -X main.version=$v -extldflags '$(dpkg-buildflags --get LDFLAGS)'" \
		-o "$stage/usr/sbin/scanwarden" ./cmd/scanwarden
	# the C compiler's version notes, as dh_strip removes them
	objcopy --remove-section=.comment "$stage/usr/sbin/scanwarden"

	install -d "$stage/etc/scanwarden" "$stage/lib/systemd/system" "$stage/usr/share/man/man8" \
		"$stage/usr/share/doc/scanwarden" "$stage/usr/share/scanwarden/grafana" "$stage/usr/share/lintian/overrides"
	install -m 0644 etc/scanwarden.conf "$stage/etc/scanwarden/scanwarden.conf"
	# the ignore file is made by the postinst from this one (with the
	# installer's SSH sessions), and is the administrator's from then on
	install -m 0644 etc/scanwarden.ignore "$stage/usr/share/scanwarden/scanwarden.ignore"
	# shellcheck disable=SC2016 # the backquotes are the unit comment's
	sed -e 's|/usr/local/sbin/scanwarden|/usr/sbin/scanwarden|g' \
		-e 's|Installed by `make install` as /etc/systemd/system/scanwarden.service; the|Installed by the scanwarden package as /lib/systemd/system/scanwarden.service; the|' \
		-e 's|^# `scanwarden` system user it runs as is created there too.|# `scanwarden` system user it runs as is created by its postinst.|' \
		etc/scanwarden.service >"$stage/lib/systemd/system/scanwarden.service"
	chmod 0644 "$stage/lib/systemd/system/scanwarden.service"
	gzip -9n <docs/scanwarden.8 >"$stage/usr/share/man/man8/scanwarden.8.gz"
	install -m 0644 etc/grafana/scanwarden-dashboard.json "$stage/usr/share/scanwarden/grafana/"
	install -m 0644 "$PKG/copyright" "$stage/usr/share/doc/scanwarden/copyright"
	install -m 0644 "$PKG/lintian-overrides" "$stage/usr/share/lintian/overrides/scanwarden"
	{
		printf 'scanwarden (%s) unstable; urgency=medium\n\n' "$v"
		printf '  * Built from git commit %s.\n\n' "$(git rev-parse HEAD)"
		printf ' -- scanwarden developers <scanwarden@example.org>  %s\n' "$(date -R -d "@$(git log -1 --format=%ct)")"
	} | gzip -9n >"$stage/usr/share/doc/scanwarden/changelog.gz" # a native package's
	chmod 0644 "$stage/usr/share/doc/scanwarden/changelog.gz" "$stage/usr/share/man/man8/scanwarden.8.gz"

	# the shared libraries the binary needs, as dpkg-shlibdeps says
	mkdir -p "$WORK/src/debian"
	printf 'Source: scanwarden\n\nPackage: scanwarden\nArchitecture: any\n' >"$WORK/src/debian/control"
	shlibs=$(cd "$WORK/src" && dpkg-shlibdeps -O "$stage/usr/sbin/scanwarden" 2>/dev/null | sed -n 's/^shlibs:Depends=//p')
	[[ -n $shlibs ]] || die "dpkg-shlibdeps found no library dependency of the binary"

	install -d -m 0755 "$stage/DEBIAN"
	size=$(du -sk --exclude=DEBIAN "$stage" | cut -f1)
	sed -e "s|@VERSION@|$v|" -e "s|@ARCH@|$arch|" -e "s|@SIZE@|$size|" -e "s|@SHLIBS@|$shlibs|" \
		"$PKG/control.in" >"$stage/DEBIAN/control"
	printf '/etc/scanwarden/scanwarden.conf\n' >"$stage/DEBIAN/conffiles"
	install -m 0755 "$PKG/postinst" "$PKG/prerm" "$PKG/postrm" "$stage/DEBIAN/"
	(cd "$stage" && find . -path ./DEBIAN -prune -o -type f -printf '%P\0' | sort -z | xargs -0 md5sum) >"$stage/DEBIAN/md5sums"
	chmod 0644 "$stage/DEBIAN/control" "$stage/DEBIAN/conffiles" "$stage/DEBIAN/md5sums"

	deb=$out/scanwarden_${v}_$arch.deb
	dpkg-deb --root-owner-group -Zxz --build "$stage" "$deb" >/dev/null
	log "built $deb"
	if command -v lintian >/dev/null; then
		log "lintian $deb"
		lintian --fail-on error,warning,info --display-info "$deb" ||
			die "lintian found problems (above): fix them, or explain each in packaging/deb/lintian-overrides"
		log "lintian: clean"
	else
		die "lintian is missing: run scripts/deps.sh as root"
	fi
}

main "$@"
