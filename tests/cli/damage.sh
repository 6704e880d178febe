#!/bin/sh
# Damaged metadata: the reader names the file, block and lost range, keeps
# going past the damage, and exits 2; truncated files are refused.
. "$top_srcdir/tests/cli/lib.sh"
ensure_fixtures
u64() { od -An -t u8 -j "$2" -N 8 "$1" | tr -d ' '; }
m="$WORK/bigdev.meta"
cp --sparse=always "$FIXDIR/bigdev.meta" "$m"
top=$(u64 "$m" 320)
devroot=$(u64 "$m" $((top * 4096 + 2048)))
flags=$(od -An -t u4 -j $((devroot * 4096 + 4)) -N 4 "$m" | tr -d ' ')
[ "$flags" = 1 ] || { fail "bigdev: device root is not an internal node"; finish; }
nr=$(od -An -t u4 -j $((devroot * 4096 + 16)) -N 4 "$m" | tr -d ' ')
leaf=$(u64 "$m" $((devroot * 4096 + 2048 + 8)))
k1=$(u64 "$m" $((devroot * 4096 + 32 + 8)))
k2=$(u64 "$m" $((devroot * 4096 + 32 + 16)))
printf '\377' | dd of="$m" bs=1 seek=$((leaf * 4096 + 100)) conv=notrunc 2>/dev/null
run dmr --metadata "$m" dump
expect_rc 2 "dump of a pool with a bad leaf"
if grep -q "block $leaf: bad checksum in btree node (virtual blocks $k1..$((k2 - 1)) lost)" "$WORK/err"; then
	ok "the error names the block and the lost virtual range"
else
	fail "damage message"; cat "$WORK/err"
fi
[ "$(wc -l <"$WORK/err")" = 1 ] && ok "one line per damaged range" || fail "more than one line"
# Everything else is still dumped: the other leaves' mappings.
dmr --metadata "$FIXDIR/bigdev.meta" dump >"$WORK/full.xml"
total=$(grep -c '_mapping' "$WORK/full.xml")
got=$(grep -c '_mapping' "$WORK/out")
if [ "$got" -gt 0 ] && [ "$got" -lt "$total" ] && grep -q '</superblock>' "$WORK/out"; then
	ok "the walk went on past the damage ($got of $total mapping lines)"
else
	fail "dump stopped at the damage ($got of $total)"
fi
run dmr --metadata "$m" ls
expect_rc 2 "ls of a pool with a bad leaf"

# Truncated metadata file: the space map claims more blocks than it holds.
t="$WORK/trunc.meta"
cp --sparse=always "$FIXDIR/one.meta" "$t"
truncate -s 40K "$t"
run dmr --metadata "$t" dump
expect_rc 2 "truncated metadata"
grep -q 'truncated' "$WORK/err" && ok "truncation is named" || { fail "truncation message"; cat "$WORK/err"; }

# Superblock checksum.
s="$WORK/sb.meta"
cp --sparse=always "$FIXDIR/one.meta" "$s"
printf '\001' | dd of="$s" bs=1 seek=44 conv=notrunc 2>/dev/null
run dmr --metadata "$s" ls
expect_rc 2 "superblock with a bad checksum"
grep -q 'block 0: bad checksum in superblock' "$WORK/err" && ok "names block 0" || { fail "superblock message"; cat "$WORK/err"; }
finish
