#!/bin/sh
# dmrescue timeline against oracles: thin_dump's XML (creation and snapshot
# times, transaction ids, mapped blocks, and the time attribute of every
# mapping: blocks per time, and since the last snapshot), Docker's files
# (transaction_id of each metadata/<hash>), ls --json (class, owner); the
# order (creation time, then thin id); fixtures without a Docker root;
# every input unchanged.
. "$top_srcdir/tests/cli/lib.sh"
need jq thin_dump
ensure_fixtures
ensure_dockerroot leftovers
R=$ROOTDIR/root
M="$R/devicemapper/devicemapper/metadata"

# oracle XML: "dev created snapped tid mapped since times" per device, in
# creation order; times as "t:n,t:n" ascending.
oracle() {
	awk -F'"' '
	function attr(name,   i) { for (i = 1; i < NF; i++) if ($i ~ (" " name "=$")) return $(i + 1); return "" }
	/<device / { dev = attr("dev_id"); devs[dev] = attr("creation_time") " " attr("snap_time") " " attr("transaction") " " attr("mapped_blocks"); snap[dev] = attr("snap_time") }
	/<single_mapping/ { cnt[dev, attr("time")] += 1; ts[dev] = ts[dev] " " attr("time") }
	/<range_mapping/ { cnt[dev, attr("time")] += attr("length"); ts[dev] = ts[dev] " " attr("time") }
	END {
		for (d in devs) {
			n = split(ts[d], t, " "); m = 0; delete u
			for (i = 1; i <= n; i++) if (!(t[i] in u)) { u[t[i]] = 1; k[++m] = t[i] + 0 }
			for (i = 2; i <= m; i++) { x = k[i]; for (j = i - 1; j > 0 && k[j] > x; j--) k[j + 1] = k[j]; k[j + 1] = x }
			s = ""; since = 0
			for (i = 1; i <= m; i++) { s = s (i > 1 ? "," : "") k[i] ":" cnt[d, k[i]]; if (k[i] >= snap[d]) since += cnt[d, k[i]] }
			print d, devs[d], since, (s == "" ? "-" : s)
		}
	}' "$1" | sort -k2,2n -k1,1n
}
got() {
	jq -r '.devices[] | [.thin_id, .creation_time, .snapshotted_time, .transaction_id, .mapped_blocks, .written_since_snapshot,
		(if (.mapping_times | length) == 0 then "-" else ([.mapping_times[] | "\(.time):\(.blocks)"] | join(",")) end)] | join(" ")' "$1"
}

for f in snap ref3 sharedleaf metasnap; do
	thin_dump "$FIXDIR/$f.meta" >"$WORK/$f.xml"
	oracle "$WORK/$f.xml" >"$WORK/want"
	run dmr --metadata "$FIXDIR/$f.meta" --json timeline
	expect_rc 0 "$f: timeline --json"
	got "$WORK/out" >"$WORK/got"
	if cmp -s "$WORK/want" "$WORK/got"; then ok "$f: $(wc -l <"$WORK/want") devices: order, times, transactions, mapping times"; else
		fail "$f"; diff "$WORK/want" "$WORK/got"; fi
	jq -e '.schema == "dmrescue.timeline/1" and .docker == null and ([.devices[].owner] | all(. == null))' "$WORK/out" \
		>/dev/null && ok "$f: no Docker side" || fail "$f: Docker side"
done

# --- the leftovers root ---
find "$R" -type f ! -path "$M" ! -path "$R/devicemapper/devicemapper/data" -exec sha256sum {} + | sort >"$WORK/before"
"$top_builddir/tests/fixtures/fixturepp" hash-sparse "$M" >>"$WORK/before"
thin_dump "$M" >"$WORK/root.xml"
oracle "$WORK/root.xml" >"$WORK/want"
run dmr -r "$R" --json timeline
expect_rc 0 "leftovers: timeline --json"
got "$WORK/out" >"$WORK/got"
cmp -s "$WORK/want" "$WORK/got" && ok "leftovers: $(wc -l <"$WORK/want") devices as thin_dump says" ||
	{ fail "leftovers"; diff "$WORK/want" "$WORK/got"; }
"$DMRESCUE" -r "$R" ls --json >"$WORK/ls.json"
jq -r '.devices[] | [.dev, (.class // "-"), (.owner // "-")] | join(" ")' "$WORK/ls.json" | sort -n >"$WORK/want"
jq -r '.devices[] | [.thin_id, (.class // "-"), (.owner // "-")] | join(" ")' "$WORK/out" | sort -n >"$WORK/got"
cmp -s "$WORK/want" "$WORK/got" && ok "leftovers: classes and owners as ls gives them" ||
	{ fail "classes/owners"; diff "$WORK/want" "$WORK/got"; }
bad=0
for row in $(jq -r '.devices[] | select(.hash != null) | "\(.hash)=\(.docker_transaction_id)"' "$WORK/out"); do
	h=${row%=*} t=${row#*=}
	want=$(jq -r .transaction_id "$R/devicemapper/metadata/${h:-base}" 2>/dev/null || echo null)
	[ "$want" = "$t" ] || { bad=$((bad + 1)); echo "  ${h:-base}: $t, file says $want"; }
done
[ "$bad" = 0 ] && ok "leftovers: Docker's transaction ids from the device files" || fail "$bad Docker transaction ids"
jq -e '.pool.time == 28 and .pool.transaction_id == 34 and .docker.open_transaction_id == 35 and
       .docker.next_device_id == 6 and .docker.open_transaction_device_id == 25' "$WORK/out" >/dev/null &&
	ok "leftovers: pool time 28, transaction 34; Docker's open transaction 35 (device 25), next_device_id 6" ||
	{ fail "pool/docker header"; jq '.pool, .docker' "$WORK/out"; }
jq -e '[.devices[] | select(.thin_id == 10)][0] | .class == "container" and .written_since_snapshot == 3' "$WORK/out" \
	>/dev/null && ok "web's device wrote 3 blocks since its snapshot" || fail "web since snapshot"
run dmr -r "$R" timeline
expect_rc 0 "leftovers: timeline"
grep -q '^ DEV CREATED SNAPPED POOL_TID DOCKER_TID' "$WORK/out" && ok "human header" || fail "human header"
grep -q "^  10       9       9       13         14       24          3 container  " "$WORK/out" && ok "web's row" ||
	{ fail "web's row"; grep "^  10 " "$WORK/out"; }
run dmr -r "$R" timeline extra
expect_rc 64 "an extra argument"
find "$R" -type f ! -path "$M" ! -path "$R/devicemapper/devicemapper/data" -exec sha256sum {} + | sort >"$WORK/after"
"$top_builddir/tests/fixtures/fixturepp" hash-sparse "$M" >>"$WORK/after"
cmp -s "$WORK/before" "$WORK/after" && ok "inputs unchanged" || fail "an input changed"
finish
