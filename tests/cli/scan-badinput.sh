#!/bin/sh
# Bad input on Docker's side never crashes scan nor stops it: each broken
# file (empty, truncated, not JSON, wrong shape, huge, a symlink out of the
# root, a directory where a file belongs) is named in the problems, the rest
# of the inventory is still there, and the exit status is 1 (findings).
. "$top_srcdir/tests/cli/lib.sh"
need jq
ensure_dockerroot healthy
base="$ROOTDIR/root"
ndev=$(dmr -r "$base" scan --json | jq '[.devices[] | select(.thin_id != null)] | length')

# mutate NAME PATH-RELATIVE-TO-ROOT ACTION: copies the root, breaks one file,
# scans, and checks the outcome.
mutate() {
	name=$1 rel=$2 action=$3
	r="$WORK/$name"
	rm -rf "$r"
	cp -a "$base" "$r"
	f="$r/$rel"
	case $action in
	empty) : >"$f" ;;
	truncate) head -c 7 "$base/$rel" >"$f" ;;
	notjson) printf 'this is not JSON' >"$f" ;;
	array) printf '[1,2,3]' >"$f" ;;
	wrongtypes) printf '{"ID":7,"Name":["x"],"State":"dead","Image":{}}' >"$f" ;;
	huge) rm -f "$f" && truncate -s 64M "$f" ;;
	symlink) rm -f "$f" && ln -s /etc/passwd "$f" ;;
	dir) rm -rf "$f" && mkdir "$f" ;;
	nul) printf '{"device_id":\0}' >"$f" ;;
	esac
	run dmr -r "$r" scan --json
	if [ "$RC" -gt 4 ]; then fail "$name: exit $RC (crash?)"; cat "$WORK/err"; return; fi
	if ! jq -e . "$WORK/out" >/dev/null 2>&1; then fail "$name: output is not JSON (exit $RC)"; cat "$WORK/err"; return; fi
	expect_rc 1 "$name"
	if jq -e --arg p "$rel" '[.problems[].path, .findings[].path] | any(. == $p)' "$WORK/out" >/dev/null; then
		ok "$name: $rel is named ($(jq -r --arg p "$rel" '[.problems[] | select(.path == $p) | .message][0] // "a finding"' "$WORK/out"))"
	else
		fail "$name: $rel not named"; jq -c '.problems' "$WORK/out"
	fi
	got=$(jq '[.devices[] | select(.thin_id != null)] | length' "$WORK/out")
	[ "$got" = "$ndev" ] && ok "$name: all $ndev pool devices still listed" || fail "$name: $got of $ndev devices listed"
	rm -rf "$r"
}

cfg=$(cd "$base" && ls containers/*/config.v2.json | head -n 1)
img=$(cd "$base" && ls image/devicemapper/imagedb/content/sha256/* | head -n 1)
layer=$(cd "$base" && ls -d image/devicemapper/layerdb/sha256/* | head -n 1)
mnt=$(cd "$base" && ls -d image/devicemapper/layerdb/mounts/* | head -n 1)
dev=$(cd "$base" && ls devicemapper/metadata/ | grep -v -e base -e metadata | head -n 1)
mutate cfg-empty "$cfg" empty
mutate cfg-notjson "$cfg" notjson
mutate cfg-wrongtypes "$cfg" wrongtypes
mutate cfg-symlink "$cfg" symlink
mutate img-truncated "$img" truncate
mutate img-array "$img" array
mutate repos-huge image/devicemapper/repositories.json huge
mutate repos-notjson image/devicemapper/repositories.json notjson
mutate cacheid-dir "$layer/cache-id" dir
mutate mountid-empty "$mnt/mount-id" empty
mutate devfile-notjson "devicemapper/metadata/$dev" notjson
mutate devfile-nul "devicemapper/metadata/$dev" nul
mutate devfile-empty "devicemapper/metadata/$dev" empty
mutate deviceset-notjson devicemapper/metadata/deviceset-metadata notjson
mutate txn-notjson devicemapper/metadata/transaction-metadata notjson

# A bad device file is a finding of its own: Docker would not start.
r="$WORK/badfile"
cp -a "$base" "$r"
printf 'garbage' >"$r/devicemapper/metadata/$dev"
dmr -r "$r" scan --json >"$WORK/out" 2>/dev/null
if jq -e --arg h "$dev" '.devices[] | select(.hash == $h) | .class == "bad-file"' "$WORK/out" >/dev/null; then
	ok "an unparsable device file is a bad-file finding"; else fail "bad device file class"; fi
# The root itself missing: exit 3, one line.
run dmr -r "$WORK/nonexistent" scan
expect_rc 3 "missing root"
[ "$(wc -l <"$WORK/err")" = 1 ] && ok "missing root: one line" || fail "missing root: message"
finish
