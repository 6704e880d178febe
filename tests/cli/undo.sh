#!/bin/sh
# dmrescue undo: --dry-run prints the plan and changes nothing; off a
# terminal nothing happens without --yes (exit 5); --yes restores the tree
# byte for byte; the refusals (a changed file, reclaim since, undone
# already) are one line each with exit 5, and --force gets past the first
# two; a missing or unreadable backup is exit 3, a damaged one exit 2 (the
# metadata's copy too, checked with its digest of the data in use); a
# manifest from before that digest (the plain SHA-256) is undone; -r
# overrides the Docker root the backup records. The backups are made by
# tests/fixtures/mkbackup with the bk_ API (the scenario of test_backup).
. "$top_srcdir/tests/cli/lib.sh"
MKBACKUP="$top_builddir/tests/fixtures/mkbackup"
[ -x "$MKBACKUP" ] || skip "tests/fixtures/mkbackup not built"
need sha256sum

# The tree below a root, one line per entry, without the backups and
# dmrescue's lock.
tree() {
	(cd "$1" && find . -path ./devicemapper/dmrescue-backup -prune -o ! -name .dmrescue.lock -print | LC_ALL=C sort |
		while read -r p; do
			if [ -L "$p" ]; then
				echo "$p link $(readlink "$p")"
			elif [ -f "$p" ]; then
				echo "$p file $(stat -c %a "$p") $(sha256sum <"$p" | cut -c1-64)"
			else
				echo "$p dir $(stat -c %a "$p")"
			fi
		done)
}

# same_tree ROOT FILE WHAT
same_tree() {
	tree "$1" >"$WORK/tree.now"
	if cmp -s "$2" "$WORK/tree.now"; then ok "$3"; else fail "$3"; diff -u "$2" "$WORK/tree.now" | head -20; fi
}

# The stderr has exactly one line, containing TEXT.
one_line() {
	text=$1 what=$2
	if [ "$(wc -l <"$WORK/err")" = 1 ] && grep -qF -- "$text" "$WORK/err"; then
		ok "$what: one line"
	else
		fail "$what: stderr is not one line with '$text'"; sed 's/^/  stderr: /' "$WORK/err"
	fi
}

# mk NAME: a backed-up and changed root in $WORK/NAME; BK is the backup.
mk() {
	BK=$("$MKBACKUP" "$WORK/$1") || { echo "FAIL: mkbackup $1"; exit 1; }
}

"$MKBACKUP" --layout-only "$WORK/ref" || { echo "FAIL: mkbackup --layout-only"; exit 1; }
tree "$WORK/ref" >"$WORK/old"
mk r1
tree "$WORK/r1" >"$WORK/new"
cmp -s "$WORK/old" "$WORK/new" && fail "the change changed nothing"

# The plan.
run dmr undo --dry-run "$BK"
expect_rc 0 "--dry-run"
grep -qF "Undo from $BK (Docker root $WORK/r1):" "$WORK/out" && ok "--dry-run: names the backup and the root" ||
	fail "--dry-run: header"
for line in "restore $WORK/r1/devicemapper/devicemapper/metadata" \
	"restore devicemapper/metadata/deviceset-metadata" \
	"put back containers/cccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccc (7 entries)" \
	"put back devicemapper/metadata/2222222222222222222222222222222222222222222222222222222222222222 (1 entry)"; do
	grep -qF "  $line" "$WORK/out" && ok "--dry-run: $line" || { fail "--dry-run: no '$line'"; cat "$WORK/out"; }
done
same_tree "$WORK/r1" "$WORK/new" "--dry-run changes nothing"

# Off a terminal, not without --yes.
run dmr undo "$BK" </dev/null
expect_rc 5 "no --yes off a terminal"
one_line "dmrescue: not restoring without confirmation: run on a terminal, or add --yes" "no --yes"
same_tree "$WORK/r1" "$WORK/new" "no --yes changes nothing"

# Restored.
run dmr undo --yes "$BK"
expect_rc 0 "--yes"
grep -qF "Restored 6 items; $BK is marked undone." "$WORK/out" && ok "--yes: says so" || { fail "--yes: summary"; cat "$WORK/out"; }
same_tree "$WORK/r1" "$WORK/old" "--yes restores the tree byte for byte"
grep -q '"state": "undone"' "$BK/manifest.json" && ok "the manifest is marked undone" || fail "manifest state"
run dmr undo --yes "$BK"
expect_rc 5 "a second undo"
one_line "undone already" "a second undo"

# A file changed since the backup: refused, then forced.
mk r2
printf '{"NextDeviceId":9}' >"$WORK/r2/devicemapper/metadata/deviceset-metadata"
tree "$WORK/r2" >"$WORK/changed"
run dmr undo --yes "$BK"
expect_rc 5 "a changed file"
one_line "dmrescue: devicemapper/metadata/deviceset-metadata changed since the backup (did Docker run?); --force restores anyway" \
	"a changed file"
same_tree "$WORK/r2" "$WORK/changed" "the refusal changes nothing"
run dmr undo --yes --force "$BK"
expect_rc 0 "--force"
same_tree "$WORK/r2" "$WORK/old" "--force restores"
grep -qF "What was replaced is in $BK/displaced/." "$WORK/out" && ok "--force: says where the replaced file is" ||
	fail "--force: displaced line"
[ "$(cat "$BK/displaced/devicemapper/metadata/deviceset-metadata")" = '{"NextDeviceId":9}' ] &&
	ok "--force keeps what it replaced" || fail "displaced copy"

# Reclaim ran since.
mk r3
echo 1 >"$WORK/r3/devicemapper/.dmrescue-reclaimed"
run dmr undo --yes "$BK"
expect_rc 5 "reclaim since"
one_line "reclaim ran since the backup (serial 0, now 1)" "reclaim since"

# -r overrides the root the backup records, before or after the command.
mk r4
mv "$WORK/r4" "$WORK/r4moved"
BK=$(echo "$BK" | sed "s|$WORK/r4/|$WORK/r4moved/|")
run dmr undo --yes "$BK"
expect_rc 3 "the recorded root is gone"
run dmr undo --yes -r "$WORK/r4moved" "$BK"
expect_rc 0 "-r after the command"
same_tree "$WORK/r4moved" "$WORK/old" "-r: restored there"
mk r5
mv "$WORK/r5" "$WORK/r5moved"
BK=$(echo "$BK" | sed "s|$WORK/r5/|$WORK/r5moved/|")
run dmr -r "$WORK/r5moved" undo --yes "$BK"
expect_rc 0 "-r before the command"
same_tree "$WORK/r5moved" "$WORK/old" "-r before: restored there"

# Bad backups.
run dmr undo --yes "$WORK/nonexistent"
expect_rc 3 "a missing backup directory"
one_line "nonexistent" "a missing backup directory"
mkdir "$WORK/empty"
run dmr undo --yes "$WORK/empty"
expect_rc 3 "a directory without a manifest"
one_line "manifest.json: missing (not a dmrescue backup?)" "no manifest"
mk r6
cp "$BK/manifest.json" "$WORK/manifest.good"
printf 'garbage' >"$BK/manifest.json"
run dmr undo --yes "$BK"
expect_rc 2 "a garbage manifest"
one_line "manifest.json: damaged manifest" "a garbage manifest"
cp "$WORK/manifest.good" "$BK/manifest.json"
printf 'x' >>"$BK/files/devicemapper/metadata/deviceset-metadata"
run dmr undo --yes --force "$BK"
expect_rc 2 "a damaged stored copy"
one_line "the backup is damaged" "a damaged stored copy"

# The metadata is recorded with the digest of its data in use
# (sha256-nonzero-4k); a byte in a hole of its stored copy is damage.
META=devicemapper/devicemapper/metadata
mk r7
grep -qF '"digest": "sha256-nonzero-4k"' "$BK/manifest.json" && ok "the manifest names the metadata's digest" ||
	fail "no metadata digest in the manifest"
printf '\001' | dd of="$BK/pool/metadata" bs=1 seek=1048583 conv=notrunc 2>/dev/null
run dmr undo --yes --force "$BK"
expect_rc 2 "a damaged metadata copy"
one_line "pool/metadata: the stored copy differs from the manifest (sha256-nonzero-4k" "a damaged metadata copy"

# A manifest written before the "digest" field, with the plain SHA-256 of
# the metadata: undone as before.
mk r8
nzb=$(sed -n '/"metadata": {/,/}/s/^ *"sha256": "\([0-9a-f]*\)".*/\1/p' "$BK/manifest.json")
nza=$(sed -n '/"metadata": {/,/}/s/^ *"after_sha256": "\([0-9a-f]*\)".*/\1/p' "$BK/manifest.json")
shab=$(sha256sum <"$WORK/ref/$META" | cut -c1-64)
shaa=$(sha256sum <"$WORK/r8/$META" | cut -c1-64)
if [ ${#nzb} = 64 ] && [ ${#nza} = 64 ]; then
	sed -i -e '/"digest": "sha256-nonzero-4k",/d' -e "s/$nzb/$shab/" -e "s/$nza/$shaa/" "$BK/manifest.json"
	run dmr undo --yes "$BK"
	expect_rc 0 "a manifest from before the digest field"
	same_tree "$WORK/r8" "$WORK/old" "a manifest from before the digest field: restored"
else
	fail "the metadata's digests not found in the manifest"
fi

# Usage.
run dmr undo
expect_rc 64 "no backup directory"
run dmr undo a b
expect_rc 64 "two backup directories"
run dmr undo --bogus x
expect_rc 64 "an unknown option"
run dmr undo -h
expect_rc 0 "-h"
grep -q "dmrescue undo \[options\] BACKUP_DIR" "$WORK/out" && ok "-h: usage" || fail "-h: usage"

finish
