#!/bin/sh
# dmrescue reclaim on pools with known free and allocated layouts:
# - snap (the layout of thin_trim 0.9.0's data loss, format notes A.6): free
#   data blocks [100,200) [210,300) [900,950) [951,1024), block 950 mapped.
#   With a 4 KiB marker in every free block, reclaim must turn exactly those
#   runs into holes (SEEK_HOLE), keep every mapped byte (per-device hash),
#   and leave a pool thin_check and dmrescue check accept;
# - the dry run names the exact bytes and runs and changes nothing; the
#   plan (golden) and --json (schema dmrescue.reclaim/1);
# - the same through a loop device (BLKDISCARD), and thin_trim side by side;
# - a block a device maps but the space map calls free: refused, nothing
#   punched;
# - guards (lock, loop device on the data file, confirmation), a filesystem
#   without hole punching (ramfs), a crash and an I/O error at every punch;
# - the leftovers Docker root: clean, then reclaim gives back what scan said.
. "$top_srcdir/tests/cli/lib.sh"
. "$top_srcdir/tests/cli/clean-lib.sh"
need jq thin_check thin_dump
ensure_fixtures
FPP="$top_builddir/tests/fixtures/fixturepp"
test_build=no
"$DMRESCUE" --version | grep -q 'fault-injection' && test_build=yes
EXPECT_HOLES="100 200
210 300
900 950
951 1024"
B=65536

# setup NAME: $WORK/NAME/ as a driver home holding snap's pool with the
# marked data file: RR (the root), M, D.
setup() {
	RR="$WORK/$1"
	rm -rf "$RR"
	mkdir -p "$RR/devicemapper/devicemapper"
	M="$RR/devicemapper/devicemapper/metadata"
	D="$RR/devicemapper/devicemapper/data"
	cp "$FIXDIR/snap.meta" "$M"
	cp --sparse=always "$FIXDIR/snap.dirty.data" "$D"
	sync "$D" # allocated now, not at some later writeback
}
holes() { "$FPP" holes "$1" $B; }
alloc() { echo $(($(stat -c %b "$1") * $(stat -c %B "$1"))); }
check_pool() { # TAG: thin_check, dmrescue check, same mapped content
	if thin_check -q "$M" 2>"$WORK/tc.err"; then ok "$1: thin_check passes"; else fail "$1: thin_check"; cat "$WORK/tc.err"; fi
	if dmr --metadata "$M" --data "$D" check -q >"$WORK/ck" 2>&1; then ok "$1: dmrescue check passes"; else
		fail "$1: dmrescue check"; cat "$WORK/ck"; fi
	"$FPP" hash-devices "$M" "$D" >"$WORK/hash.now"
	if cmp -s "$WORK/hash.before" "$WORK/hash.now"; then ok "$1: every mapped block is byte-identical"; else
		fail "$1: mapped content changed"; diff "$WORK/hash.before" "$WORK/hash.now"; fi
}

# --- the dry run and the plan ---
setup a
"$FPP" hash-devices "$M" "$D" >"$WORK/hash.before"
thin_dump "$M" >"$WORK/dump.before"
before_alloc=$(alloc "$D")
before_sum=$("$FPP" hash-sparse "$D")
run dmr -r "$RR" reclaim --dry-run
expect_rc 0 "reclaim --dry-run"
sed "s|$RR|ROOT|g" "$WORK/out" >"$WORK/plan"
golden reclaim/snap.plan "$WORK/plan"
run dmr -r "$RR" reclaim --dry-run --json
expect_rc 0 "reclaim --dry-run --json"
# 313 free blocks in 4 runs, each with one 4 KiB marker allocated: 313 runs.
if jq -e '.schema == "dmrescue.reclaim/1" and .state == "planned" and .data.free_blocks == 313 and
	.data.free_block_runs == 4 and .data.runs == 313 and .data.bytes == 313 * 4096 and
	(.data.largest_runs | length) == 5 and .metadata.kind == "file"' "$WORK/out" >/dev/null; then
	ok "JSON plan: 313 free blocks in 4 runs, 313 allocated runs of 4 KiB to punch"; else fail "JSON plan"; cat "$WORK/out"; fi
if [ "$(alloc "$D")" = "$before_alloc" ] && [ "$("$FPP" hash-sparse "$D")" = "$before_sum" ]; then
	ok "--dry-run changes nothing"; else fail "--dry-run changed the data file"; fi
run dmr -r "$RR" reclaim </dev/null
expect_rc 5 "reclaim without --yes off a terminal"
if grep -q 'not confirmed' "$WORK/err" && [ "$("$FPP" hash-sparse "$D")" = "$before_sum" ]; then
	ok "not confirmed: nothing punched"; else fail "not confirmed"; cat "$WORK/err"; fi

# --- the real thing ---
run dmr -r "$RR" reclaim --yes --json
expect_rc 0 "reclaim --yes --json"
if jq -e '.state == "done" and .data.calls == 313 and .data.bytes_returned == 313 * 4096 and
	.data.allocated_before - .data.allocated_after >= 313 * 4096 - 65536' "$WORK/out" >/dev/null; then
	# (the filesystem's own extent blocks count in st_blocks too: a few KiB of slack)
	ok "result: 313 calls, 1252 KiB returned, st_blocks dropped by as much"; else fail "JSON result"; cat "$WORK/out"; fi
if [ "$(holes "$D")" = "$EXPECT_HOLES" ]; then ok "exactly the free runs are holes (block 950 kept)"; else
	fail "holes after reclaim"; holes "$D"; fi
check_pool "after reclaim"
thin_dump "$M" >"$WORK/dump.after"
if cmp -s "$WORK/dump.before" "$WORK/dump.after"; then ok "thin_dump unchanged after punching the metadata file"; else
	fail "thin_dump changed"; fi
if [ -s "$RR/devicemapper/.dmrescue-reclaimed" ]; then ok "the reclaim stamp is set (undo of older backups refuses)"; else
	fail "no reclaim stamp"; fi
run dmr -r "$RR" reclaim --yes --json
expect_rc 0 "reclaim again"
if jq -e '.state == "nothing-to-do" and .data.runs == 0 and .metadata.runs == 0' "$WORK/out" >/dev/null; then
	ok "a second reclaim finds nothing left"; else fail "second reclaim"; cat "$WORK/out"; fi
# Preallocated (unwritten) extents take host space though SEEK_DATA calls
# them holes (a loop device turns write-zeroes into fallocate ZERO_RANGE).
a_prev=$(alloc "$D")
if fallocate -o $((150 * B)) -l $((2 * B)) "$D" 2>/dev/null && [ "$(alloc "$D")" -gt "$a_prev" ]; then
	a0=$(alloc "$D")
	run dmr -r "$RR" reclaim --yes --json
	if jq -e '.data.runs == 1 and .data.bytes == 2 * 65536 and .data.method == "fiemap"' "$WORK/out" >/dev/null &&
		[ "$(alloc "$D")" -lt "$a0" ]; then ok "preallocated free blocks are given back too (FIEMAP)"; else
		fail "preallocated extents"; cat "$WORK/out"; fi
fi

# --- progress: a bar on a terminal, lines with -v, nothing otherwise ---
if command -v script >/dev/null; then
	setup tty
	script -qec "$DMRESCUE -r $RR reclaim --yes --data-only" /dev/null >"$WORK/tty.out" 2>&1
	if grep -q 'reclaim data \[#' "$WORK/tty.out" && grep -q 'ETA' "$WORK/tty.out"; then
		ok "a progress bar on a terminal"; else fail "no progress bar on a terminal"; cat -v "$WORK/tty.out"; fi
fi
setup quiet
run dmr -r "$RR" reclaim --yes --data-only
if ! grep -q 'ETA' "$WORK/err"; then ok "no progress off a terminal"; else fail "progress off a terminal"; fi
setup verbose
run dmr -r "$RR" reclaim --yes --data-only -v
if grep -q '^reclaim data: 100%' "$WORK/err"; then ok "-v: progress lines off a terminal"; else fail "-v progress"; cat "$WORK/err"; fi

# --- --dig-zeroes: mapped blocks that are all zeros ---
setup dig
# blocks 5-7 and 950 (mapped) become written zeros; block 8 half zeros
dd if=/dev/zero of="$D" bs=$B seek=5 count=3 conv=notrunc 2>/dev/null
dd if=/dev/zero of="$D" bs=$B seek=950 count=1 conv=notrunc 2>/dev/null
dd if=/dev/zero of="$D" bs=32768 seek=16 count=1 conv=notrunc 2>/dev/null
"$FPP" hash-devices "$M" "$D" >"$WORK/hash.before"
run dmr -r "$RR" reclaim --dig-zeroes --dry-run --json
expect_rc 0 "--dig-zeroes --dry-run"
if jq -e '.dig_zeroes and .data.zero_blocks == 4 and .data.zero_blocks_read == 711 and
	.data.bytes == 313 * 4096 + 4 * 65536' "$WORK/out" >/dev/null; then
	ok "--dig-zeroes: 4 all-zero blocks of the 711 in use, added to the 313 free runs"; else
	fail "--dig-zeroes plan"; cat "$WORK/out"; fi
for io in "" pread; do
	setup dig
	dd if=/dev/zero of="$D" bs=$B seek=5 count=3 conv=notrunc 2>/dev/null
	dd if=/dev/zero of="$D" bs=$B seek=950 count=1 conv=notrunc 2>/dev/null
	dd if=/dev/zero of="$D" bs=32768 seek=16 count=1 conv=notrunc 2>/dev/null
	DMRESCUE_IO=$io run dmr -r "$RR" reclaim --dig-zeroes --yes -v
	expect_rc 0 "--dig-zeroes --yes${io:+ (DMRESCUE_IO=$io)}"
	if [ "$(holes "$D")" = "5 8
100 200
210 300
900 1024" ]; then ok "--dig-zeroes: the zero blocks became holes too, the half-zero block stayed"; else
		fail "--dig-zeroes holes"; holes "$D"; fi
	check_pool "--dig-zeroes${io:+ ($io)}"
done
if grep -q 'libaio+O_DIRECT\|pread' "$WORK/err"; then ok "-v names the read method: $(grep -o 'with [a-z+_]*[A-Z_]*' "$WORK/err" | head -1)"; else
	fail "-v method"; cat "$WORK/err"; fi
setup digbd
LOOPD=""
if [ "$(id -u)" = 0 ] && LOOPD=$(losetup -f --show "$D" 2>/dev/null) && [ -n "$LOOPD" ]; then
	run dmr -r "$RR" reclaim --dig-zeroes --yes --data "$LOOPD"
	losetup -d "$LOOPD"
	expect_rc 5 "--dig-zeroes on a block device"
	if grep -q 'needs a data file' "$WORK/err"; then ok "--dig-zeroes on a block device: says why"; else fail "message"; cat "$WORK/err"; fi
fi

# --- a block device: BLKDISCARD through a loop device, and thin_trim ---
if [ "$(id -u)" = 0 ] && command -v losetup >/dev/null && losetup -f >/dev/null 2>&1; then
	setup loop
	"$FPP" hash-devices "$M" "$D" >"$WORK/hash.before"
	cp --sparse=always "$D" "$WORK/trim.data"
	LOOP=$(losetup -f --show "$D" 2>/dev/null)
	if [ -n "$LOOP" ]; then
		run dmr -r "$RR" reclaim --yes --data "$LOOP" --json
		losetup -d "$LOOP"
		expect_rc 0 "reclaim on a loop device"
		if jq -e '.data.kind == "block-device" and .data.method == "discard" and .data.bytes == 313 * 65536' \
			"$WORK/out" >/dev/null; then ok "block device: every free block discarded (20 MiB)"; else
			fail "block device JSON"; cat "$WORK/out"; fi
		if [ "$(holes "$D")" = "$EXPECT_HOLES" ]; then ok "block device: the backing file has exactly the free runs as holes"; else
			fail "block device holes"; holes "$D"; fi
		check_pool "after discards"
	fi
	# thin_trim 0.9.0 on the same layout (information: the format notes, A.6)
	if command -v thin_trim >/dev/null && LOOP=$(losetup -f --show "$WORK/trim.data" 2>/dev/null); then
		thin_trim --metadata-dev "$M" --data-dev "$LOOP" >/dev/null 2>&1
		losetup -d "$LOOP"
		if "$FPP" hash-devices "$M" "$WORK/trim.data" | cmp -s "$WORK/hash.before" -; then
			echo "note: thin_trim kept every mapped block on this layout"; else
			ok "thin_trim $(thin_trim -V 2>/dev/null) destroys mapped data on this layout (holes: $(holes "$WORK/trim.data" | tr '\n' ' ')); dmrescue keeps it (above)"; fi
	fi
else
	echo "note: no loop devices here: the BLKDISCARD path is not tested"
fi

# --- a mapped block the space map calls free: refused ---
setup bad
"$FPP" corrupt data-count "$M" 950 0 >/dev/null
sum=$("$FPP" hash-sparse "$D")
run dmr -r "$RR" reclaim --yes
expect_rc 2 "mapped block 950 marked free"
if grep -q 'block 950' "$WORK/err" && [ "$(grep -c . "$WORK/err")" -le 3 ]; then ok "the refusal names block 950"; else
	fail "inconsistency message"; cat "$WORK/err"; fi
if [ "$("$FPP" hash-sparse "$D")" = "$sum" ] && [ -z "$(holes "$D")" ]; then ok "inconsistent: nothing punched"; else
	fail "inconsistent pool: data file changed"; fi

# --- guards ---
setup g
sum=$("$FPP" hash-sparse "$D")
touch "$RR/devicemapper/.dmrescue.lock"
flock "$RR/devicemapper/.dmrescue.lock" sleep 5 &
lockpid=$!
sleep 0.3
run dmr -r "$RR" reclaim --yes
expect_rc 5 "another dmrescue holds the lock"
if grep -q 'another dmrescue' "$WORK/err"; then ok "lock: says so"; else fail "lock message"; cat "$WORK/err"; fi
pkill -P "$lockpid" 2>/dev/null
kill "$lockpid" 2>/dev/null
wait "$lockpid" 2>/dev/null
flock "$RR/devicemapper/.dmrescue.lock" true
if [ "$(id -u)" = 0 ] && LOOP=$(losetup -f --show "$D" 2>/dev/null) && [ -n "$LOOP" ]; then
	run dmr -r "$RR" reclaim --yes --force
	losetup -d "$LOOP"
	expect_rc 5 "a loop device on the data file (--force does not help)"
	if grep -q "$LOOP" "$WORK/err"; then ok "loop guard names $LOOP"; else fail "loop guard message"; cat "$WORK/err"; fi
fi
if [ "$("$FPP" hash-sparse "$D")" = "$sum" ]; then ok "guards: nothing punched"; else fail "guards: data changed"; fi

# --- a filesystem that cannot punch holes (ramfs) ---
if [ "$(id -u)" = 0 ] && mkdir -p "$WORK/ramfs" && mount -t ramfs ramfs "$WORK/ramfs" 2>/dev/null; then
	setup rf
	mkdir -p "$WORK/ramfs/devicemapper/devicemapper"
	cp "$M" "$D" "$WORK/ramfs/devicemapper/devicemapper/"
	run dmr -r "$WORK/ramfs" reclaim --yes
	expect_rc 5 "ramfs (no PUNCH_HOLE)"
	if grep -q 'cannot punch holes' "$WORK/err" && [ "$(grep -c . "$WORK/err")" = 1 ]; then
		ok "ramfs: one clear line"; else fail "ramfs message"; cat "$WORK/err"; fi
	if [ ! -e "$WORK/ramfs/devicemapper/.dmrescue-reclaimed" ]; then ok "ramfs: refused before anything changed"; else
		fail "ramfs: the stamp was written"; fi
	# A loop device on ramfs cannot discard: refused at the plan.
	if LOOPR=$(losetup -f --show "$WORK/ramfs/devicemapper/devicemapper/data" 2>/dev/null) && [ -n "$LOOPR" ]; then
		if [ "$(cat "/sys/block/${LOOPR#/dev/}/queue/discard_max_bytes" 2>/dev/null)" = 0 ]; then
			run dmr -r "$WORK/ramfs" reclaim --yes --data "$LOOPR"
			expect_rc 5 "a block device without discard"
			if grep -q 'does not support discard' "$WORK/err"; then ok "no discard: says so"; else fail "no-discard message"; cat "$WORK/err"; fi
		else
			echo "note: this kernel's loop device on ramfs can discard: the no-discard refusal is not tested"
		fi
		losetup -d "$LOOPR"
	fi
	umount "$WORK/ramfs"
else
	echo "note: cannot mount ramfs here: the no-punch-hole refusal is not tested"
fi

# --- a crash, and an I/O error, at every punch ---
if [ "$test_build" = yes ]; then
	setup crash
	"$FPP" hash-devices "$M" "$D" >"$WORK/hash.before"
	cp "$M" "$WORK/crash.meta"
	cp --sparse=always "$D" "$WORK/crash.data"
	DMRESCUE_FAULT_LOG="$WORK/fault.log" run dmr -r "$RR" reclaim --yes
	n=$(grep -c . "$WORK/fault.log")
	if [ "$RC" = 0 ] && [ "$n" -gt 300 ]; then ok "$n changes counted (the stamp, 313+1 punches, fsyncs)"; else
		fail "fault log: rc $RC, $n changes"; fi
	bad=0
	stride=1
	[ -n "${ASAN_OPTIONS:-}" ] && stride=5      # the sanitizer build: a fifth
	[ "${DMR_VALGRIND:-0}" = 1 ] && stride=53 # a handful under valgrind
	for k in $(seq 1 "$stride" "$n") "$n"; do
		cp "$WORK/crash.meta" "$M"
		cp --sparse=always "$WORK/crash.data" "$D"
		rm -f "$RR/devicemapper/.dmrescue-reclaimed"
		DMRESCUE_FAULT_AT=$k dmr -r "$RR" reclaim --yes >/dev/null 2>&1
		rc=$?
		[ "$rc" = 86 ] || { bad=1; echo "crash at $k: exit $rc"; }
		thin_check -q "$M" 2>/dev/null || { bad=1; echo "crash at $k: thin_check fails"; }
		"$FPP" hash-devices "$M" "$D" | cmp -s "$WORK/hash.before" - || { bad=1; echo "crash at $k: mapped data changed"; }
		dmr -r "$RR" reclaim --yes >/dev/null 2>&1 || { bad=1; echo "crash at $k: the rerun fails"; }
		[ "$(holes "$D")" = "$EXPECT_HOLES" ] || { bad=1; echo "crash at $k: the rerun does not finish the job"; }
	done
	if [ "$bad" = 0 ]; then ok "a crash at every one of the $n changes (stride $stride): valid pool, same data, a rerun finishes the job"; else
		fail "crash loop"; fi
	cp "$WORK/crash.meta" "$M"
	cp --sparse=always "$WORK/crash.data" "$D"
	DMRESCUE_FAULT_AT=20 DMRESCUE_FAULT_MODE=eio run dmr -r "$RR" reclaim --yes
	expect_rc 4 "an I/O error at the 20th change (a punch)"
	if grep -q 'the pool is valid; run reclaim again' "$WORK/err"; then ok "EIO: says the pool is valid"; else
		fail "EIO message"; cat "$WORK/err"; fi
	check_pool "after an I/O error"
fi

# --- the leftovers Docker root: clean, then reclaim ---
ensure_dockerroot leftovers
fresh
dmr -r "$R" clean --yes --backup-dir "$WORK/bk" >/dev/null 2>&1 || fail "clean on leftovers"
hash_devices "$R" >"$WORK/hash.before"
M="$R/devicemapper/devicemapper/metadata"
D="$R/devicemapper/devicemapper/data"
dmr -r "$R" scan --json >"$WORK/scan.json"; predicted=$(jq ".pool.reclaimable_bytes" "$WORK/scan.json")
run dmr -r "$R" reclaim --yes --json
expect_rc 0 "reclaim on the leftovers root after clean"
got=$(jq '.data.bytes_returned' "$WORK/out")
if [ -n "$predicted" ] && [ "$predicted" = "$got" ] && [ "$got" -gt 0 ]; then ok "gives back what scan predicted ($got bytes)"; else
	fail "scan predicted $predicted, reclaim returned $got"; jq .pool "$WORK/scan.json"; fi
check_pool "leftovers after clean + reclaim"
run dmr undo --yes "$WORK/bk"
expect_rc 5 "undo of the clean backup after reclaim"
finish
