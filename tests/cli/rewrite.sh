#!/bin/sh
# The rewrite engine (tm_rewrite_remove, through tests/fixtures/tmremove) on
# every fixture, for several device sets each (the first device, the last,
# an origin, its snapshot, both, all): the result must pass thin_check and
# dmrescue check, and thin_dump must show exactly what the XML route gives
# (thin_dump, delete the <device> elements, thin_restore, thin_dump). A held
# metadata snapshot must still dump as before. tmremove --plan must give the
# removal's figures and leave the file alone. Then crash and I/O-error
# injection at every change on one multi-device pool: each state left behind
# must pass thin_check and dump as either the original or the final result.
. "$top_srcdir/tests/cli/lib.sh"
need thin_restore thin_dump thin_check
TMREMOVE="$top_builddir/tests/fixtures/tmremove"
PP="$top_builddir/tests/fixtures/fixturepp"
[ -x "$TMREMOVE" ] || skip "tests/fixtures/tmremove is not built (make check builds it)"
ensure_fixtures

# tmremove under valgrind when DMR_VALGRIND=1, as dmr runs.
tmremove() {
	if [ "${DMR_VALGRIND:-0}" = 1 ]; then
		valgrind -q --error-exitcode=99 --leak-check=full --errors-for-leak-kinds=definite "$TMREMOVE" "$@"
	else
		"$TMREMOVE" "$@"
	fi
}

# dev_id, creation_time and snap_time of each device of a dump.
devices() {
	sed -n 's/.*<device dev_id="\([0-9]*\)".* creation_time="\([0-9]*\)" snap_time="\([0-9]*\)".*/\1 \2 \3/p' "$1"
}

# The device sets to remove from a dump, one a line: first, last, the first
# origin (snap_time after its creation) and a snapshot of it, both, all.
device_sets() {
	devices "$1" | awk '
		{ id[NR] = $1; ct[NR] = $2; st[NR] = $3 }
		END {
			if (NR == 0) exit
			print id[1]; print id[NR]
			for (i = 1; i <= NR && !o; i++) if (st[i] != ct[i]) o = i
			for (i = 1; i <= NR && o && !s; i++) if (i != o && ct[i] == st[o]) s = i
			if (o) print id[o]
			if (s) { print id[s]; print id[o] " " id[s] }
			all = id[1]; for (i = 2; i <= NR; i++) all = all " " id[i]; print all
		}' | awk '!seen[$0]++'
}

# The XML route: DUMP without the devices IDS, restored into a file of SIZE
# bytes and dumped again, into OUT.
reference() { # DUMP IDS SIZE OUT
	awk -v ids=" $2 " '
		/<device / { id = $2; gsub(/[^0-9]/, "", id); skip = index(ids, " " id " ") > 0 }
		!skip { print }
		/<\/device>/ { skip = 0 }' "$1" >"$WORK/ref.xml"
	rm -f "$WORK/ref.meta"
	truncate -s "$3" "$WORK/ref.meta"
	thin_restore -i "$WORK/ref.xml" -o "$WORK/ref.meta" >/dev/null 2>&1 && thin_dump "$WORK/ref.meta" >"$4"
}

# The value of KEY in tmremove's output.
res() { awk -v k="$1" '$1 == k { print $2 }' "$WORK/res"; }

# remove_case FIXTURE IDS: one removal and everything asserted about it.
remove_case() {
	f=$1 ids=$2 name="$1: remove $(echo "$2" | cut -c1-40)"
	m="$WORK/t.meta"
	cp --sparse=always "$FIXDIR/$f.meta" "$m"
	# shellcheck disable=SC2086
	run tmremove "$m" $ids
	if [ "$RC" != 0 ]; then fail "$name: tmremove exit $RC"; sed 's/^/  /' "$WORK/err"; return; fi
	cp "$WORK/out" "$WORK/res"
	n=$(echo "$ids" | wc -w)
	[ "$(res nr_removed)" = "$n" ] || fail "$name: nr_removed $(res nr_removed), expected $n"
	held=$(sed -n 's/^held_root //p' "$FIXDIR/$f.info")
	if [ "${held:-0}" = 0 ] && [ "$(res meta_used_after)" -gt "$(res meta_used_before)" ]; then
		fail "$name: metadata use grew from $(res meta_used_before) to $(res meta_used_after)"
	fi
	if thin_check -q "$m" >"$WORK/tc" 2>&1; then ok "$name: thin_check"; else
		fail "$name: thin_check"; sed 's/^/  /' "$WORK/tc"; fi
	case $f in needscheck) rc_want=1 ;; *) rc_want=0 ;; esac
	run dmr --metadata "$m" check
	expect_rc "$rc_want" "$name: dmrescue check"
	[ "$RC" = "$rc_want" ] || sed 's/^/  /' "$WORK/out" | head -5
	if ! reference "$WORK/orig.dump" "$ids" "$(stat -c %s "$m")" "$WORK/want.dump"; then
		fail "$name: the XML route failed"; return
	fi
	refused=$("$PP" info "$WORK/ref.meta" | awk '$1 == "data_blocks_used" { print $2 }')
	if [ "${held:-0}" = 0 ] && [ "$(res data_used_after)" != "$refused" ]; then
		fail "$name: $(res data_used_after) data blocks in use, the XML route has $refused"
	fi
	thin_dump "$m" >"$WORK/got.dump"
	if cmp -s "$WORK/got.dump" "$WORK/want.dump"; then ok "$name: thin_dump as the XML route"; else
		fail "$name: thin_dump differs from the XML route"; diff "$WORK/want.dump" "$WORK/got.dump" | head -5; fi
	if [ "${held:-0}" != 0 ]; then
		if thin_check -q -m "$m" >/dev/null 2>&1 && thin_dump -m "$m" | cmp -s - "$WORK/orig.snapdump"; then
			ok "$name: the metadata snapshot is intact"
		else
			fail "$name: the metadata snapshot changed"
		fi
	fi
}

for f in $(fixtures); do
	case $f in bench) continue ;; esac
	thin_dump "$FIXDIR/$f.meta" >"$WORK/orig.dump" || { fail "$f: thin_dump of the fixture"; continue; }
	held=$(sed -n 's/^held_root //p' "$FIXDIR/$f.info")
	[ "${held:-0}" = 0 ] || thin_dump -m "$FIXDIR/$f.meta" >"$WORK/orig.snapdump"
	if [ "$f" = mappedoff ]; then
		# Only device 1's mapped_blocks is wrong: without it the pool is clean.
		remove_case "$f" 1
		continue
	fi
	device_sets "$WORK/orig.dump" >"$WORK/sets"
	while read -r ids; do
		remove_case "$f" "$ids"
	done <"$WORK/sets"
done

# tmremove --plan (tm_rewrite_plan) gives the figures of the removal and
# leaves the file as it was: an origin and its snapshot (shared blocks
# count once), and a pool with a held metadata snapshot.
for c in "snap 1 2" "metasnap 2"; do
	# shellcheck disable=SC2086
	set -- $c
	f=$1
	shift
	cp --sparse=always "$FIXDIR/$f.meta" "$WORK/t.meta"
	if tmremove --plan "$WORK/t.meta" "$@" >"$WORK/plan" 2>"$WORK/err" &&
		cmp -s "$WORK/t.meta" "$FIXDIR/$f.meta" &&
		tmremove "$WORK/t.meta" "$@" >"$WORK/res" 2>>"$WORK/err" &&
		cmp -s "$WORK/plan" "$WORK/res"; then
		ok "$f: plan $*: the figures of the removal, the file untouched"
	else
		fail "$f: plan $*: not the figures of the removal, or the file changed"
		cat "$WORK/err"
		diff "$WORK/plan" "$WORK/res"
	fi
done

# Unknown devices and pools without devices: refused, nothing written.
for c in "empty 1" "snap 4" "snap 1 4"; do
	set -- $c
	f=$1
	shift
	cp --sparse=always "$FIXDIR/$f.meta" "$WORK/t.meta"
	run tmremove "$WORK/t.meta" "$@"
	expect_rc 1 "$f: remove $*"
	grep -q "device $(echo "$*" | awk '{ print $NF }') does not exist" "$WORK/err" && ok "$f: remove $*: says so" ||
		{ fail "$f: remove $*: message"; cat "$WORK/err"; }
	cmp -s "$WORK/t.meta" "$FIXDIR/$f.meta" && ok "$f: remove $*: file unchanged" || fail "$f: remove $*: file changed"
done

# ---- fault injection ----

[ "$("$TMREMOVE" --fault-built)" = 1 ] || {
	echo "SKIP: fault injection (configure --enable-fault-injection)"
	finish
}

# fault_loop FIXTURE MODE IDS: fails the N-th change for N = 1, 2, ...
# until tmremove gets through; every state left must be valid and be the
# original or the final result.
fault_loop() {
	f=$1 mode=$2
	shift 2
	thin_dump "$FIXDIR/$f.meta" >"$WORK/orig.dump"
	cp --sparse=always "$FIXDIR/$f.meta" "$WORK/final.meta"
	"$TMREMOVE" "$WORK/final.meta" "$@" >/dev/null || { fail "$f: tmremove $* without faults"; return; }
	thin_dump "$WORK/final.meta" >"$WORK/final.dump"
	n=1 states=0
	while [ "$n" -le 200 ]; do
		cp --sparse=always "$FIXDIR/$f.meta" "$WORK/t.meta"
		DMRESCUE_FAULT_AT=$n DMRESCUE_FAULT_MODE=$mode "$TMREMOVE" "$WORK/t.meta" "$@" >/dev/null 2>"$WORK/err"
		rc=$?
		if [ "$mode" = crash ] && [ "$rc" = 0 ]; then break; fi
		if [ "$mode" = eio ] && [ "$rc" = 0 ]; then break; fi
		want=86
		[ "$mode" = eio ] && want=1
		[ "$rc" = "$want" ] || { fail "$f $mode at change $n: exit $rc, expected $want"; cat "$WORK/err"; break; }
		if ! thin_check -q "$WORK/t.meta" >/dev/null 2>&1; then
			fail "$f $mode at change $n: thin_check rejects what is left"
		elif thin_dump "$WORK/t.meta" >"$WORK/t.dump" &&
			{ cmp -s "$WORK/t.dump" "$WORK/orig.dump" || cmp -s "$WORK/t.dump" "$WORK/final.dump"; }; then
			states=$((states + 1))
		else
			fail "$f $mode at change $n: the dump is neither the original nor the result"
		fi
		n=$((n + 1))
	done
	if [ "$rc" = 0 ] && cmp -s "$WORK/t.meta" "$WORK/final.meta"; then
		ok "$f: $mode at each of the $states changes left a valid pool, then it completed"
	else
		fail "$f: $mode loop did not complete as without faults (change $n, exit $rc)"
	fi
}

fault_loop snap crash 1
fault_loop snap eio 1
fault_loop manydevs crash 9 10 300
fault_loop metasnap crash 2
finish
