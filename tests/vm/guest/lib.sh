# shellcheck shell=sh
# Sourced by the tests that run inside the VM. Each check writes one line to
# $DMR_RESULTS: "ok: TEST: what" or "FAIL: TEST: what"; the host turns them
# into the suite's PASS/FAIL lines.
: "${DMR_RESULTS:?}" "${DMR_TEST:?}" "${DMR_SCRATCH:?}"
export PATH=/vmwork/dmr:/usr/sbin:/usr/bin:/sbin:/bin

ok() {
	echo "ok: $DMR_TEST: $*" >>"$DMR_RESULTS"
	echo "=== ok: $*"
}
fail() {
	echo "FAIL: $DMR_TEST: $*" >>"$DMR_RESULTS"
	echo "=== FAIL: $*"
}
note() {
	echo "note: $DMR_TEST: $*" >>"$DMR_RESULTS"
	echo "=== note: $*"
}
# check WHAT CMD...: one result line, from CMD's exit status.
check() {
	_what=$1
	shift
	if "$@"; then ok "$_what"; else fail "$_what"; fi
}
# must CMD...: a step the rest depends on; a failure ends the test.
must() {
	if ! "$@"; then
		fail "step failed: $*"
		exit 1
	fi
}
# Allocated bytes of a file on its filesystem.
allocated() { echo $(($(stat -c %b "$1") * 512)); }
# The first "KEY": N number in a JSON file (dmrescue prints data before
# metadata, so the first one is the data file's).
json_first() { grep -o "\"$2\": *[0-9]*" "$1" | head -n 1 | grep -o '[0-9]*$'; }
