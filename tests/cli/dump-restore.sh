#!/bin/sh
# thin_restore accepts what dmrescue dump writes, and the restored metadata
# dumps back to the same XML (a round trip through the reference tools).
. "$top_srcdir/tests/cli/lib.sh"
need thin_restore thin_dump thin_check
ensure_fixtures
for f in $(fixtures); do
	m="$FIXDIR/$f.meta"
	dmr --metadata "$m" dump >"$WORK/a.xml" || { fail "$f: dump failed"; continue; }
	size=$(stat -c %s "$m")
	rm -f "$WORK/r.meta"
	truncate -s "$size" "$WORK/r.meta"
	if thin_restore -i "$WORK/a.xml" -o "$WORK/r.meta" >"$WORK/err" 2>&1 && thin_check -q "$WORK/r.meta"; then
		ok "$f: thin_restore and thin_check accept our dump"
	else
		fail "$f: thin_restore rejected our dump"; cat "$WORK/err"; continue
	fi
	dmr --metadata "$WORK/r.meta" dump >"$WORK/b.xml"
	# thin_restore recomputes mapped_blocks and clears needs_check; compare the rest.
	norm() { sed -e 's/ mapped_blocks="[0-9]*"//' -e 's/ flags="[0-9]*"//' "$1"; }
	if [ "$(norm "$WORK/a.xml")" = "$(norm "$WORK/b.xml")" ]; then ok "$f: round trip"; else
		fail "$f: round trip differs"; diff "$WORK/a.xml" "$WORK/b.xml" | head; fi
done
finish
