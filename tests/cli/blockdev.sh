#!/bin/sh
# Metadata on a block device (direct-lvm, dm.metadatadev): read through a
# read-only loop device with libaio and O_DIRECT, same result as thin_dump.
# Skips where loop devices cannot be set up (not root, no loop driver).
. "$top_srcdir/tests/cli/lib.sh"
need thin_dump thin_ls losetup
ensure_fixtures
[ "$(id -u)" = 0 ] || skip "needs root for losetup"
LOOPS=""
cleanup() { for l in $LOOPS; do losetup -d "$l" 2>/dev/null; done; rm -rf "$WORK"; }
trap cleanup EXIT
for f in bigdev manydevs metasnap; do
	cp --sparse=always "$FIXDIR/$f.meta" "$WORK/$f.meta"
	loop=$(losetup -r -f --show "$WORK/$f.meta" 2>/dev/null) || skip "losetup failed"
	LOOPS="$LOOPS $loop"
	thin_dump "$loop" >"$WORK/ref.xml"
	run dmr -v --metadata "$loop" dump
	engine=$(sed -n 's/.*read with //p' "$WORK/err")
	if [ "$RC" = 0 ] && cmp -s "$WORK/ref.xml" "$WORK/out"; then ok "$f on $loop: dump identical ($engine)"; else
		fail "$f on $loop: dump differs (rc $RC)"; cat "$WORK/err"; fi
	case $engine in libaio+O_DIRECT) ok "$f: block device read with libaio+O_DIRECT" ;;
	*) fail "$f: block device read with '$engine'" ;; esac
	thin_ls -o DEV,MAPPED_BLOCKS,EXCLUSIVE_BLOCKS,SHARED_BLOCKS "$loop" | sed -e 's/^ *//' -e 's/ *$//' -e 's/  */ /g' >"$WORK/ref.txt"
	dmr --metadata "$loop" ls -o DEV,MAPPED_BLOCKS,EXCLUSIVE_BLOCKS,SHARED_BLOCKS | sed -e 's/^ *//' -e 's/  */ /g' >"$WORK/our.txt"
	if cmp -s "$WORK/ref.txt" "$WORK/our.txt"; then ok "$f on $loop: ls equals thin_ls"; else fail "$f: ls differs"; fi
done
finish
