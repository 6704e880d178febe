#!/bin/sh
# ls output for people and for programs, against golden files: the default
# table, chosen fields, no headers, and the versioned JSON document.
. "$top_srcdir/tests/cli/lib.sh"
ensure_fixtures
norm_path() { sed -e "s|$FIXDIR/|FIXDIR/|g" "$WORK/out" >"$WORK/out.n"; }
for f in snap sharedleaf ref3 mappedoff; do
	run dmr --metadata "$FIXDIR/$f.meta" ls
	expect_rc 0 "$f: ls"
	golden "ls/$f.table" "$WORK/out"
	run dmr --metadata "$FIXDIR/$f.meta" ls --json
	expect_rc 0 "$f: ls --json"
	norm_path
	golden "ls/$f.json" "$WORK/out.n"
done
run dmr --metadata "$FIXDIR/snap.meta" ls --no-headers -o dev,HIGHEST_MAPPED,HIGHEST_MAPPED_BYTES,TRANSACTION
expect_rc 0 "snap: ls --no-headers -o"
golden "ls/snap.fields" "$WORK/out"
run dmr --metadata "$FIXDIR/metasnap.meta" ls -m --json
expect_rc 0 "metasnap: ls -m --json"
norm_path
golden "ls/metasnap-m.json" "$WORK/out.n"
run dmr --metadata "$FIXDIR/empty.meta" ls
expect_rc 0 "empty: ls"
golden "ls/empty.table" "$WORK/out"
finish
