#!/usr/bin/env bash
# scripts/deps.sh: install what scanwarden's build, tests and lab need.
#
# Idempotent and quick when everything is present (one dpkg-query call, no
# network). As root it installs the missing Debian packages with apt-get,
# without reading standard input (CI), and staticcheck with `go install`.
# Not root and something missing: it fails naming what is missing and the
# command that installs it. Prints one line per action.
set -euo pipefail

# Debian packages, and why each is here.
PACKAGES=(
	libpcap-dev     # cgo build of gopacket/pcap
	gcc             # cgo
	make            # the entry points
	nmap            # the lab's scans (demo, e2e, pcap recording)
	tcpdump         # pcap recording and checks
	tshark          # pcapng writing (editcap), capture checks
	hping3          # odd-flag and UDP probes in the lab
	iptables        # the iptables blocker and its kernel tests
	nftables        # nft: the lab's look at the nftables backend's table (the backend itself speaks netlink)
	ipset           # ipset list: likewise for the ipset backend
	iproute2        # ip netns, veth, bridge for the lab
	fail2ban        # fail2ban-regex against our attackalert lines
	procps          # sysctl, ps
	prometheus      # the metrics test: a real Prometheus scrapes the daemon in the lab (its service is not started)
	crowdsec        # the fleet test: a real CrowdSec Local API in the lab (its service is not started)
	dpkg-dev        # make deb: dpkg-shlibdeps, dpkg-buildflags
	binutils        # make deb: objcopy
	lintian         # make deb: the package's check
	debootstrap     # make systemd-test: a Debian 12 root
	systemd-container # make systemd-test: systemd-nspawn boots it
	ca-certificates # go install over HTTPS
)

# staticcheck release built by `go install`: v0.8.2 is staticcheck 2026.2.2
# (the proxy serves the module versions v0.x.y, not the 2025.1.1-style
# release names). It is the latest release and builds and runs with Go 1.26.
STATICCHECK_VERSION=v0.8.2

log() { printf 'deps: %s\n' "$*"; }
die() {
	printf 'deps: error: %s\n' "$*" >&2
	exit 1
}

cd "$(dirname "${BASH_SOURCE[0]}")/.."

# missing_packages prints the packages of PACKAGES not fully installed.
missing_packages() {
	local status
	status=$(dpkg-query -W -f='${Package} ${Status}\n' "${PACKAGES[@]}" 2>/dev/null || true)
	local p
	for p in "${PACKAGES[@]}"; do
		if ! grep -qx "$p install ok installed" <<<"$status"; then
			printf '%s\n' "$p"
		fi
	done
}

install_packages() {
	local missing
	mapfile -t missing < <(missing_packages)
	if ((${#missing[@]} == 0)); then
		log "ok: Debian packages present (${PACKAGES[*]})"
		return
	fi
	if ((EUID != 0)); then
		die "missing Debian packages: ${missing[*]}; run this script as root (sudo bash scripts/deps.sh) or install them: sudo apt-get install -y --no-install-recommends ${missing[*]}"
	fi
	command -v apt-get >/dev/null || die "missing Debian packages: ${missing[*]}, and apt-get is not available: install them with your package manager"
	export DEBIAN_FRONTEND=noninteractive
	if [[ " ${missing[*]} " == *" tshark "* ]]; then
		log "preseeding wireshark-common/install-setuid=false (no dumpcap setuid question)"
		echo 'wireshark-common wireshark-common/install-setuid boolean false' | debconf-set-selections
	fi
	log "apt-get update"
	apt-get update -q </dev/null >/tmp/scanwarden-deps-apt.log 2>&1 ||
		die "apt-get update failed (see /tmp/scanwarden-deps-apt.log): $(tail -n 3 /tmp/scanwarden-deps-apt.log | tr '\n' ' ')"
	# Packages that ship a service (prometheus) must not start it: the
	# tests run their own instance, on loopback inside a namespace. The
	# Debian way is a policy-rc.d that denies every start; one already
	# there (a container's) is left as it is.
	local policy=/usr/sbin/policy-rc.d made=""
	if [[ ! -e $policy ]]; then
		printf '#!/bin/sh\n# scanwarden deps.sh: no service starts during its install\nexit 101\n' >"$policy"
		chmod 755 "$policy"
		made=$policy
	fi
	# crowdsec's postinst registers with CrowdSec's Central API, which
	# fails without internet, unless the Central API credentials file
	# exists and is not empty (README.Debian): the tests run their own
	# Local API with the Central API left out.
	if [[ " ${missing[*]} " == *" crowdsec "* && ! -s /etc/crowdsec/online_api_credentials.yaml ]]; then
		log "writing /etc/crowdsec/online_api_credentials.yaml (no Central API registration at install)"
		mkdir -p /etc/crowdsec
		printf '# written by scanwarden scripts/deps.sh: no Central API registration at install\n' >/etc/crowdsec/online_api_credentials.yaml
	fi
	log "apt-get install ${missing[*]}"
	local rc=0
	apt-get install -y -q --no-install-recommends "${missing[@]}" </dev/null >>/tmp/scanwarden-deps-apt.log 2>&1 || rc=$?
	[[ -z $made ]] || rm -f "$made"
	((rc == 0)) ||
		die "apt-get install ${missing[*]} failed (see /tmp/scanwarden-deps-apt.log): $(tail -n 3 /tmp/scanwarden-deps-apt.log | tr '\n' ' ')"
	mapfile -t missing < <(missing_packages)
	((${#missing[@]} == 0)) || die "still missing after apt-get install: ${missing[*]}"
	log "installed; Debian packages present"
}

# version_lt A B: true when version A sorts before version B.
version_lt() {
	[[ $1 != "$2" && $(printf '%s\n%s\n' "$1" "$2" | sort -V | head -n1) == "$1" ]]
}

# go_needed prints the Go version go.mod asks for.
go_needed() {
	awk '$1 == "go" { print $2; exit }' go.mod
}

find_go() {
	local need have
	need=$(go_needed)
	if command -v go >/dev/null; then
		GO=$(command -v go)
	elif [[ -x /usr/local/go/bin/go ]]; then
		GO=/usr/local/go/bin/go
		log "note: go is not on PATH; using $GO (add /usr/local/go/bin to PATH)"
	else
		die "Go is not installed (not on PATH, not at /usr/local/go/bin): go.mod needs Go ${need} or newer; install it from the Go distribution into /usr/local/go and add /usr/local/go/bin to PATH"
	fi
	have=$(GOTOOLCHAIN=local "$GO" env GOVERSION)
	have=${have#go}
	if version_lt "$have" "$need"; then
		die "$GO is Go ${have}; go.mod needs Go ${need} or newer"
	fi
	log "ok: $GO (go${have}, go.mod needs ${need})"
}

install_staticcheck() {
	local gobin sc built mine
	gobin=$("$GO" env GOBIN)
	[[ -n $gobin ]] || gobin="$("$GO" env GOPATH)/bin"
	sc=$gobin/staticcheck
	if [[ -x $sc ]]; then
		# A staticcheck built by an older Go cannot load packages written for
		# a newer one: rebuild it when its Go is older than ours.
		built=$("$GO" version "$sc" 2>/dev/null | awk '{print $2}')
		mine=$("$GO" env GOVERSION)
		built=${built#go} mine=${mine#go}
		if [[ -n $built ]] && ! version_lt "${built%.*}" "${mine%.*}"; then
			log "ok: $sc (built with go${built})"
			return
		fi
		log "$sc was built with ${built:+go}${built:-an unknown Go}, older than go${mine}: rebuilding"
	fi
	log "go install honnef.co/go/tools/cmd/staticcheck@${STATICCHECK_VERSION} into $gobin"
	GOBIN=$gobin "$GO" install "honnef.co/go/tools/cmd/staticcheck@${STATICCHECK_VERSION}" </dev/null ||
		die "go install honnef.co/go/tools/cmd/staticcheck@${STATICCHECK_VERSION} failed (is the Go module proxy reachable?)"
	[[ -x $sc ]] || die "go install reported success but $sc is missing"
	log "installed: $sc"
}

main() {
	install_packages
	find_go
	install_staticcheck
}

main "$@"
