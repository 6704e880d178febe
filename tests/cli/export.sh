#!/bin/sh
# dmrescue export on the leftovers Docker root (xfs devices, and the same
# root with ext4 devices holding real files):
# - an image's top layer: blkid says xfs, xfs_repair -n accepts it, the
#   printed SHA-256 equals sha256sum of the file, the image equals the
#   fixture generator's own extraction (dockerroot extract + cmp), and its
#   allocated 64 KiB blocks are exactly the device's mapped blocks (holes
#   elsewhere); a read-only loop mount (nouuid) where mount works;
# - a container's device on ext4: e2fsck -n, and a known file (debugfs, and
#   the loop mount) has the content the generator wrote;
# - targets: thin id, hash, base, container name and id prefix, --init,
#   image reference, id, --layer, chain id; errors for unknown and bad ones;
# - FILE exists: refused (exit 5) unless --force; no temporary file left;
#   an input is never a valid FILE;
# - --json (schema dmrescue.export/1); without a Docker root the size is
#   the highest mapped block;
# - an I/O error and a crash at every change: FILE is either absent or
#   complete;
# - every input file hashes the same before and after, and strace shows
#   every input opened read-only.
. "$top_srcdir/tests/cli/lib.sh"
need jq blkid xfs_repair debugfs e2fsck
ensure_dockerroot leftovers
X=$ROOTDIR
R=$X/root
ensure_dockerroot leftovers ext4
X4=$ROOTDIR
R4=$X4/root
H="$top_builddir/tests/fixtures/dockerroot/dockerroot"
FPP="$top_builddir/tests/fixtures/fixturepp"
M="$R/devicemapper/devicemapper/metadata"
D="$R/devicemapper/devicemapper/data"
B=65536
test_build=no
"$DMRESCUE" --version | grep -q 'fault-injection' && test_build=yes

# Every input file: the two sparse pool files by their data, the rest whole.
hash_inputs() { # ROOT OUT
	(cd "$1" && find . -type f ! -path ./devicemapper/devicemapper/metadata ! -path ./devicemapper/devicemapper/data \
		-exec sha256sum {} + | sort -k2
	 "$FPP" hash-sparse devicemapper/devicemapper/metadata
	 "$FPP" hash-sparse devicemapper/devicemapper/data
	 find . -printf '%p %m %s %T@\n' | sort) >"$2"
}
hash_inputs "$R" "$WORK/inputs.before"
hash_inputs "$R4" "$WORK/inputs4.before"

# The virtual blocks a device maps, one per line, from dmrescue dump's XML.
mapped_blocks() { # ARGS... (global options) DEV
	dev=$1
	shift
	"$DMRESCUE" "$@" dump --dev-id "$dev" |
		awk -F'"' '/<single_mapping/ { for (i = 1; i < NF; i++) if ($i ~ /origin_block=$/) print $(i + 1) }
			   /<range_mapping/ { for (i = 1; i < NF; i++) { if ($i ~ /origin_begin=$/) b = $(i + 1); if ($i ~ /length=$/) l = $(i + 1) }
					      for (k = 0; k < l; k++) print b + k }' | sort -n
}
# The 64 KiB blocks of FILE that hold data (the complement of its holes).
data_blocks() { # FILE
	units=$((($(stat -c %s "$1") + B - 1) / B))
	"$FPP" holes "$1" $B | awk -v n="$units" 'BEGIN { u = 0 } { for (; u < $1 + 0; u++) print u; u = $2 + 0 } END { for (; u < n; u++) print u }'
}

# --- an image's top layer, checked whole ---
run dmr -r "$R" export example/app:1.0 -o "$WORK/app.img"
expect_rc 0 "export example/app:1.0"
grep -q '^Exported image example/app:1.0, layer 3 of 3 .*: thin 8, hash ' "$WORK/out" &&
	ok "says which device it exported" || { fail "first line"; cat "$WORK/out"; }
sum=$(tail -n 1 "$WORK/out" | cut -d' ' -f1)
if [ "$(tail -n 1 "$WORK/out")" = "$(cd "$WORK" && sha256sum app.img | sed "s|app.img|$WORK/app.img|")" ]; then
	ok "the printed SHA-256 line is sha256sum's ($sum)"
else
	fail "SHA-256: $(tail -n 1 "$WORK/out") vs $(sha256sum "$WORK/app.img")"
fi
[ "$(stat -c %s "$WORK/app.img")" = 10737418240 ] && ok "size from Docker's file (10 GiB)" || fail "size $(stat -c %s "$WORK/app.img")"
[ "$(blkid -p -s TYPE -o value "$WORK/app.img")" = xfs ] && ok "blkid: xfs" || fail "blkid: $(blkid -p "$WORK/app.img")"
if xfs_repair -n -f "$WORK/app.img" >"$WORK/repair" 2>&1; then ok "xfs_repair -n accepts it"; else
	fail "xfs_repair -n"; tail "$WORK/repair"; fi
"$H" extract "$X" 8 "$WORK/app.ref" 10737418240 >/dev/null
if "$H" cmp "$WORK/app.img" "$WORK/app.ref"; then ok "byte for byte the generator's extraction of device 8"; else
	fail "differs from dockerroot extract"; fi
rm -f "$WORK/app.ref"
mapped_blocks 8 -r "$R" >"$WORK/mapped"
data_blocks "$WORK/app.img" >"$WORK/data"
if [ -s "$WORK/mapped" ] && cmp -s "$WORK/mapped" "$WORK/data"; then
	ok "sparse: data exactly in the $(wc -l <"$WORK/mapped") mapped blocks, holes elsewhere"
else
	fail "allocated blocks are not the mapped ones"; diff "$WORK/mapped" "$WORK/data" | head
fi
mount_check() { # IMG OPTS TAG CMD...
	img=$1 opts=$2 tag=$3
	shift 3
	mkdir -p "$WORK/mnt"
	if [ "$(id -u)" != 0 ] || ! mount -o "$opts" "$img" "$WORK/mnt" 2>"$WORK/mount.err"; then
		echo "note: $tag: loop mount not possible here ($(cat "$WORK/mount.err" 2>/dev/null)); checked without it"
		return 0
	fi
	if "$@"; then ok "$tag"; else fail "$tag"; fi
	umount "$WORK/mnt"
}
mount_check "$WORK/app.img" ro,loop,nouuid "mount -o ro,loop,nouuid" test -d "$WORK/mnt/."
rm -f "$WORK/app.img"

# --- a container on ext4: a known file ---
cache=$(jq -r '.target.hash' <<EOF
$("$DMRESCUE" -r "$R4" export example/app:1.0 --no-checksum --json -o "$WORK/app4.img")
EOF
)
"$H" pattern "dockerroot $(printf %.12s "$cache") /rootfs/srv/app" 150000 >"$WORK/app.want"
debugfs -R "cat /rootfs/srv/app" "$WORK/app4.img" 2>/dev/null >"$WORK/app.got"
cmp -s "$WORK/app.want" "$WORK/app.got" && ok "ext4 layer: /rootfs/srv/app has the generator's content" ||
	fail "ext4 layer: /rootfs/srv/app differs"
rm -f "$WORK/app4.img"
run dmr -r "$R4" export web --no-checksum -o "$WORK/web4.img"
expect_rc 0 "export web (ext4)"
web4=$(jq -r 'select(.Name == "/web") | .ID' "$R4"/containers/*/config.v2.json)
mid=$(cat "$R4/image/devicemapper/layerdb/mounts/$web4/mount-id")
grep -q "^Exported container web (.*hash $mid to " "$WORK/out" && ok "web's read-write device (its mount-id)" ||
	{ fail "web: not its mount-id $mid"; cat "$WORK/out"; }
if e2fsck -fn "$WORK/web4.img" >"$WORK/fsck" 2>&1; then ok "e2fsck -fn accepts web's device"; else
	fail "e2fsck -fn"; tail "$WORK/fsck"; fi
"$H" pattern "dockerroot $(printf %.12s "$mid") /rootfs/var/log/app/access.log" 90000 >"$WORK/log.want"
debugfs -R "cat /rootfs/var/log/app/access.log" "$WORK/web4.img" 2>/dev/null >"$WORK/log.got"
cmp -s "$WORK/log.want" "$WORK/log.got" && ok "ext4 container: the file it wrote reads back" ||
	fail "ext4 container: access.log differs"
debugfs -R "cat /rootfs/srv/app" "$WORK/web4.img" 2>/dev/null >"$WORK/app2.got"
cmp -s "$WORK/app.want" "$WORK/app2.got" &&
	ok "ext4 container: the image's file is there too" || fail "ext4 container: /rootfs/srv/app differs"
mount_check "$WORK/web4.img" ro,loop "mount -o ro,loop: access.log through the kernel" \
	cmp -s "$WORK/log.want" "$WORK/mnt/rootfs/var/log/app/access.log"
rm -f "$WORK/web4.img"

# --- targets ---
target() { # WANT_THIN ARGS...
	want=$1
	shift
	"$DMRESCUE" -r "$R" export --no-checksum --json -o "$WORK/t.img" --force "$@" >"$WORK/t.json" 2>"$WORK/t.err"
	got=$(jq -r .target.thin_id "$WORK/t.json" 2>/dev/null)
	[ "$got" = "$want" ] && ok "export $*: thin $want" || { fail "export $*: thin '$got', want $want"; cat "$WORK/t.err"; }
}
web_id=$(jq -r 'select(.Name == "/web") | .ID' "$R"/containers/*/config.v2.json)
app_id=$(jq -r '.Repositories["example/app"]["example/app:1.0"]' "$R/image/devicemapper/repositories.json")
target 8 8
hash8=$(jq -r '.target.hash' "$WORK/t.json")
target 8 "$hash8"
target 1 base
target 10 web
target 10 /web
target 10 "$(printf %.12s "$web_id")"
target 9 --init web
target 8 "$app_id"
target 8 "$(printf %.19s "$app_id")"
target 2 --layer 1 example/app:1.0
target 3 --layer 2 example/app
chain2=$(jq -r '.target.what' "$WORK/t.json" | sed 's/.*(\(.*\))/\1/')
chain=$(ls "$R/image/devicemapper/layerdb/sha256" | while read -r c; do
	[ "$(cat "$R/image/devicemapper/layerdb/sha256/$c/cache-id" 2>/dev/null)" = "$(jq -r .target.hash "$WORK/t.json")" ] && echo "$c"; done)
target 3 "sha256:$chain"
target 3 "$chain"
case $chain in "$chain2"*) ok "the description names the layer's chain id" ;; *) fail "chain $chain2 vs $chain" ;; esac
rm -f "$WORK/t.img"
run dmr -r "$R" export nosuchthing -o "$WORK/t.img"
expect_rc 3 "unknown target"
grep -q "no thin device, device hash, container, image or layer matches 'nosuchthing'" "$WORK/err" && ok "says so" ||
	fail "unknown target message: $(cat "$WORK/err")"
run dmr -r "$R" export 99 -o "$WORK/t.img"
expect_rc 3 "thin id not in the pool"
run dmr -r "$R" export --layer 9 example/app:1.0 -o "$WORK/t.img"
expect_rc 64 "--layer beyond the image"
run dmr -r "$R" export --init example/app:1.0 -o "$WORK/t.img"
expect_rc 64 "--init on an image"
run dmr -r "$R" export web
expect_rc 64 "no -o"
run dmr -r "$R" export -o "$WORK/t.img"
expect_rc 64 "no TARGET"
[ ! -e "$WORK/t.img" ] && ok "nothing written on errors" || fail "t.img written"

# --- FILE exists; inputs are never FILE ---
echo keep >"$WORK/exists.img"
run dmr -r "$R" export 8 --no-checksum -o "$WORK/exists.img"
expect_rc 5 "FILE exists"
[ "$(cat "$WORK/exists.img")" = keep ] && ok "FILE untouched" || fail "FILE changed"
run dmr -r "$R" export 8 --no-checksum --force -o "$WORK/exists.img"
expect_rc 0 "--force"
[ "$(stat -c %s "$WORK/exists.img")" = 10737418240 ] && ok "--force replaced it" || fail "not replaced"
run dmr -r "$R" export 8 --no-checksum --force -o "$D"
expect_rc 5 "-o the data file, even with --force"
ls -A "$WORK" | grep -q '^\..*dmrescue-' && fail "a temporary file was left" || ok "no temporary file left"
rm -f "$WORK/exists.img"

# --- JSON; no Docker root: size from the highest mapped block ---
run dmr --metadata "$M" --data "$D" --json export 10 -o "$WORK/raw.img"
expect_rc 0 "export 10 --json without a Docker root"
jq -e '.schema == "dmrescue.export/1" and .target.kind == "thin-id" and .target.hash == null and
       .size_source == "highest-mapped" and .block_bytes == 65536 and .mapped_blocks == 24 and
       .bytes_written + .bytes_zero == .bytes_read and .bytes_read == 24 * 65536 and (.sha256 | length) == 64' \
	"$WORK/out" >/dev/null && ok "JSON fields" || { fail "JSON"; cat "$WORK/out"; }
last=$(mapped_blocks 10 --metadata "$M" | tail -n 1)
[ "$(stat -c %s "$WORK/raw.img")" = $(((last + 1) * B)) ] && ok "size: up to block $last" || fail "size $(stat -c %s "$WORK/raw.img")"
[ "$(jq -r .sha256 "$WORK/out")" = "$(sha256sum <"$WORK/raw.img" | cut -d' ' -f1)" ] && ok "JSON sha256 is sha256sum's" ||
	fail "JSON sha256"
full_sum=$(jq -r .sha256 "$WORK/out")
rm -f "$WORK/raw.img"

# --- read-only: strace sees every input opened O_RDONLY ---
if command -v strace >/dev/null 2>&1 && strace -f -o /dev/null true 2>/dev/null; then
	strace -f -e trace=open,openat,creat,truncate,rename,renameat,renameat2,unlink,unlinkat -o "$WORK/strace" \
		"$DMRESCUE" -r "$R" export web --no-checksum -o "$WORK/ro.img" >/dev/null 2>&1
	# Docker's files are opened relative to directory descriptors: look
	# at every open, not only those naming the root.
	if grep -E 'O_WRONLY|O_RDWR|O_CREAT|O_TRUNC|rename|unlink|truncate' "$WORK/strace" | grep -v 'ro\.img' >"$WORK/writes"; then
		fail "something other than FILE opened for writing"; cat "$WORK/writes"
	else
		ok "strace: $(grep -c 'open' "$WORK/strace") opens, only FILE's for writing"
	fi
	grep -F "$D" "$WORK/strace" | grep -q O_RDONLY && ok "strace: the data file was read" || fail "strace: no read of the data file"
	rm -f "$WORK/ro.img"
else
	echo "note: strace unusable here: read-only opens not traced"
fi

# --- an I/O error and a crash at every change ---
if [ "$test_build" = yes ]; then
	rm -f "$WORK/fault.log"
	DMRESCUE_FAULT_LOG="$WORK/fault.log" "$DMRESCUE" --metadata "$M" --data "$D" export 10 -o "$WORK/f.img" >/dev/null
	n=$(wc -l <"$WORK/fault.log")
	rm -f "$WORK/f.img"
	bad=0
	for mode in eio crash; do
		i=1
		while [ $i -le "$n" ]; do
			DMRESCUE_FAULT_AT=$i DMRESCUE_FAULT_MODE=$mode "$DMRESCUE" --metadata "$M" --data "$D" export 10 \
				-o "$WORK/f.img" >/dev/null 2>"$WORK/f.err"
			rc=$?
			if [ -e "$WORK/f.img" ] && [ "$(sha256sum <"$WORK/f.img" | cut -d' ' -f1)" != "$full_sum" ]; then
				bad=$((bad + 1)); echo "  $mode at $i: an incomplete FILE"
			fi
			want=4
			[ $mode = crash ] && want=86
			[ "$rc" = $want ] || { bad=$((bad + 1)); echo "  $mode at $i: exit $rc, want $want"; }
			if [ $mode = eio ] && ls -A "$WORK" | grep -q '^\.f\.img\.dmrescue-'; then
				bad=$((bad + 1)); echo "  eio at $i: a temporary file left"
			fi
			rm -f "$WORK/f.img" "$WORK"/.f.img.dmrescue-*
			i=$((i + 1))
		done
	done
	[ "$bad" = 0 ] && ok "an I/O error or a crash at each of the $n changes: FILE absent or complete" ||
		fail "$bad bad states"
else
	echo "note: not a fault-injection build: crash loop skipped"
fi

# --- nothing changed ---
hash_inputs "$R" "$WORK/inputs.after"
hash_inputs "$R4" "$WORK/inputs4.after"
if cmp -s "$WORK/inputs.before" "$WORK/inputs.after" && cmp -s "$WORK/inputs4.before" "$WORK/inputs4.after"; then
	ok "every input file (content, mode, size, mtime) is unchanged"
else
	fail "an input changed"; diff "$WORK/inputs.before" "$WORK/inputs.after" | head
fi
finish
