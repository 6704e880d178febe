#!/bin/sh
# dmrescue bundle and --bundle: the leftovers root (2 GiB sparse metadata)
# gives a small bundle; scan, ls, dump, check and timeline read from it say
# what they say on the root (paths and the pool name, made from the root
# directory's inode, aside); the environment is redacted unless --no-redact;
# damaged bundles are refused with one line and leave nothing behind; the
# root is unchanged.
. "$top_srcdir/tests/cli/lib.sh"
need jq thin_restore
ensure_dockerroot leftovers
R=$ROOTDIR/root
M="$R/devicemapper/devicemapper/metadata"
B="$WORK/b.dmrb"
export TMPDIR="$WORK/tmp"
mkdir -p "$TMPDIR"

hash_root() { find "$R" -type f ! -path "$M" ! -path "$R/devicemapper/devicemapper/data" -exec sha256sum {} + | sort; "$top_builddir/tests/fixtures/fixturepp" hash-sparse "$M"; }
hash_root >"$WORK/before"

run dmr -r "$R" bundle -o "$B"
expect_rc 0 "bundle of the leftovers root"
size=$(stat -c %s "$B")
echo "bundle: $size bytes for $(stat -c %s "$M") bytes of metadata"
[ "$size" -lt 307200 ] && ok "bundle is small ($size bytes)" || fail "bundle is $size bytes"
zcat "$B" >"$WORK/stream" && ok "bundle is a gzip stream" || fail "zcat"
# image configs hold the same PATH: count the containers' (config.v2.json) ones
ncont=$(ls "$R"/containers/*/config.v2.json | wc -l)
nred=$(grep -a -o 'PATH=<redacted>' "$WORK/stream" | wc -l)
nplain=$(grep -a -o 'PATH=/usr/local/sbin' "$WORK/stream" | wc -l)
[ "$nred" = "$ncont" ] && ok "environment of $ncont containers redacted" || fail "$nred of $ncont redacted"
for bad in devicemapper/devicemapper/data tar-split.json.gz '"path": "devicemapper/mnt'; do
	grep -a -q "$bad" "$WORK/stream" && fail "bundle holds $bad" || ok "bundle holds no $bad"
done

run dmr -r "$R" bundle -o "$B"
expect_rc 5 "existing FILE refused without --force"
run dmr -r "$R" bundle -o "$WORK/raw.dmrb" --no-redact
expect_rc 0 "bundle --no-redact"
zcat "$WORK/raw.dmrb" >"$WORK/raw"
if [ "$(grep -a -o 'PATH=/usr/local/sbin' "$WORK/raw" | wc -l)" = $((nplain + ncont)) ] && ! grep -a -q 'PATH=<redacted>' "$WORK/raw"; then
	ok "--no-redact keeps the environment"
else
	fail "--no-redact lost the environment"
fi

# Same output from the bundle as from the root: paths and pool name normalized.
norm() { sed -e "s|$R|ROOT|g" -e "s|$TMPDIR/dmrescue-bundle\.[A-Za-z0-9]*|ROOT|g" -e 's|docker-[0-9]*:[0-9]*-[0-9]*-pool|POOL|g'; }
for cmd in "ls" "dump" "timeline" "check" "--json ls" "--json check" "--json timeline"; do
	# shellcheck disable=SC2086 # cmd is words
	dmr -r "$R" $cmd >"$WORK/root.out" 2>&1
	rc1=$?
	# shellcheck disable=SC2086
	dmr --bundle "$B" $cmd >"$WORK/bundle.out" 2>&1
	rc2=$?
	if [ "$rc1" = "$rc2" ] && norm <"$WORK/root.out" | diff -u - "$(norm <"$WORK/bundle.out" >"$WORK/bn"; echo "$WORK/bn")"; then
		ok "$cmd: same from the bundle (exit $rc2)"
	else
		fail "$cmd: differs from the bundle (exit $rc1 vs $rc2)"
	fi
done
# scan: the data file is not in a bundle (its size, reclaimable space and
# filesystem probes are unknown), nor are empty mount points and layerdb/tmp.
jqscan='del(.root, .pool.metadata_path, .pool.data_path, .pool.data_file_bytes, .pool.data_file_allocated_bytes,
	.pool.reclaimable_bytes, .pool.reclaimable_ranges, .devices[].fs) | .findings |= map(select(.class != "transient"))'
dmr -r "$R" --json scan | jq "$jqscan" | norm >"$WORK/s1"
dmr --bundle "$B" --json scan | jq "$jqscan" | norm >"$WORK/s2"
diff -u "$WORK/s1" "$WORK/s2" && ok "scan --json: same from the bundle but for the data file" || fail "scan --json differs"
dmr --bundle "$B" dump >"$WORK/b.xml" && dmr -r "$R" dump | cmp -s - "$WORK/b.xml" && ok "dump identical byte for byte" || fail "dump differs"
run dmr ls --bundle "$B"
expect_rc 0 "--bundle after the command's name"
run dmr --bundle "$B" diff 1 2
expect_rc 64 "diff refused on a bundle"
run dmr --bundle "$B" export 1 -o "$WORK/x.img"
expect_rc 64 "export refused on a bundle"
run dmr --bundle "$B" -r "$R" ls
expect_rc 64 "--bundle with --root refused"
[ -z "$(ls -A "$TMPDIR")" ] && ok "temporary directories removed" || fail "left in TMPDIR: $(ls "$TMPDIR")"

# Damaged bundles: one line, exit 2, nothing left behind.
cp "$B" "$WORK/flip"
off=$((size / 2))
byte=$(od -An -tu1 -j "$off" -N1 "$WORK/flip" | tr -d ' ')
printf "$(printf '\\%03o' $(((byte + 1) % 256)))" | dd of="$WORK/flip" bs=1 seek="$off" conv=notrunc 2>/dev/null
head -c $((size - 100)) "$B" >"$WORK/trunc"
head -c 20 "$B" >"$WORK/short"
echo "not a bundle" >"$WORK/text"
gzip -c "$WORK/text" >"$WORK/text.gz"
for f in flip trunc short text text.gz; do
	run dmr --bundle "$WORK/$f" ls
	if [ "$RC" = 2 ] && [ "$(wc -l <"$WORK/err")" = 1 ] && [ ! -s "$WORK/out" ]; then
		ok "$f refused: $(cat "$WORK/err")"
	else
		fail "$f: exit $RC, $(wc -l <"$WORK/err") lines: $(cat "$WORK/err")"
	fi
done
run dmr --bundle "$WORK/missing" ls
expect_rc 3 "missing bundle"
[ -z "$(ls -A "$TMPDIR")" ] && ok "nothing extracted left behind" || fail "left in TMPDIR: $(ls "$TMPDIR")"

hash_root >"$WORK/after"
cmp -s "$WORK/before" "$WORK/after" && ok "root unchanged" || fail "root changed"
finish
