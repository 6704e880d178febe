#!/bin/sh
# dmrescue ls agrees with thin_ls 0.9.0 on every fixture where thin_ls is
# right. Where it is not (mapped_blocks in the details tree disagrees with
# the mappings: thin_ls trusts the stored count), the mappings in thin_dump's
# own XML show that ours is the real count.
. "$top_srcdir/tests/cli/lib.sh"
need thin_ls thin_dump
ensure_fixtures
F=DEV,MAPPED_BLOCKS,EXCLUSIVE_BLOCKS,SHARED_BLOCKS,MAPPED_SECTORS,EXCLUSIVE_SECTORS,SHARED_SECTORS,MAPPED_BYTES,EXCLUSIVE_BYTES,SHARED_BYTES,MAPPED,EXCLUSIVE,SHARED,TRANSACTION,CREATE_TIME,SNAP_TIME
norm() { sed -e 's/^ *//' -e 's/ *$//' -e 's/  */ /g' "$1"; }
# Real number of mappings per device from thin_dump XML: "dev count" lines.
xml_counts() {
	awk -F'"' '/<device /{d=$2} /<range_mapping/{n[d]+=$6} /<single_mapping/{n[d]++}
		END{for (k in n) print k, n[k]}' "$1" | sort -n
}
for f in $(fixtures); do
	m="$FIXDIR/$f.meta"
	thin_ls -o "$F" "$m" >"$WORK/ref.txt" 2>"$WORK/ref.err" || { fail "$f: thin_ls failed"; cat "$WORK/ref.err"; continue; }
	run dmr --metadata "$m" ls -o "$F"
	[ "$RC" = 0 ] || { fail "$f: ls exit $RC"; cat "$WORK/err"; continue; }
	norm "$WORK/ref.txt" >"$WORK/ref.n"
	norm "$WORK/out" >"$WORK/our.n"
	if [ "$f" = mappedoff ]; then
		if cmp -s "$WORK/ref.n" "$WORK/our.n"; then fail "$f: thin_ls and ls agree on a pool whose mapped_blocks is wrong"; continue; fi
		thin_dump "$m" >"$WORK/dump.xml"
		xml_counts "$WORK/dump.xml" >"$WORK/real"
		awk 'NR>1{print $1, $2}' "$WORK/our.n" | sort -n >"$WORK/ours"
		if cmp -s "$WORK/real" "$WORK/ours"; then ok "$f: ls MAPPED_BLOCKS equals the mappings thin_dump lists"; else
			fail "$f: ls MAPPED_BLOCKS differs from the real mappings"; diff "$WORK/real" "$WORK/ours"; fi
		stored=$(sed -n 's/.*<device dev_id="\([0-9]*\)" mapped_blocks="\([0-9]*\)".*/\1 \2/p' "$WORK/dump.xml" | sort -n)
		theirs=$(awk 'NR>1{print $1, $2}' "$WORK/ref.n" | sort -n)
		if [ "$stored" = "$theirs" ] && [ "$stored" != "$(cat "$WORK/real")" ]; then
			ok "$f: thin_ls shows the stored (wrong) mapped_blocks instead"
		else
			fail "$f: thin_ls did not show the stored count"
		fi
		continue
	fi
	if cmp -s "$WORK/ref.n" "$WORK/our.n"; then ok "$f: ls equals thin_ls"; else
		fail "$f: ls differs from thin_ls"; diff "$WORK/ref.n" "$WORK/our.n" | head -20; fi
done
# The metadata snapshot's devices.
m="$FIXDIR/metasnap.meta"
thin_ls -m -o "$F" "$m" >"$WORK/ref.txt" 2>&1
run dmr --metadata "$m" ls -m -o "$F"
norm "$WORK/ref.txt" >"$WORK/ref.n"; norm "$WORK/out" >"$WORK/our.n"
if [ "$RC" = 0 ] && cmp -s "$WORK/ref.n" "$WORK/our.n"; then ok "metasnap: ls -m equals thin_ls -m"; else
	fail "metasnap: ls -m differs (rc $RC)"; diff "$WORK/ref.n" "$WORK/our.n" | head; fi
finish
