#!/usr/bin/env bash
# scripts/test.sh: the body of `make test`: formatting, vet, staticcheck,
# then every test with the race detector. Root-only kernel tests run when
# this runs as root and skip with a reason otherwise.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

die() {
	printf 'test: error: %s\n' "$*" >&2
	exit 1
}

# run CMD...: print CMD, then run it.
run() {
	printf '+ %s\n' "$*"
	"$@"
}

main() {
	if ! command -v go >/dev/null; then
		[[ -x /usr/local/go/bin/go ]] || die "go is missing: run scripts/deps.sh"
		PATH=$PATH:/usr/local/go/bin
	fi
	local gobin staticcheck unformatted
	gobin=$(go env GOBIN)
	[[ -n $gobin ]] || gobin="$(go env GOPATH)/bin"
	staticcheck=$gobin/staticcheck
	[[ -x $staticcheck ]] || die "$staticcheck is missing: run scripts/deps.sh"

	# The tracked Go files (that still exist); every Go file when this is
	# not a git checkout.
	local files=() f listed
	# shellcheck disable=SC2016 # the commands are printed, not expanded
	if listed=$(git ls-files -- '*.go' 2>/dev/null); then
		printf '+ gofmt -l $(git ls-files '\''*.go'\'')\n'
	else
		# shellcheck disable=SC2016
		printf '+ gofmt -l $(find . -name '\''*.go'\'')  # not a git checkout\n'
		listed=$(find . -name '*.go' -not -path './.*' -not -path '*/vendor/*')
	fi
	while IFS= read -r f; do
		if [[ -n $f && -f $f ]]; then
			files+=("$f")
		fi
	done <<<"$listed"
	if ((${#files[@]})); then
		unformatted=$(gofmt -l "${files[@]}")
		if [[ -n $unformatted ]]; then
			printf 'test: gofmt: these files need formatting (gofmt -w FILE):\n%s\n' "$unformatted" >&2
			exit 1
		fi
	fi
	run go vet ./...
	run "$staticcheck" ./...
	run go test -race -count=1 ./...
}

main "$@"
