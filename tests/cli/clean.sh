#!/bin/sh
# dmrescue clean and undo on the synthetic Docker root with one leftover of
# every class (tests/fixtures/dockerroot, scenario leftovers):
# - the plan (golden), --dry-run and a missing --yes change nothing;
# - after clean: thin_check passes, dmrescue check finds nothing wrong in the
#   pool (data reference counts included), the devices and mappings equal
#   the reference result (thin_dump, drop the same devices from the XML,
#   thin_restore), every kept device holds the same data, metadata blocks
#   in use did not grow, the remaining classes are expect.tsv's minus the
#   removed ones, and Docker's files changed exactly as planned;
# - undo puts every file back byte for byte;
# - opt-in classes, explicit targets and the protected label;
# - the refusals: damaged pool, needs_check, a held metadata snapshot.
# Guards against live state: clean-guards.sh. Crashes: clean-crash.sh.
. "$top_srcdir/tests/cli/lib.sh"
. "$top_srcdir/tests/cli/clean-lib.sh"
need jq thin_dump thin_restore thin_check
ensure_dockerroot leftovers

# --- the default plan ---
fresh
state "$R" >"$WORK/before.state"
run dmr -r "$R" clean --dry-run
expect_rc 0 "clean --dry-run"
sed "s|$R|ROOT|g" "$WORK/out" >"$WORK/plan"
golden clean/leftovers.plan "$WORK/plan"
state "$R" >"$WORK/after.state"
if cmp -s "$WORK/before.state" "$WORK/after.state"; then ok "--dry-run changes nothing"; else fail "--dry-run changed files"; fi
run dmr -r "$R" clean </dev/null
expect_rc 5 "clean without --yes off a terminal"
if grep -q 'not confirmed: run again with --yes' "$WORK/err"; then ok "the refusal says how to confirm"; else fail "refusal message"; cat "$WORK/err"; fi
state "$R" >"$WORK/after.state"
if cmp -s "$WORK/before.state" "$WORK/after.state"; then ok "refused: nothing changed"; else fail "refused clean changed files"; fi

run dmr -r "$R" clean --dry-run --json
expect_rc 0 "clean --dry-run --json"
cp "$WORK/out" "$WORK/plan.json"
if jq -e '.schema == "dmrescue.clean/1" and .result.state == "planned"' "$WORK/out" >/dev/null; then
	ok "JSON plan: schema and state"; else fail "JSON plan"; fi
jq -r '.plan.devices[].thin_id' "$WORK/out" | sort -n | tr '\n' ' ' >"$WORK/ids"
if [ "$(cat "$WORK/ids")" = "6 7 17 18 25 " ]; then ok "default plan: devices 6 7 17 18 25"; else
	fail "default plan devices: $(cat "$WORK/ids")"; fi

# --- clean ---
hash_devices "$R" >"$WORK/hash.before"
thin_dump "$META" >"$WORK/before.xml"
used_before=$(meta_used "$META")
# The new metadata file takes the old one's mode, owner and xattrs.
chmod 0640 "$META"
chown 123:45 "$META"
xattr=no
if command -v setfattr >/dev/null 2>&1 && setfattr -n user.dmrescue.test -v kept "$META" 2>/dev/null; then xattr=yes; fi
run dmr -r "$R" clean --yes --backup-dir "$WORK/bk1"
expect_rc 0 "clean --yes"
cat "$WORK/out"
verify_removed "$R" "$WORK/before.xml" "6 7 17 18 25" default
used_after=$(meta_used "$META")
if [ "$(stat -c %a:%u:%g "$META")" = 640:123:45 ]; then ok "the new metadata keeps mode and owner"; else
	fail "metadata mode/owner: $(stat -c %a:%u:%g "$META")"; fi
if [ "$xattr" = yes ]; then
	if [ "$(getfattr --only-values -n user.dmrescue.test "$META" 2>/dev/null)" = kept ]; then
		ok "the new metadata keeps its extended attributes"; else fail "xattr lost"; fi
else
	echo "note: no user xattrs here; the xattr check is skipped"
fi
if [ "$used_after" -le "$used_before" ]; then ok "metadata blocks in use: $used_before -> $used_after"; else
	fail "metadata blocks in use grew: $used_before -> $used_after"; fi
hash_devices "$R" >"$WORK/hash.after"
grep -v -E '^(6|7|17|18|25) ' "$WORK/hash.before" >"$WORK/hash.kept"
if cmp -s "$WORK/hash.kept" "$WORK/hash.after"; then ok "every kept device holds the same data"; else
	fail "kept devices' data changed"; diff "$WORK/hash.kept" "$WORK/hash.after"; fi
# Docker's files: exactly the planned ones are gone (with what they held),
# nothing else changed.
state "$R" >"$WORK/after.state"
diff "$WORK/before.state" "$WORK/after.state" | sed -n 's/^< [^ ]* //p' | grep -v '^devicemapper/devicemapper/metadata$' |
	sort >"$WORK/gone"
if diff "$WORK/before.state" "$WORK/after.state" | grep -q '^>' ; then
	# only the metadata file may have a new version
	if diff "$WORK/before.state" "$WORK/after.state" | grep '^>' | grep -v -q ' devicemapper/devicemapper/metadata$'; then
		fail "clean created or changed files it did not plan"; diff "$WORK/before.state" "$WORK/after.state" | grep '^>'
	fi
fi
jq -r '.plan.files[].path' "$WORK/plan.json" | sort >"$WORK/planned"
awk 'NR == FNR { p[$0] = 1; next }
	{ x = $0; hit = 0
	  while (x != "") { if (x in p) { hit = 1; break }; if (sub(/\/[^\/]*$/, "", x) == 0) break }
	  if (!hit) { print "unplanned: " $0; bad = 1 } }
	END { exit bad }' "$WORK/planned" "$WORK/gone" >"$WORK/unplanned" &&
	awk 'NR == FNR { g[$0] = 1; next } !($0 in g) { print "still there: " $0; bad = 1 } END { exit bad }' \
		"$WORK/gone" "$WORK/planned" >>"$WORK/unplanned"
if [ ! -s "$WORK/unplanned" ]; then ok "Docker's files: exactly the $(wc -l <"$WORK/planned") planned ones removed"; else
	fail "files removed differ from the plan"; cat "$WORK/unplanned"; fi
run dmr -r "$R" scan --json
scan_classes "$WORK/out" | grep -v -E '^(6|7|17|18|25)	' >"$WORK/classes"
awk -F'\t' '!/^#/ && NF >= 3 && $3 != "transient" && $1 !~ /^(6|7|17|18|25)$/ {
	h = $2; if (h == "") h = "base"; print $1 "\t" h "\t" $3 }' "$ROOTDIR/expect.tsv" | sort >"$WORK/classes.want"
if cmp -s "$WORK/classes.want" "$WORK/classes"; then ok "after clean: the other devices keep their classes"; else
	fail "classes after clean"; diff "$WORK/classes.want" "$WORK/classes"; fi
run dmr -r "$R" clean --dry-run
if grep -q 'nothing to remove' "$WORK/out"; then ok "a second clean has nothing to do"; else fail "second clean plan"; cat "$WORK/out"; fi

# --- undo ---
run dmr -r "$R" undo --yes "$WORK/bk1"
expect_rc 0 "undo"
state "$R" >"$WORK/undone.state"
if cmp -s "$WORK/before.state" "$WORK/undone.state"; then ok "undo restores every file byte for byte"; else
	fail "undo: files differ"; diff "$WORK/before.state" "$WORK/undone.state"; fi
chmod 0600 "$META"
chown 0:0 "$META"
setfattr -x user.dmrescue.test "$META" 2>/dev/null
if cmp -s "$META" "$ROOTDIR/root/devicemapper/devicemapper/metadata"; then ok "undo: metadata byte-identical"; else
	fail "undo: metadata differs"; fi

# --- opt-in classes ---
fresh
thin_dump "$META" >"$WORK/before.xml"
run dmr -r "$R" clean --all --yes --backup-dir "$WORK/bk2"
expect_rc 0 "clean --all"
ids=$(awk -F'\t' '$1 ~ /^[0-9]+$/ && $3 ~ /^(deferred-deleted|half-removed-layer|pool-orphan|open-transaction|dead-container|driver-orphan|unreferenced-layer)$/ { print $1 }' \
	"$ROOTDIR/expect.tsv" | sort -n | tr '\n' ' ')
verify_removed "$R" "$WORK/before.xml" "$ids" all
run dmr -r "$R" scan --json
if jq -e '[.findings[] | select(.class != "transient" or (.path | test("mnt/") | not))] | length == 0' "$WORK/out" >/dev/null; then
	ok "after clean --all: no leftovers but the non-empty mount point"; else
	fail "leftovers after clean --all"; jq -c '.findings[] | [.class, .thin_id, .path]' "$WORK/out"; fi
for c in d86d00cf9ae44faccd68abcc1c080a65d55c4d5dd276ae1a500e3bb4ec599b7c; do
	if [ ! -e "$R/containers/$c" ] && [ ! -e "$R/image/devicemapper/layerdb/mounts/$c" ]; then
		ok "dead container $c: containers/ and layerdb/mounts/ removed"; else fail "dead container $c still there"; fi
done

# --- the metadata on a block device (direct-lvm): rehearsed on a copy in
# the backup, then rewritten in place; undo writes it back ---
fresh
cp --sparse=always "$META" "$WORK/meta.img"
if [ "$(id -u)" = 0 ] && command -v losetup >/dev/null 2>&1 && loop=$(losetup -f --show "$WORK/meta.img" 2>/dev/null); then
	run dmr -r "$R" --metadata "$loop" clean --yes --backup-dir "$WORK/bk-blk"
	expect_rc 0 "clean with the metadata on $loop"
	if thin_check -q "$loop" 2>/dev/null; then ok "block device: thin_check accepts it"; else fail "block device: thin_check"; fi
	thin_dump "$loop" >"$WORK/blk.dump"
	run dmr -r "$R" --metadata "$loop" clean --dry-run
	if grep -q 'nothing to remove' "$WORK/out" && [ ! -e "$WORK/bk-blk/pool/metadata.rehearsal" ]; then
		ok "block device: the devices are gone, the rehearsal copy removed"; else fail "block device: after"; cat "$WORK/out"; fi
	run dmr -r "$R" --metadata "$loop" undo --yes "$WORK/bk-blk"
	expect_rc 0 "undo onto the block device"
	if [ "$("$top_builddir/tests/fixtures/fixturepp" hash-sparse "$loop")" = \
		"$("$top_builddir/tests/fixtures/fixturepp" hash-sparse "$ROOTDIR/root/devicemapper/devicemapper/metadata")" ]; then
		ok "undo wrote the block device back as it was"; else fail "block device content after undo"; fi
	losetup -d "$loop"
else
	echo "note: no loop device here; the block-device path is not tested"
fi

# --- BuildKit's cache, dropped whole ---
fresh
thin_dump "$META" >"$WORK/before.xml"
run dmr -r "$R" clean --buildkit-cache --yes --backup-dir "$WORK/bk5"
expect_rc 0 "clean --buildkit-cache"
verify_removed "$R" "$WORK/before.xml" "6 7 13 17 18 23 25" buildkit
if [ ! -e "$R/buildkit" ] && [ -f "$WORK/bk5/files/buildkit/snapshots.db" ]; then
	ok "buildkit/ moved into the backup"; else fail "buildkit/ not moved"; fi
run dmr -r "$R" scan --json
if jq -e '[.devices[] | select(.thin_id == 14 and .class == "image-layer")] | length == 1' "$WORK/out" >/dev/null; then
	ok "the image layer BuildKit made stays"; else fail "layer 14"; jq -c '.devices[] | select(.thin_id == 14)' "$WORK/out"; fi
run dmr -r "$R" undo --yes "$WORK/bk5"
if cmp -s "$R/buildkit/snapshots.db" "$ROOTDIR/root/buildkit/snapshots.db"; then ok "undo puts buildkit/ back"; else
	fail "undo buildkit"; fi

# --- explicit targets ---
fresh
run dmr -r "$R" clean --device 2 --dry-run
expect_rc 5 "--device of an image layer"
if grep -q 'a layer of image .*remove the image (--image)' "$WORK/out"; then ok "it says which image"; else fail "image layer refusal"; cat "$WORK/out"; fi
run dmr -r "$R" clean --device 1 --dry-run
expect_rc 5 "--device of the base"
run dmr -r "$R" clean --device 999 --dry-run
expect_rc 5 "--device that does not exist"
run dmr -r "$R" clean --container web --device 17 --yes --backup-dir "$WORK/bk3"
expect_rc 0 "--container web --device 17"
thin_dump "$ROOTDIR/root/devicemapper/devicemapper/metadata" >"$WORK/before.xml"
verify_removed "$R" "$WORK/before.xml" "9 10 17" targets
if [ ! -e "$R/containers/7626d4f33d6a685e65ffa271134d92f26d7c5d0c37f5596eeecaa47809435720" ]; then
	ok "container web's directory removed"; else fail "container web still there"; fi
# an image: its tag, its config, and its layers nothing else uses (the
# one BuildKit's cache still holds stays)
run dmr -r "$R" clean --image 7337da83ebfb --dry-run
expect_rc 5 "--image used by a container"
if grep -q 'container .* uses it: remove the container first' "$WORK/out"; then ok "it names the container"; else
	fail "image in use message"; cat "$WORK/out"; fi
run dmr -r "$R" clean --image debian:12 --dry-run
if grep -q 'rewrite image/devicemapper/repositories.json without debian:12' "$WORK/out" && ! grep -q '^    thin ' "$WORK/out"; then
	ok "--image TAG of an image with other tags only untags it"; else fail "untag"; cat "$WORK/out"; fi
run dmr -r "$R" clean --image example/tool:dev --yes --backup-dir "$WORK/bk4"
expect_rc 0 "--image example/tool:dev"
if jq -e '.Repositories | has("example/tool") | not' "$R/image/devicemapper/repositories.json" >/dev/null &&
	jq -e '.Repositories.debian["debian:12"] and .Repositories["example/app"]["example/app:1.0"]' \
		"$R/image/devicemapper/repositories.json" >/dev/null; then
	ok "repositories.json: the tag gone, the others kept"; else fail "repositories.json"; cat "$R/image/devicemapper/repositories.json"; fi
if [ ! -e "$R/image/devicemapper/imagedb/content/sha256/e1c5e5c5bbe74e02e014ffe8f8a1ddf706f02781113d08ba4ffecb43a8c2a6b0" ] &&
	grep -q "BuildKit's snapshot fgskcqqqhtpksdckpkqiuslth" "$WORK/out"; then
	ok "the image config is gone; its layer stays while BuildKit's cache holds it"; else fail "image removal"; cat "$WORK/out"; fi
run dmr -r "$R" undo --yes "$WORK/bk4"
if cmp -s "$R/image/devicemapper/repositories.json" "$ROOTDIR/root/image/devicemapper/repositories.json"; then
	ok "undo puts repositories.json back byte for byte"; else fail "undo repositories.json"; fi
run dmr -r "$R" clean --container db --dead-containers --dry-run
expect_rc 64 "targets and class options do not mix"

# --- the protected label ---
fresh
cfg="$R/containers/d86d00cf9ae44faccd68abcc1c080a65d55c4d5dd276ae1a500e3bb4ec599b7c/config.v2.json"
jq -c '.Config.Labels = ((.Config.Labels // {}) + {"protected": "yes"})' "$cfg" >"$WORK/cfg" && cat "$WORK/cfg" >"$cfg"
run dmr -r "$R" clean --dead-containers --dry-run
if grep -q 'left alone: .*carries the label "protected"' "$WORK/out" && ! grep -q '^    thin 20 ' "$WORK/out"; then
	ok "a protected dead container is left alone by the class rule"; else fail "protected container planned"; cat "$WORK/out"; fi
run dmr -r "$R" clean --container busy --dry-run
if grep -q 'thin 20 .*label protected: removed because named' "$WORK/out"; then
	ok "naming the protected container removes it, and the plan says so"; else fail "protected explicit"; cat "$WORK/out"; fi

# --- refusals on the pool itself ---
fresh
"$top_builddir/tests/fixtures/fixturepp" needs-check "$META" >/dev/null
run dmr -r "$R" clean --yes
expect_rc 5 "needs_check set"
fresh
"$top_builddir/tests/fixtures/fixturepp" metadata-snap "$META" >/dev/null
run dmr -r "$R" clean --yes
expect_rc 5 "a held metadata snapshot"
if grep -q 'metadata snapshot is held' "$WORK/err"; then ok "it names the held snapshot"; else fail "held snapshot message"; fi
fresh
"$top_builddir/tests/fixtures/fixturepp" corrupt flip "$META" top-leaf >/dev/null
state "$R" >"$WORK/before.state"
run dmr -r "$R" clean --yes
expect_rc 2 "a damaged pool"
if grep -q 'thin_repair' "$WORK/err"; then ok "it points to thin_repair"; else fail "damage message"; cat "$WORK/err"; fi
state "$R" >"$WORK/after.state"
if cmp -s "$WORK/before.state" "$WORK/after.state"; then ok "damaged pool: nothing changed"; else fail "damaged pool changed"; fi
finish
