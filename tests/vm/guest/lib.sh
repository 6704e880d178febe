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

# reclaim_checked DMRESCUE_CMD DATA JSON: dmrescue reclaim --yes --json
# (output in JSON), checked to exit 0 and to shrink DATA's allocated bytes by
# exactly what it reports; sets $returned (empty when it reported nothing).
reclaim_checked() {
	_before=$(allocated "$2")
	$1 reclaim --yes --json >"$3"
	_rc=$?
	cat "$3"
	_after=$(allocated "$2")
	returned=$(json_first "$3" bytes_returned)
	check "dmrescue reclaim exits 0 (got $_rc)" test "$_rc" -eq 0
	note "data file allocated: $_before -> $_after bytes; reclaim returned ${returned:-?} bytes"
	check "the data file's allocated size dropped by what reclaim reported ($((_before - _after)) = ${returned:-?})" \
		test "$((_before - _after))" = "${returned:-x}"
}

# --- thin pools ---------------------------------------------------------------
# dmsetup status of a thin-pool: 0 LEN thin-pool TID META_USED/TOTAL
# DATA_USED/TOTAL ROOT MODE ... (MODE: rw, ro, out_of_data_space, Fail).
pool_status() { dmsetup status "$1" | cut -d' ' -f4-; }
pool_data_used() { dmsetup status "$1" | awk '{ split($6, a, "/"); print a[1] }'; }
pool_data_total() { dmsetup status "$1" | awk '{ split($6, a, "/"); print a[2] }'; }
pool_mode() { dmsetup status "$1" | awk '{ print $8 }'; }

# takedown MNT_PREFIX DM_PREFIX FILE...: by hand, what a pool on loop files
# leaves active: the mounts under MNT_PREFIX (lazily when busy), the thin
# devices and then the pools whose names start with DM_PREFIX (a removal
# deferred when a device is still open elsewhere), the loop devices on FILEs.
takedown() {
	_mp=$1 _dp=$2
	shift 2
	for _m in $(awk -v p="$_mp" 'index($2, p) == 1 { print $2 }' /proc/mounts | sort -r); do
		umount "$_m" 2>/dev/null || umount -l "$_m"
	done
	_pools=$(dmsetup ls --target thin-pool | awk -v p="$_dp" 'index($1, p) == 1 { print $1 }')
	for _d in $(dmsetup ls | awk -v p="$_dp" 'index($1, p) == 1 { print $1 }'); do
		printf '%s\n' "$_pools" | grep -qxF "$_d" && continue
		dmsetup remove "$_d" || dmsetup remove --force "$_d" || dmsetup remove --deferred "$_d"
	done
	for _d in $_pools; do
		dmsetup remove "$_d"
	done
	udevadm settle
	for _f in "$@"; do
		for _l in $(losetup -j "$_f" -O NAME -n); do
			losetup -d "$_l"
		done
	done
	udevadm settle
}
