#!/bin/sh
# The issue's size requirement: a 2 GiB metadata file with about 20 MiB in
# use (genpool bench 30 20000: 600000 mappings in 30 devices, restored by
# thin_restore into a sparse 2 GiB file) gives a bundle of a few MiB: under
# 8 MiB. Prints the measured size and time; check on the bundle says what it
# says on the root.
. "$top_srcdir/tests/cli/lib.sh"
need thin_restore
R="$WORK/root"
M="$R/devicemapper/devicemapper/metadata"
mkdir -p "$R/devicemapper/devicemapper"
"$top_builddir/tests/fixtures/genpool" bench 30 20000 >"$WORK/pool.xml" || { fail "genpool"; finish; }
truncate -s 2G "$M"
thin_restore -i "$WORK/pool.xml" -o "$M" >"$WORK/restore.log" 2>&1 || { fail "thin_restore: $(cat "$WORK/restore.log")"; finish; }
rm -f "$WORK/pool.xml"

start=$(date +%s.%N)
run dmr -r "$R" bundle -o "$WORK/b.dmrb"
end=$(date +%s.%N)
expect_rc 0 "bundle of the 2 GiB metadata"
cat "$WORK/out"
blocks=$(sed -n 's/.* \([0-9]*\) metadata blocks in use of 524288 .*/\1/p' "$WORK/out")
size=$(stat -c %s "$WORK/b.dmrb")
secs=$(awk -v a="$start" -v b="$end" 'BEGIN { printf "%.2f", b - a }')
echo "bundle: $size bytes ($((size / 1024)) KiB) for ${blocks:-?} blocks in use ($(( ${blocks:-0} * 4 / 1024 )) MiB) of 2 GiB, in $secs s"
[ "${blocks:-0}" -ge 4608 ] && ok "about 20 MiB in use ($blocks blocks)" || fail "only ${blocks:-?} blocks in use"
[ "$size" -lt 8388608 ] && ok "bundle under 8 MiB ($size bytes)" || fail "bundle is $size bytes"

dmr -r "$R" check >"$WORK/root.out" 2>/dev/null
dmr --bundle "$WORK/b.dmrb" check >"$WORK/bundle.out" 2>/dev/null
diff -u "$WORK/root.out" "$WORK/bundle.out" && ok "check: the same from the bundle" || fail "check differs"

# A signal while a command reads the bundle: the extraction goes with it.
# dump writes into a FIFO read no further than 1000 bytes, so it blocks with
# the bundle extracted; SIGTERM must leave TMPDIR empty.
mkdir "$WORK/tmp"
mkfifo "$WORK/fifo"
TMPDIR="$WORK/tmp" "$DMRESCUE" --bundle "$WORK/b.dmrb" dump >"$WORK/fifo" 2>/dev/null &
pid=$!
exec 3<"$WORK/fifo"
head -c 1000 <&3 >/dev/null
i=0
while [ -z "$(ls "$WORK/tmp")" ] && [ "$i" -lt 600 ]; do sleep 0.1; i=$((i + 1)); done
extracted=$(ls "$WORK/tmp")
sleep 0.5
kill -TERM "$pid"
wait "$pid"
rc=$?
exec 3<&-
[ -n "$extracted" ] && [ "$rc" -eq 143 ] && [ -z "$(ls -A "$WORK/tmp")" ] &&
	ok "SIGTERM while reading a bundle: exit 143, the extraction ($extracted) removed" ||
	fail "SIGTERM: extracted '${extracted}', exit $rc, left: $(ls -A "$WORK/tmp")"
finish
