#!/bin/sh
# Crash safety of clean: a test build fails the N-th change to a file
# (DMRESCUE_FAULT_AT=N: every write, fsync, rename, unlink, mkdir...) by
# exiting on the spot, as a power loss would stop it. For every N until
# clean completes:
# - the pool metadata is valid (thin_check) and its devices and mappings are
#   either the old ones or the new ones (thin_dump);
# - every Docker file and directory is either as before or as after;
# - dmrescue scan reads the root without damage, and a second clean run
#   finishes the job: the end state is the same as an uninterrupted run's.
# Then a few N again with DMRESCUE_FAULT_MODE=eio: the error is reported
# (exit 4) and the same holds, with the temporary metadata copy removed.
. "$top_srcdir/tests/cli/lib.sh"
. "$top_srcdir/tests/cli/clean-lib.sh"
need jq thin_dump thin_check
ensure_dockerroot leftovers
"$DMRESCUE" --version | grep -q 'fault-injection' || skip "not a test build (configure --enable-fault-injection)"

# The state of a root for comparison: our temporary copy of the metadata
# (a dot file Docker never reads) is named apart so the check can allow it.
cstate() {
	state "$1" | grep -v ' devicemapper/devicemapper/metadata$' |
		sed -e 's|^[^ ]* \(devicemapper/devicemapper/\.metadata\.dmrescue-new\)$|TEMP \1|' \
			-e 's|^[^ ]* \(buildkit/\.snapshots\.db\.dmrescue-new\)$|TEMP \1|'
}

# check_state N: the invariants after an interrupted run.
check_state() {
	n=$1
	bad=0
	if ! thin_check -q "$META" 2>/dev/null; then echo "  change $n: thin_check fails"; bad=1; fi
	thin_dump "$META" >"$WORK/now.dump" 2>/dev/null
	if ! cmp -s "$WORK/now.dump" "$WORK/old.dump" && ! cmp -s "$WORK/now.dump" "$WORK/new.dump"; then
		echo "  change $n: the pool is neither the old nor the new one"; bad=1
	fi
	cstate "$R" >"$WORK/now.state"
	# every path now is as before or as after (or our temporary copy)
	awk -v n="$n" '
		FILENAME == ARGV[1] { old[$2] = $1; next }
		FILENAME == ARGV[2] { new[$2] = $1; next }
		{ now[$2] = $1
		  if ($1 == "TEMP") next
		  if (!(($2 in old) && old[$2] == $1) && !(($2 in new) && new[$2] == $1)) {
			print "  change " n ": " $2 " is neither old nor new"; bad = 1 } }
		END {
		  for (p in old) if (!(p in now) && (p in new)) { print "  change " n ": " p " vanished"; bad = 1 }
		  exit bad }' "$WORK/old.state" "$WORK/new.state" "$WORK/now.state" || bad=1
	if [ -f "$R/buildkit/snapshots.db" ] &&
		! "$top_builddir/tests/fixtures/buildkit/boltfix" dumpall "$R/buildkit/snapshots.db" >/dev/null 2>&1; then
		echo "  change $n: buildkit/snapshots.db does not read as a bbolt database"; bad=1
	fi
	dmr -r "$R" scan >/dev/null 2>"$WORK/scan.err"
	src=$?
	if [ "$src" -gt 1 ]; then echo "  change $n: scan exits $src"; cat "$WORK/scan.err"; bad=1; fi
	return $bad
}

# The root a loop starts from: the leftovers root, plus what $SETUP does to it.
fresh_root() {
	fresh
	[ -z "${SETUP:-}" ] || $SETUP "$R"
}

# crash_loop TAG OPTIONS...: the whole check for one clean command line.
crash_loop() {
	tag=$1
	shift
	fresh_root
	cstate "$R" >"$WORK/old.state"
	thin_dump "$META" >"$WORK/old.dump"
	run dmr -r "$R" clean --yes --backup-dir "$WORK/bk-ref-$tag" "$@"
	expect_rc 0 "$tag: uninterrupted clean"
	cstate "$R" >"$WORK/new.state"
	thin_dump "$META" >"$WORK/new.dump"
	n=1
	crashes=0
	broken=0
	while :; do
		fresh_root
		DMRESCUE_FAULT_AT=$n dmr -r "$R" clean --yes --backup-dir "$WORK/bk-$tag-$n" "$@" >/dev/null 2>"$WORK/err"
		rc=$?
		if [ "$rc" != 86 ]; then
			if [ "$rc" = 0 ]; then ok "$tag: clean completes when the fault point ($n) is past its last change"; else
				fail "$tag: clean exit $rc with fault point $n"; cat "$WORK/err"; fi
			break
		fi
		crashes=$((crashes + 1))
		check_state "$n" || broken=$((broken + 1))
		# the same command again finishes the job
		dmr -r "$R" clean --yes --backup-dir "$WORK/bk-$tag-$n-again" "$@" >/dev/null 2>"$WORK/err2"
		rc2=$?
		thin_dump "$META" >"$WORK/now.dump"
		cstate "$R" | grep -v '^TEMP ' >"$WORK/now.state"
		if [ "$rc2" != 0 ] || ! cmp -s "$WORK/now.dump" "$WORK/new.dump" || ! cmp -s "$WORK/now.state" "$WORK/new.state"; then
			echo "  $tag: change $n ($(sed -n "${n}p" "$WORK/faults")): a second clean does not reach the end state (exit $rc2)"
			cat "$WORK/err2"
			diff "$WORK/new.state" "$WORK/now.state" | head -5
			broken=$((broken + 1))
		fi
		n=$((n + ${CRASH_STRIDE:-1}))
		[ "$n" -lt 5000 ] || { fail "more than 5000 changes?"; break; }
	done
	if [ "$broken" = 0 ] && [ "$crashes" -gt 0 ]; then
		ok "$tag: a crash at each of the $crashes changes${CRASH_STRIDE:+ tried (every ${CRASH_STRIDE}th)} leaves a valid old-or-new state, and the same clean finishes"
	else
		fail "$tag: $broken of $crashes crash points left a bad state"
	fi
	# I/O errors instead of crashes: reported, nothing half-done.
	last=$(((crashes - 1) * ${CRASH_STRIDE:-1} + 1))
	for n in 1 5 $((last / 2)) $((last - 1)) $last; do
		fresh_root
		DMRESCUE_FAULT_AT=$n DMRESCUE_FAULT_MODE=eio dmr -r "$R" clean --yes --backup-dir "$WORK/bk-eio-$tag-$n" "$@" \
			>/dev/null 2>"$WORK/err"
		rc=$?
		if [ "$rc" = 4 ] && grep -q 'injected I/O error' "$WORK/err" && check_state "eio $n" &&
			[ ! -e "$R/devicemapper/devicemapper/.metadata.dmrescue-new" ]; then
			ok "$tag: an I/O error at change $n: exit 4, reported, old-or-new state, no temporary copy left"
		else
			fail "$tag: I/O error at change $n: exit $rc"; cat "$WORK/err"
		fi
	done
}

# The list of changes of one run, to name the one a failure is at.
fresh
DMRESCUE_FAULT_LOG="$WORK/faults" dmr -r "$R" clean --yes --all --buildkit-cache --backup-dir "$WORK/bk-log" >/dev/null 2>&1
crash_loop default
# The second loop takes three times as long under the sanitizers; the
# first one already runs every crash path there.
if [ -n "${ASAN_OPTIONS:-}" ]; then
	echo "note: sanitizer build: the --all loop runs in the plain build only"
else
	crash_loop all --all --buildkit-cache
fi
# --buildkit-unreferenced: buildkit/snapshots.db is rewritten (temp file,
# rename) before the devices go; each crash leaves it old or new, and bbolt
# reads it (Tx.Check) when Go is here.
bk_setup() {
	bk_dbs "$1" aaaaaaaaaaaaaaaaaaaaaaaaa "" aaaaaaaaaaaaaaaaaaaaaaaaa
}
SETUP=bk_setup
if [ -n "${ASAN_OPTIONS:-}" ]; then
	# Its own crash paths (the snapshots.db swap) under the sanitizers:
	# every 5th change, as the whole loop takes over 20 minutes there.
	CRASH_STRIDE=5 crash_loop bkunref --buildkit-unreferenced
else
	crash_loop bkunref --buildkit-unreferenced
fi
SETUP=
finish
