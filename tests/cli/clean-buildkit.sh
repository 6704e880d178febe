#!/bin/sh
# clean --buildkit-unreferenced on the leftovers root: BuildKit's snapshots
# (buildkit/snapshots.db: builder stage device 13 = teqf... committed as
# iges...; the final stage fgsk..., committed as ijdp..., is an image's
# layer, device 14) with cache records and leases written by the test
# writer:
# - refused in one line while metadata_v2.db or containerdmeta.db is
#   missing or damaged, nothing changed;
# - nothing refers to the builder stage: its two buckets and device 13 go,
#   with the BuildKit-named orphan (23) and the default classes; the image
#   layer's buckets stay; the pool equals the XML route's; the rewritten
#   snapshots.db passes the real bbolt's Tx.Check and holds exactly the
#   kept buckets (Go oracle, tests/fixtures/buildkit/boltcheck.go; skipped
#   without Go), keeps its mode; undo puts it back byte for byte;
# - a lease on the device's key keeps the device (its committed name goes);
#   a cache record naming the committed name keeps both.
. "$top_srcdir/tests/cli/lib.sh"
. "$top_srcdir/tests/cli/clean-lib.sh"
need jq thin_dump thin_restore thin_check
ensure_dockerroot leftovers
BK_DEV=teqfqifdrfijqdsfirdussiqg BK_NAME=igesdthruldflsckdpcsddhrp
DB=buildkit/snapshots.db

oracle=
gopath=${BOLT_GOPATH:-/usr/share/gocode}
if command -v go >/dev/null 2>&1 && [ -f "$gopath/src/go.etcd.io/bbolt/db.go" ] &&
	GO111MODULE=off GOPATH=$gopath GOCACHE=$WORK/gocache GOFLAGS= \
		go build -o "$WORK/boltcheck" "$top_srcdir/tests/fixtures/buildkit/boltcheck.go" >"$WORK/go.log" 2>&1; then
	oracle=$WORK/boltcheck
else
	echo "note: no go or bbolt (golang-go golang-github-coreos-bbolt-dev): the bbolt oracle checks are skipped"
fi

# --- refusals ---
fresh
state "$R" >"$WORK/before.state"
run dmr -r "$R" clean --buildkit-unreferenced --yes --backup-dir "$WORK/bk0"
expect_rc 5 "refused without buildkit/metadata_v2.db"
if [ "$(wc -l <"$WORK/err")" = 1 ] && grep -q 'buildkit/metadata_v2.db: missing' "$WORK/err"; then
	ok "one line says why"; else fail "refusal message"; cat "$WORK/err"; fi
bk_dbs "$R" "$BK_NAME" "" ""
rm "$R/buildkit/containerdmeta.db"
run dmr -r "$R" clean --buildkit-unreferenced --dry-run
if [ "$RC" = 5 ] && grep -q 'containerdmeta.db: missing' "$WORK/err"; then ok "refused without containerdmeta.db"; else
	fail "containerdmeta.db missing: exit $RC"; cat "$WORK/err"; fi
bk_dbs "$R" "$BK_NAME" "" ""
truncate -s 8192 "$R/buildkit/metadata_v2.db"
run dmr -r "$R" clean --buildkit-unreferenced --dry-run --json
if [ "$RC" = 5 ] && jq -e '.result.state == "refused" and (.result.error | test("metadata_v2.db"))' "$WORK/out" >/dev/null; then
	ok "refused on a damaged metadata_v2.db (JSON says so)"; else fail "damaged metadata_v2.db: exit $RC"; cat "$WORK/out" "$WORK/err"; fi
rm -f "$R/buildkit/metadata_v2.db" "$R/buildkit/containerdmeta.db"
state "$R" >"$WORK/after.state"
if cmp -s "$WORK/before.state" "$WORK/after.state"; then ok "refused: nothing changed"; else fail "a refusal changed files"; fi

# --- nothing refers to the builder stage ---
fresh
bk_dbs "$R" aaaaaaaaaaaaaaaaaaaaaaaaa "" aaaaaaaaaaaaaaaaaaaaaaaaa
chmod 0640 "$R/$DB"
cp "$R/$DB" "$WORK/snapshots.before"
thin_dump "$META" >"$WORK/before.xml"
hash_devices "$R" >"$WORK/hash.before"
run dmr -r "$R" clean --buildkit-unreferenced --dry-run --json
expect_rc 0 "--dry-run --json"
if [ "$(jq -r '[.plan.devices[].thin_id] | sort | map(tostring) | join(" ")' "$WORK/out")" = "6 7 13 17 18 23 25" ] &&
	[ "$(jq -r '.plan.drop_buildkit_snapshots | join(" ")' "$WORK/out")" = "$BK_NAME $BK_DEV" ] &&
	jq -e '.plan.files[0] == {"op": "rewrite", "path": "buildkit/snapshots.db", "reason": "buildkit-unreferenced", "optional": false}' "$WORK/out" >/dev/null; then
	ok "plan: devices 6 7 13 17 18 23 25, buckets $BK_NAME $BK_DEV, snapshots.db first"; else
	fail "plan"; jq -c '.plan' "$WORK/out"; fi
run dmr -r "$R" clean --buildkit-unreferenced --yes --backup-dir "$WORK/bk1"
expect_rc 0 "clean --buildkit-unreferenced"
verify_removed "$R" "$WORK/before.xml" "6 7 13 17 18 23 25" buildkit-unreferenced
hash_devices "$R" >"$WORK/hash.after"
grep -v -E '^(6|7|13|17|18|23|25) ' "$WORK/hash.before" >"$WORK/hash.kept"
if cmp -s "$WORK/hash.kept" "$WORK/hash.after"; then ok "every kept device holds the same data"; else fail "kept data changed"; fi
if [ "$(stat -c %a "$R/$DB")" = 640 ] && [ ! -e "$R/buildkit/.snapshots.db.dmrescue-new" ]; then
	ok "snapshots.db keeps its mode, no temporary file left"; else fail "snapshots.db mode $(stat -c %a "$R/$DB")"; ls -la "$R/buildkit"; fi
"$top_builddir/tests/fixtures/buildkit/boltfix" dumpall "$R/$DB" >"$WORK/ours.after"
if [ -n "$oracle" ]; then
	"$oracle" dumpall "$WORK/snapshots.before" | grep -v -e "^$BK_NAME/" -e "^$BK_DEV/" >"$WORK/expected"
	if "$oracle" dumpall "$R/$DB" >"$WORK/go.after" 2>"$WORK/go.err" && cmp -s "$WORK/expected" "$WORK/go.after"; then
		ok "bbolt: Tx.Check passes, every kept bucket, key and value as before, the dropped ones gone ($(grep -c '/ seq=' "$WORK/go.after") buckets)"
	else
		fail "bbolt oracle"; cat "$WORK/go.err"; diff "$WORK/expected" "$WORK/go.after"; fi
	if cmp -s "$WORK/go.after" "$WORK/ours.after"; then ok "our reader reads the new file as bbolt does"; else fail "readers differ"; fi
fi
run dmr -r "$R" scan --json
if jq -e '[.devices[] | select(.thin_id == 14 and .class == "image-layer")] | length == 1' "$WORK/out" >/dev/null; then
	ok "the image layer BuildKit made stays"; else fail "layer 14"; fi
run dmr -r "$R" clean --buildkit-unreferenced --dry-run
if grep -q 'nothing to remove' "$WORK/out"; then ok "a second run has nothing to do"; else fail "second run"; cat "$WORK/out"; fi
run dmr -r "$R" undo --yes "$WORK/bk1"
expect_rc 0 "undo"
if cmp -s "$R/$DB" "$WORK/snapshots.before"; then ok "undo puts snapshots.db back byte for byte"; else fail "undo snapshots.db"; fi

# --- a lease on the device's key; a record on the committed name ---
fresh
bk_dbs "$R" aaaaaaaaaaaaaaaaaaaaaaaaa "" "$BK_DEV"
run dmr -r "$R" clean --buildkit-unreferenced --dry-run --json
if [ "$(jq -r '.plan.drop_buildkit_snapshots | join(" ")' "$WORK/out")" = "$BK_NAME" ] &&
	jq -e '[.plan.devices[].thin_id] | index(13) == null' "$WORK/out" >/dev/null; then
	ok "a lease on $BK_DEV keeps device 13; only the name $BK_NAME goes"; else fail "lease"; jq -c '.plan' "$WORK/out"; fi
bk_dbs "$R" "$BK_NAME" "" ""
run dmr -r "$R" clean --buildkit-unreferenced --dry-run --json
if jq -e '(.plan.drop_buildkit_snapshots | length == 0) and ([.plan.devices[].thin_id] | index(13) == null) and
	([.plan.files[].path] | index("buildkit/snapshots.db") == null)' "$WORK/out" >/dev/null; then
	ok "a cache record on $BK_NAME keeps it and the device it was committed from"; else fail "record"; jq -c '.plan' "$WORK/out"; fi
bk_dbs "$R" aaaaaaaaaaaaaaaaaaaaaaaaa "$BK_DEV" ""
run dmr -r "$R" clean --buildkit-unreferenced --dry-run --json
if [ "$(jq -r '.plan.drop_buildkit_snapshots | join(" ")' "$WORK/out")" = "$BK_NAME" ]; then
	ok "a record's other values (cache.mergeParents) count as references too"; else fail "mergeParents"; jq -c '.plan' "$WORK/out"; fi
finish
