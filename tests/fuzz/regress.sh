#!/bin/sh
# Replays inputs through every fuzz harness once, with the plain main() of
# replay.c (no libFuzzer needed): the regression inputs of tests/fuzz/regress/
# (findings, minimised), the committed seeds of tests/fuzz/seeds/, and the
# seeds make-seeds cuts from the test fixtures (made once per build tree;
# left out, with a note, where the fixtures cannot be built). Under the
# sanitizer build this is where a finding stays fixed.
. "$top_srcdir/tests/cli/lib.sh"

FUZZ_TARGETS="superblock btree spacemap check dkparse dkstate bundle"
seeds=$top_builddir/tests/fuzz/seeds
seedtool=$top_builddir/tests/fuzz/seedtool
roots=$top_builddir/tests/fixtures/roots

# Seeds from the fixtures, remade when a fixture or the tools are newer.
(ensure_fixtures >/dev/null) || echo "note: no metadata fixtures here: image seeds left out"
for s in healthy leftovers cstorage; do
	(ensure_dockerroot $s >/dev/null) || echo "note: no $s Docker root here: its seeds left out"
done
stale=
if [ ! -f "$seeds/.stamp" ]; then
	stale=yes
else
	for f in "$top_srcdir/tests/fuzz/make-seeds" "$seedtool" "$FIXDIR/.stamp" "$roots"/*/.stamp; do
		[ -f "$f" ] && [ "$f" -nt "$seeds/.stamp" ] && stale=yes
	done
fi
if [ -n "$stale" ]; then
	if DMRESCUE=$DMRESCUE sh "$top_srcdir/tests/fuzz/make-seeds" "$seeds" "$seedtool" "$FIXDIR" "$roots" \
		"$top_srcdir/tests/fixtures/buildkit" >"$WORK/seeds.log" 2>&1; then
		touch "$seeds/.stamp"
		ok "seeds made from the fixtures: $(tr '\n' ',' <"$WORK/seeds.log" | sed 's/,$//; s/,/, /g')"
	else
		fail "make-seeds failed"
		cat "$WORK/seeds.log"
	fi
fi

# replay WHAT TARGET INPUT...: one run of the harness; -v names each input
# before it runs, so the last one named is the culprit.
replay() {
	what=$1 t=$2
	shift 2
	if TMPDIR=$WORK "$top_builddir/tests/fuzz/replay_$t" -v "$@" >"$WORK/out" 2>"$WORK/err"; then
		ok "$(cat "$WORK/out") ($what)"
	else
		fail "replay_$t: $(grep '^replay: ' "$WORK/err" | tail -n 1 | sed 's/^replay: //')"
		grep -v '^replay: ' "$WORK/err" | tail -n 40
	fi
}

for t in $FUZZ_TARGETS; do
	# Each regression input alone: one finding does not hide another.
	for f in "$top_srcdir/tests/fuzz/regress/$t"/*; do
		[ -f "$f" ] && replay "regress/$t/${f##*/}" "$t" "$f"
	done
	set --
	for d in "$top_srcdir/tests/fuzz/seeds/$t" "$seeds/$t"; do
		[ -d "$d" ] && set -- "$@" "$d"
	done
	[ $# -gt 0 ] && replay seeds "$t" "$@"
done
finish
