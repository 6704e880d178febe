# shellcheck shell=bash
# Helpers shared by scripts/test and scripts/demo. Source it; do not run it.
#
# Everything here is idempotent: installing only what is missing,
# regenerating configure only when it is stale, configuring a build
# directory only when it has not been configured with the same options.

# Debian packages needed to build dmrescue, run its test suite and the demo.
DMR_DEB_PACKAGES=(
	build-essential autoconf automake libtool pkg-config
	libdevmapper-dev libblkid-dev libcmocka-dev libjson-c-dev libaio-dev zlib1g-dev
	thin-provisioning-tools valgrind clang libclang-rt-14-dev
	xfsprogs e2fsprogs
)

# Reference tools only the test suite uses as oracles (scripts/test adds them):
# Go and the real bbolt library, to cross-check the BuildKit database reader;
# jq, to read JSON output in the CLI tests.
# shellcheck disable=SC2034 # used by scripts/test
DMR_TEST_PACKAGES=(golang-go golang-github-coreos-bbolt-dev jq strace)

# What the VM tests need on the host (scripts/test --vm adds them): qemu
# for the VM, debootstrap to build its root image from Debian packages.
# shellcheck disable=SC2034 # used by scripts/test
DMR_VM_PACKAGES=(qemu-system-x86 debootstrap)

# The top of the source tree: the parent of the directory holding this file.
DMR_SRCDIR=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

dmr_say() { printf '==> %s\n' "$*"; }
dmr_warn() { printf '%s: warning: %s\n' "${0##*/}" "$*" >&2; }
dmr_die() {
	printf '%s: %s\n' "${0##*/}" "$*" >&2
	exit 1
}

# Prints the packages of DMR_DEB_PACKAGES that are not installed, one a line.
dmr_missing_packages() {
	local pkg
	for pkg in "${DMR_DEB_PACKAGES[@]}"; do
		if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null |
			grep -q 'install ok installed'; then
			printf '%s\n' "$pkg"
		fi
	done
}

# Installs what is missing when running as root; otherwise only says what is
# missing and carries on (configure will name anything that really is needed).
# $1: "yes" to allow installing, anything else to only report.
dmr_ensure_packages() {
	local allow=$1 missing
	if ! command -v dpkg-query >/dev/null 2>&1; then
		dmr_warn "not a Debian-like system: cannot check packages; needed: ${DMR_DEB_PACKAGES[*]}"
		return 0
	fi
	mapfile -t missing < <(dmr_missing_packages)
	if [ "${#missing[@]}" -eq 0 ]; then
		return 0
	fi
	if [ "$allow" != yes ]; then
		dmr_warn "missing packages (not installing): ${missing[*]}"
		return 0
	fi
	if [ "$(id -u)" -ne 0 ]; then
		dmr_warn "missing packages: ${missing[*]}"
		dmr_warn "run as root to install them, or: sudo apt-get install ${missing[*]}"
		return 0
	fi
	dmr_say "installing: ${missing[*]}"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -q </dev/null
	apt-get install -y -q --no-install-recommends -o Dpkg::Use-Pty=0 \
		"${missing[@]}" </dev/null
}

# Runs autoreconf -fi when configure is missing or older than any autotools
# input. Prints nothing when configure is up to date.
dmr_autoreconf_if_needed() {
	local src=$DMR_SRCDIR input stale=
	if [ ! -x "$src/configure" ] || [ ! -f "$src/Makefile.in" ]; then
		stale=yes
	else
		local -a inputs=("$src/configure.ac" "$src/Makefile.am")
		mapfile -d '' -t -O 2 inputs < <(find "$src/src" "$src/tests" \
			-name Makemodule.am -print0 2>/dev/null)
		for input in "${inputs[@]}"; do
			if [ "$input" -nt "$src/configure" ] ||
				[ "$input" -nt "$src/Makefile.in" ]; then
				stale=yes
				break
			fi
		done
	fi
	if [ -n "$stale" ]; then
		dmr_say "autoreconf -fi (configure is missing or stale)"
		(cd "$src" && autoreconf -fi)
	fi
	if [ -f "$src/config.status" ]; then
		dmr_die "$src is configured in-tree; run 'make distclean' there first so out-of-tree builds work"
	fi
}

# Configures build directory $1 (relative to the source tree) with the
# configure options that follow, unless it is already configured with exactly
# those options. Later `make` runs redo config.status by themselves when
# configure changes.
dmr_configure() {
	local dir=$DMR_SRCDIR/$1 want have
	shift
	want="$*"
	mkdir -p "$dir"
	if [ -x "$dir/config.status" ] && [ -f "$dir/Makefile" ]; then
		# config.status --config prints the options quoted: 'a' 'b'.
		have=$("$dir/config.status" --config 2>/dev/null | tr -d "'")
		if [ "$have" = "$want" ]; then
			return 0
		fi
		dmr_say "reconfiguring ${dir#"$DMR_SRCDIR"/} (options were: ${have:-none})"
	else
		dmr_say "configuring ${dir#"$DMR_SRCDIR"/}${want:+ with $want}"
	fi
	# The relative path keeps the build dir relocatable with the tree.
	if [ "${DMR_QUIET_CONFIGURE:-no}" = yes ]; then
		(cd "$dir" && "$(dmr_relpath_to_src "$dir")/configure" "$@" >/dev/null) ||
			dmr_die "configure failed; see ${dir#"$DMR_SRCDIR"/}/config.log"
	else
		(cd "$dir" && "$(dmr_relpath_to_src "$dir")/configure" "$@")
	fi
}

# Prints the relative path from directory $1 (inside the tree) to the top.
dmr_relpath_to_src() {
	local rel=${1#"$DMR_SRCDIR"/} up=..
	while [[ $rel == */* ]]; do
		rel=${rel%/*}
		up=$up/..
	done
	printf '%s\n' "$up"
}

# Set DMR_QUIET_CONFIGURE=yes to keep configure's progress off stdout.

# Number of make jobs: two by default (the CI machine has two cores).
DMR_JOBS=${DMR_JOBS:-2}
