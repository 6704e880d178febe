#!/bin/sh
# dmrescue bundle and --bundle: the leftovers root (2 GiB sparse metadata)
# gives a small bundle; scan, ls, dump, check and timeline read from it
# print what they print on the root, byte for byte: the paths and the pool
# name are the root's (recorded in the bundle), the transient files are
# there (empty mount points, write-set names); only what needs the data
# file (not in a bundle) differs: its space on the host, what reclaim would
# give back, the filesystems. On stderr, one line names the bundle. The
# environment is redacted unless --no-redact; damaged bundles are refused
# with one line and leave nothing behind; the root is unchanged. Golden:
# what the bundle holds (expected/bundle/leftovers.entries) and scan on it
# (expected/bundle/leftovers.scan).
. "$top_srcdir/tests/cli/lib.sh"
need jq thin_restore
ensure_dockerroot leftovers
R=$(cd "$ROOTDIR/root" && pwd -P)
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

# The manifest: what the bundle holds, by kind and path (sizes and hashes
# aside: zlib and the fixture's timestamps may change them).
mlen=$(od -An -tu8 -j16 -N8 "$WORK/stream" | tr -d ' ')
dd if="$WORK/stream" bs=1 skip=24 count="$mlen" 2>/dev/null >"$WORK/manifest"
jq -r '.entries[] | "\(.kind) \(.path)\(if .kind == "placeholder" then " (\(.file_size) bytes)" else "" end)"' \
	"$WORK/manifest" >"$WORK/entries"
golden bundle/leftovers.entries "$WORK/entries"
for bad in '^devicemapper/devicemapper/data$' 'tar-split.json.gz$' '^devicemapper/mnt/'; do
	if jq -e --arg re "$bad" '[.entries[] | select(.kind == "file" and (.path | test($re)))] | length == 0' \
		"$WORK/manifest" >/dev/null; then ok "no content of $bad"; else fail "bundle holds content of $bad"; fi
done
if jq -e --arg r "$R" '.source == $r and .metadata_path == ($r + "/devicemapper/devicemapper/metadata") and
	(.pool_prefix | test("^docker-[0-9]+:[0-9]+-[0-9]+$"))' "$WORK/manifest" >/dev/null; then
	ok "manifest records the root, its paths and the pool prefix"
else
	fail "manifest: $(jq -c '{source, metadata_path, data_path, pool_prefix}' "$WORK/manifest")"
fi

# The same output from the bundle as from the root, byte for byte but for
# the data file (scan: its space on the host and the filesystems).
nodata() { grep -v -e '^  the data file takes' -e '^  reclaimable space unknown: no data file$' -e '^Reclaimable:'; }
jqdata='del(.pool.data_file_bytes, .pool.data_file_allocated_bytes, .pool.reclaimable_bytes,
	.pool.reclaimable_ranges, .devices[].fs)'
for cmd in "ls" "dump" "timeline" "check" "scan" "-v scan" "-v ls" "--json ls" "--json check" "--json timeline" "--json scan"; do
	# shellcheck disable=SC2086 # cmd is words
	dmr -r "$R" $cmd >"$WORK/root.out" 2>"$WORK/root.err"
	rc1=$?
	# shellcheck disable=SC2086
	dmr --bundle "$B" $cmd >"$WORK/bundle.out" 2>"$WORK/bundle.err"
	rc2=$?
	case $cmd in
	"--json scan") filter() { jq "$jqdata"; } ;;
	*scan) filter() { nodata; } ;;
	*) filter() { cat; } ;;
	esac
	filter <"$WORK/root.out" >"$WORK/r"
	filter <"$WORK/bundle.out" >"$WORK/b"
	if [ "$rc1" = "$rc2" ] && diff -u "$WORK/r" "$WORK/b"; then
		ok "$cmd: same from the bundle (exit $rc2)"
	else
		fail "$cmd: differs from the bundle (exit $rc1 vs $rc2)"
	fi
	# stderr: the bundle's line, then what the root run said (-v: the
	# extraction directory too)
	{ echo "dmrescue: reading bundle $B of $R"; cat "$WORK/root.err"; } >"$WORK/want.err"
	grep -v 'extracted into' "$WORK/bundle.err" >"$WORK/got.err"
	if diff -u "$WORK/want.err" "$WORK/got.err"; then ok "$cmd: stderr names the bundle"; else fail "$cmd: stderr"; fi
done
# scan, the data-file lines and all: golden, as scan.sh normalizes it
dmr --bundle "$B" scan 2>/dev/null | sed -e "s|$R|ROOT|g" -e 's/docker-[0-9]*:[0-9]*-[0-9]*-pool/docker-MAJ:MIN-INO-pool/' >"$WORK/scan"
golden bundle/leftovers.scan "$WORK/scan"
run dmr -q --bundle "$B" ls
[ "$RC" = 0 ] && [ ! -s "$WORK/err" ] && ok "-q: no line about the bundle" || fail "-q: exit $RC, $(cat "$WORK/err")"
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
