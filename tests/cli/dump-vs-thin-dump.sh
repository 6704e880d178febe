#!/bin/sh
# dmrescue dump describes every fixture exactly as thin_dump 0.9.0 does
# (byte-identical XML), with and without --skip-mappings, per device, and
# for the held metadata snapshot.
. "$top_srcdir/tests/cli/lib.sh"
need thin_dump
ensure_fixtures
for f in $(fixtures); do
	m="$FIXDIR/$f.meta"
	thin_dump "$m" >"$WORK/ref.xml" 2>"$WORK/ref.err"
	run dmr --metadata "$m" dump
	if [ "$RC" = 0 ] && cmp -s "$WORK/ref.xml" "$WORK/out"; then ok "$f: dump identical"; else
		fail "$f: dump differs (rc $RC)"; diff "$WORK/ref.xml" "$WORK/out" | head -20; cat "$WORK/err"; fi
	# The same through each read engine.
	for engine in aio pread; do
		DMRESCUE_IO=$engine dmr --metadata "$m" dump >"$WORK/eng.xml" 2>"$WORK/err"
		if cmp -s "$WORK/ref.xml" "$WORK/eng.xml"; then ok "$f: dump identical with DMRESCUE_IO=$engine"; else
			fail "$f: dump differs with DMRESCUE_IO=$engine"; cat "$WORK/err"; fi
	done
	thin_dump --skip-mappings "$m" >"$WORK/ref.xml" 2>/dev/null
	run dmr --metadata "$m" dump --skip-mappings
	if [ "$RC" = 0 ] && cmp -s "$WORK/ref.xml" "$WORK/out"; then ok "$f: --skip-mappings identical"; else
		fail "$f: --skip-mappings differs (rc $RC)"; diff "$WORK/ref.xml" "$WORK/out" | head -20; fi
	# the first and last device alone
	ids=$(sed -n 's/.*<device dev_id="\([0-9]*\)".*/\1/p' "$WORK/ref.xml")
	first=$(echo "$ids" | head -n 1) last=$(echo "$ids" | tail -n 1)
	if [ -n "$first" ]; then
		thin_dump --dev-id "$first" --dev-id "$last" "$m" >"$WORK/ref.xml" 2>/dev/null
		run dmr --metadata "$m" dump --dev-id "$first" --dev-id "$last"
		if [ "$RC" = 0 ] && cmp -s "$WORK/ref.xml" "$WORK/out"; then ok "$f: --dev-id $first,$last identical"; else
			fail "$f: --dev-id differs (rc $RC)"; diff "$WORK/ref.xml" "$WORK/out" | head -20; fi
	fi
done
# The held metadata snapshot, by default and by block.
m="$FIXDIR/metasnap.meta"
if [ -f "$m" ]; then
	thin_dump -m "$m" >"$WORK/ref.xml"
	run dmr --metadata "$m" dump -m
	if [ "$RC" = 0 ] && cmp -s "$WORK/ref.xml" "$WORK/out"; then ok "metasnap: dump -m identical"; else
		fail "metasnap: dump -m differs (rc $RC)"; diff "$WORK/ref.xml" "$WORK/out" | head; cat "$WORK/err"; fi
	held=$(od -An -t u8 -j 56 -N 8 "$m" | tr -d ' ')
	thin_dump --metadata-snap="$held" "$m" >"$WORK/ref.xml"
	run dmr --metadata "$m" dump --metadata-snap="$held"
	if [ "$RC" = 0 ] && cmp -s "$WORK/ref.xml" "$WORK/out"; then ok "metasnap: dump --metadata-snap=$held identical"; else
		fail "metasnap: --metadata-snap=$held differs (rc $RC)"; fi
else
	fail "no metasnap fixture"
fi
# O_DIRECT refused or unsupported (tmpfs on older kernels): falls back, not fails.
if [ -d /dev/shm ] && [ -w /dev/shm ]; then
	shm=$(mktemp /dev/shm/dmr-XXXXXX)
	cp "$FIXDIR/bigdev.meta" "$shm"
	thin_dump "$shm" >"$WORK/ref.xml"
	DMRESCUE_IO=aio dmr -v --metadata "$shm" dump >"$WORK/out" 2>"$WORK/err"
	if cmp -s "$WORK/ref.xml" "$WORK/out"; then ok "tmpfs: dump identical ($(sed -n 's/.*read with //p' "$WORK/err"))"; else fail "tmpfs: dump differs"; cat "$WORK/err"; fi
	rm -f "$shm"
fi
finish
