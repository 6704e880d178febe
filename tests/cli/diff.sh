#!/bin/sh
# dmrescue diff against an oracle computed from thin_dump's XML (every
# mapping of both devices, compared block by block in awk):
# - snapshot pairs of the fixtures (snap, presnap, ref3, sharedleaf): the
#   ranges, kinds and counts of --json; exit 1 when they differ, 0 when not;
# - --content on a copy of snap's data where one remapped block got its
#   origin's bytes and one only-B block was zeroed: both left out;
# - the leftovers Docker root: container web against its image's top layer
#   (what the container and its -init wrote), by name; human output;
# - errors; every input unchanged.
. "$top_srcdir/tests/cli/lib.sh"
need jq thin_dump
ensure_fixtures
ensure_dockerroot leftovers
R=$ROOTDIR/root
B=65536

# oracle XML A B: "vbegin blocks kind" per maximal range of one kind.
oracle() {
	awk -v A="$2" -v B="$3" -F'"' '
	function attr(name,   i) { for (i = 1; i < NF; i++) if ($i ~ (" " name "=$")) return $(i + 1); return "" }
	/<device / { dev = attr("dev_id") }
	/<single_mapping/ { add(attr("origin_block"), attr("data_block"), 1) }
	/<range_mapping/ { add(attr("origin_begin"), attr("data_begin"), attr("length")) }
	function add(v, d, n,   k) {
		for (k = 0; k < n; k++) {
			if (dev == A) { a[v + k] = d + k; all[v + k] = 1 }
			if (dev == B) { b[v + k] = d + k; all[v + k] = 1 }
		}
	}
	END {
		n = 0
		for (v in all) keys[++n] = v + 0
		# insertion sort is too slow for big devices; these are small
		for (i = 2; i <= n; i++) { x = keys[i]; for (j = i - 1; j > 0 && keys[j] > x; j--) keys[j + 1] = keys[j]; keys[j + 1] = x }
		cur = ""; start = 0; len = 0
		for (i = 1; i <= n; i++) {
			v = keys[i]
			if ((v in a) && (v in b)) kind = (a[v] == b[v]) ? "" : "remapped"
			else kind = (v in a) ? "only-a" : "only-b"
			if (kind != "" && kind == cur && start + len == v) { len++; continue }
			if (cur != "") print start, len, cur
			cur = kind; start = v; len = 1
		}
		if (cur != "") print start, len, cur
	}' "$1"
}
ranges() { jq -r '.ranges[] | "\(.vbegin) \(.blocks) \(.kind)"' "$1"; }

# --- fixtures against the oracle ---
for pair in snap:1:2 snap:1:3 snap:2:1 presnap:1:2 ref3:1:2 ref3:1:4 ref3:2:4 ref3:4:3 sharedleaf:1:2; do
	f=${pair%%:*} rest=${pair#*:}
	a=${rest%:*} b=${rest#*:}
	thin_dump "$FIXDIR/$f.meta" >"$WORK/$f.xml"
	oracle "$WORK/$f.xml" "$a" "$b" >"$WORK/want"
	run dmr --metadata "$FIXDIR/$f.meta" --data "$FIXDIR/$f.data" --json diff "$a" "$b"
	want_rc=1
	[ -s "$WORK/want" ] || want_rc=0
	expect_rc $want_rc "$f: diff $a $b"
	ranges "$WORK/out" >"$WORK/got"
	if cmp -s "$WORK/want" "$WORK/got"; then ok "$f: diff $a $b: $(wc -l <"$WORK/want") ranges as thin_dump's mappings say"; else
		fail "$f: diff $a $b"; diff "$WORK/want" "$WORK/got" | head; fi
	total=$(awk '{ s += $2 } END { print s + 0 }' "$WORK/want")
	jq -e --argjson t "$total" '.schema == "dmrescue.diff/1" and .differing_blocks == $t and
		.differing_bytes == $t * 65536 and .only_a_blocks + .only_b_blocks + .remapped_blocks == $t and
		.identical == ($t == 0) and .content == false' "$WORK/out" >/dev/null &&
		ok "$f: diff $a $b: JSON totals" || { fail "$f: JSON totals"; cat "$WORK/out"; }
done

# --- --content ---
mkdir -p "$WORK/c"
cp "$FIXDIR/ref3.meta" "$WORK/c/meta"
cp --sparse=always "$FIXDIR/ref3.data" "$WORK/c/data"
thin_dump "$WORK/c/meta" >"$WORK/c.xml"
# data block of virtual block V in device DEV
dblock() {
	awk -v D="$2" -v V="$3" -F'"' '
	function attr(name,   i) { for (i = 1; i < NF; i++) if ($i ~ (" " name "=$")) return $(i + 1); return "" }
	/<device / { dev = attr("dev_id") }
	dev == D && /<single_mapping/ && attr("origin_block") == V { print attr("data_block") }
	dev == D && /<range_mapping/ { o = attr("origin_begin"); l = attr("length"); if (V >= o && V < o + l) print attr("data_begin") + V - o }' "$1"
}
first_remapped=$(oracle "$WORK/c.xml" 1 4 | awk '$3 == "remapped" { print $1; exit }')
first_onlyb=$(oracle "$WORK/c.xml" 1 4 | awk '$3 == "only-b" { print $1; exit }')
da=$(dblock "$WORK/c.xml" 1 "$first_remapped")
db=$(dblock "$WORK/c.xml" 4 "$first_remapped")
dz=$(dblock "$WORK/c.xml" 4 "$first_onlyb")
dd if="$WORK/c/data" of="$WORK/c/data" bs=$B skip="$da" seek="$db" count=1 conv=notrunc 2>/dev/null
dd if=/dev/zero of="$WORK/c/data" bs=$B seek="$dz" count=1 conv=notrunc 2>/dev/null
run dmr --metadata "$WORK/c/meta" --data "$WORK/c/data" --json diff 1 4
plain=$(jq .differing_blocks "$WORK/out")
for io in "" pread; do
	run env ${io:+DMRESCUE_IO=$io} "$DMRESCUE" --metadata "$WORK/c/meta" --data "$WORK/c/data" --json diff --content 1 4
	expect_rc 1 "diff --content ${io:-(default reader)}"
	jq -e --argjson p "$plain" '.content and .same_content_blocks == 2 and .differing_blocks == $p - 2' "$WORK/out" \
		>/dev/null && ok "--content ${io:-(default reader)}: the copied block and the zeroed one are left out" ||
		{ fail "--content"; cat "$WORK/out"; }
	ranges "$WORK/out" | grep -q "^$first_remapped 1 " && fail "--content: block $first_remapped still listed" ||
		ok "--content: block $first_remapped not listed"
done
run dmr --metadata "$FIXDIR/snap.meta" --data "$FIXDIR/snap.data" diff --content 1 2
expect_rc 1 "snap: diff --content 1 2 (every remapped block differs in its bytes)"
grep -q "^--content: 0 blocks that map differently hold the same bytes" "$WORK/out" && ok "says none is the same" ||
	{ fail "--content line"; cat "$WORK/out"; }

# --- the Docker root: what a container wrote ---
thin_dump "$R/devicemapper/devicemapper/metadata" >"$WORK/root.xml"
oracle "$WORK/root.xml" 8 10 >"$WORK/want"
run dmr -r "$R" diff example/app:1.0 web
expect_rc 1 "diff example/app:1.0 web"
sed -n '1,3p' "$WORK/out" | sed 's/hash [0-9a-f]*/hash HASH/' >"$WORK/head"
cat >"$WORK/head.want" <<EOF
A image example/app:1.0, layer 3 of 3 (6fcc06f6a243): thin 8, hash HASH, 20 mapped blocks
B container web (7626d4f33d6a): thin 10, hash HASH, 24 mapped blocks
They differ in 4 blocks of 64KiB (256KiB) in 2 ranges: 0 only in A, 4 only in B, 0 remapped
EOF
cmp -s "$WORK/head.want" "$WORK/head" && ok "human summary" || { fail "human summary"; diff "$WORK/head.want" "$WORK/head"; }
awk 'NR > 4 { split($1, r, "\\.\\."); print r[1], $2, $5 }' "$WORK/out" >"$WORK/got"
cmp -s "$WORK/want" "$WORK/got" && ok "web against its image: the ranges thin_dump gives" ||
	{ fail "web vs image ranges"; diff "$WORK/want" "$WORK/got"; }
run dmr -r "$R" --json diff web example/app:1.0
jq -e '.a.kind == "container" and .b.kind == "image" and .only_a_blocks == 4 and .only_b_blocks == 0' "$WORK/out" \
	>/dev/null && ok "swapped: only in A" || { fail "swapped"; cat "$WORK/out"; }
run dmr -r "$R" diff web web
expect_rc 0 "a device against itself"

# --- errors ---
run dmr -r "$R" diff web
expect_rc 64 "one argument"
run dmr -r "$R" diff web nosuch
expect_rc 3 "unknown B"
run dmr -r "$R" diff 99 web
expect_rc 3 "thin id not in the pool"
run dmr --metadata "$FIXDIR/snap.meta" --data "$FIXDIR/snap.data" diff 1 web
expect_rc 3 "a name without a Docker root"

cmp -s "$FIXDIR/ref3.meta" "$WORK/c/meta" && ok "the metadata copy is unchanged" || fail "metadata changed"
finish
