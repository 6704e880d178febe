#!/bin/sh
# The corruption corpus: every case damages one fixture precisely with
# `fixturepp corrupt` (see tests/fixtures/README.md), then `dmrescue check`
# (text and --json) must give the exit code and the findings stated here:
#
#   has SEV CODE BLOCK DEV   this finding must be there (- = null, * = any),
#                            and a text line "SEV CODE: ..." naming the block
#   may SEV CODE [BLOCK]     a consequence that may also be reported
#   says CODE TEXT           a text line of CODE contains TEXT
#   hedged                   leak findings say the damage above may hold them
#   done_case                nothing else was reported; adds the table row
#
# The expectations state what is right, not what check happens to print: a
# failure here is a checker bug to fix, not a line to edit. Every undamaged
# fixture must be consistent (needscheck: needs-check-set; mappedoff:
# mapped-blocks-wrong). thin_check 0.9.0 runs on every case too, and the
# comparison table goes to $WORK/corpus-table.txt, to the log, and against
# the golden tests/cli/expected/check/corpus-table.txt.
. "$top_srcdir/tests/cli/lib.sh"
need jq thin_check
ensure_fixtures
PP="$top_builddir/tests/fixtures/fixturepp"
TABLE="$WORK/corpus-table.txt"

u64() { od -An -t u8 -j "$2" -N 8 "$1" | tr -d ' '; }

# The value of NAME= in the current case's fixturepp line.
ppval() { sed -n "s/^corrupt .* $1=\([^ ]*\).*/\1/p" "$WORK/$CASE.pp"; }

# thin_check's first two lines that are not progress, joined with " / ".
tc_says() {
	grep -v -e '^examining ' -e '^TRANSACTION_ID=' -e '^METADATA_FREE_BLOCKS=' -e '^checking space map counts' \
		-e '^[[:space:]]*$' "$1" | head -n 2 | sed -e 's/^[[:space:]]*//' -e "s|$WORK/||g" |
		awk 'NR > 1 { printf " / " } { printf "%s", $0 } END { if (NR == 0) printf "-" }'
}

# One dmrescue.check/1 document (jq 1.6 -e passes an empty file).
is_doc() { [ "$(jq -r '.schema' "$1" 2>/dev/null)" = dmrescue.check/1 ]; }

# check's verdict and findings for the table: "verdict: sev:code[xN] ...",
# or its stderr when it printed no document.
check_says() { # json stderr
	if is_doc "$1"; then
		jq -r '.verdict + ": " + ([.findings[] | .severity + ":" + .code] | group_by(.) |
			map(if length > 1 then "\(.[0])x\(length)" else .[0] end) | join(" ") |
			if . == "" then "-" else . end)' "$1"
	else
		printf '(no JSON document) %s\n' "$(head -n 1 "$2" | sed -e "s|$WORK/||g" -e "s|$FIXDIR/||g")"
	fi
}

row() { # case fixture thin_check-rc thin_check-says check-rc check-says as-expected
	printf '%s | %s | %s | %s | %s | %s | %s\n' "$@" >>"$TABLE"
}
printf 'case | fixture | thin_check 0.9.0 exit | thin_check says | check exit | check verdict: findings | as expected\n' >"$TABLE"

# mk NAME FIXTURE CORRUPT-CASE [ARGS...]: the damaged copy, fixturepp's
# line (B, D, K: its block, dev and keys), check in both forms, thin_check.
mk() {
	CASE=$1 FIX=$2
	shift 2
	CASE_FAILS=$FAILS
	ALLOWED=
	m="$WORK/$CASE.meta"
	cp --sparse=always "$FIXDIR/$FIX.meta" "$m"
	cc=$1
	shift
	if ! "$PP" corrupt "$cc" "$m" "$@" >"$WORK/$CASE.pp" 2>"$WORK/err" || ! grep -q '^corrupt case=' "$WORK/$CASE.pp"; then
		fail "$CASE: fixturepp corrupt $cc $*: $(cat "$WORK/err")"
	fi
	B=$(ppval block) D=$(ppval dev) K=$(ppval keys)
	dmr --metadata "$m" check >"$WORK/$CASE.txt" 2>"$WORK/$CASE.err"
	RC_T=$?
	dmr --metadata "$m" check --json >"$WORK/$CASE.json" 2>"$WORK/$CASE.jerr"
	RC_J=$?
	if is_doc "$WORK/$CASE.json"; then
		jq -r '.findings[] | [.severity, .code, (.block // "-" | tostring), (.dev_id // "-" | tostring)] | join(" ")' \
			"$WORK/$CASE.json" >"$WORK/$CASE.f"
	else
		fail "$CASE: --json printed no dmrescue.check/1 document ($(head -n 1 "$WORK/$CASE.jerr"))"
		: >"$WORK/$CASE.f"
	fi
	thin_check "$m" >"$WORK/$CASE.tc" 2>&1
	TC_RC=$?
}

rc() {
	if [ "$RC_T" = "$1" ] && [ "$RC_J" = "$1" ]; then
		ok "$CASE: exit $1"
	else
		fail "$CASE: exit $RC_T (text), $RC_J (--json), expected $1"
		sed 's/^/  stderr: /' "$WORK/$CASE.err"
	fi
}

# A text line of CODE naming block N (not N followed by more digits).
names_block() { grep -q -- "^[a-z]* $1: .*block $2\([^0-9]\|$\)" "$WORK/$CASE.txt"; }

has() { # SEV CODE BLOCK DEV
	ALLOWED="$ALLOWED|$1 $2 $3"
	if awk -v s="$1" -v c="$2" -v b="$3" -v d="$4" '
		$1 == s && $2 == c && (b == "*" || $3 == b) && (d == "*" || $4 == d) { found = 1 }
		END { exit !found }' "$WORK/$CASE.f"; then
		ok "$CASE: $1 $2, block $3, device $4"
	else
		fail "$CASE: no finding '$1 $2' with block $3 and device $4; found: $(tr '\n' ';' <"$WORK/$CASE.f" | cut -c1-300)"
	fi
	if ! grep -q -- "^$1 $2: " "$WORK/$CASE.txt"; then
		fail "$CASE: no text line '$1 $2: ...'"
	elif [ "$3" != - ] && [ "$3" != "*" ] && ! names_block "$2" "$3"; then
		fail "$CASE: the $2 line does not name block $3: $(grep -m 1 -- "^$1 $2: " "$WORK/$CASE.txt")"
	else
		ok "$CASE: text line '$1 $2: ...'"
	fi
}

may() { ALLOWED="$ALLOWED|$1 $2 ${3:-*}"; }

says() { # CODE TEXT
	if grep -- "^[a-z]* $1: " "$WORK/$CASE.txt" | grep -qF -- "$2"; then
		ok "$CASE: $1 says '$2'"
	else
		fail "$CASE: no $1 line says '$2': $(grep -m 1 -- "^[a-z]* $1: " "$WORK/$CASE.txt")"
	fi
}

# The node holding a bad pointer must be named: the only block to repair.
names() { # CODE BLOCK
	if names_block "$1" "$2"; then ok "$CASE: $1 names block $2"; else
		fail "$CASE: the $1 finding does not name block $2: $(grep -m 1 -- "^[a-z]* $1: " "$WORK/$CASE.txt")"
	fi
}

# Leaks that may only be the damaged nodes' children must say so.
hedged() {
	is_doc "$WORK/$CASE.json" || return 0 # already failed in mk
	if is_doc "$WORK/$CASE.json" && jq -e '[.findings[] | select(.code == "metadata-leak" or .code == "data-leak")
		| select(.message | (startswith("and ") or contains("damaged nodes above")) | not)] | length == 0' \
		"$WORK/$CASE.json" >/dev/null 2>&1; then
		ok "$CASE: leaks are hedged"
	else
		fail "$CASE: a leak next to tree damage does not say the damage may hold it"
	fi
}

done_case() {
	bad=$(awk -v allowed="$ALLOWED" '
		BEGIN { n = split(allowed, a, "|"); for (i = 1; i <= n; i++) if (a[i] != "") okset[a[i]] = 1 }
		!(($1 " " $2 " " $3) in okset) && !(($1 " " $2 " *") in okset) { print }' "$WORK/$CASE.f" | sort | uniq -c |
		awk '{ printf "%s%s %s block %s device %s (x%s)", sep, $2, $3, $4, $5, $1; sep = "; " }')
	if [ -z "$bad" ]; then ok "$CASE: nothing else reported"; else fail "$CASE: also reported: $(echo "$bad" | cut -c1-400)"; fi
	nt=$(grep -c -E '^(info|warning|fatal) [a-z-]+: ' "$WORK/$CASE.txt")
	nj=$(wc -l <"$WORK/$CASE.f" | tr -d ' ')
	[ "$nt" = "$nj" ] && ok "$CASE: text and JSON list the same $nj findings" ||
		fail "$CASE: $nt text findings, $nj in the JSON"
	[ "$FAILS" = "$CASE_FAILS" ] && as=yes || as=NO
	row "$CASE" "$FIX" "$TC_RC" "$(tc_says "$WORK/$CASE.tc")" "$RC_J" "$(check_says "$WORK/$CASE.json" "$WORK/$CASE.jerr")" "$as"
}

# ---- one bit flipped, checksum left stale, in a block of each type ----

mk flip-superblock snap flip superblock
rc 2
has fatal superblock 0 -
done_case

# A non-root details leaf: its devices' details are lost with it, which is
# not the same as devices without details.
mk flip-details-leaf manydevs flip details-leaf 150
rc 2
has fatal bad-node "$B" -
says bad-node "keys $K lost"
done_case

mk flip-top-leaf manydevs flip top-leaf 150
rc 2
has fatal bad-node "$B" -
says bad-node "keys $K lost"
may warning metadata-leak
may warning data-leak
may warning data-count-high
hedged
done_case

mk flip-bottom-internal snap flip bottom-internal 3
rc 2
has fatal bad-node "$B" "$D"
says bad-node "virtual blocks $K of device $D lost"
may warning metadata-leak
may warning data-leak
hedged
done_case

mk flip-bottom-leaf bigdev flip bottom-leaf 1 4224
rc 2
has fatal bad-node "$B" "$D"
says bad-node "virtual blocks $K of device $D lost"
may warning data-leak
hedged
done_case

# Space map blocks: one finding for the damaged block, and "counts unknown"
# for what it covers; no finding may name a block that is not concerned.
mk flip-data-index snap flip data-index
rc 2
has fatal space-map-damaged "$B" -
may fatal bad-node "$B"
may warning metadata-leak
hedged
done_case

mk flip-data-index-leaf bigsm flip data-index 100
rc 2
has fatal space-map-damaged "$B" -
may fatal bad-node "$B"
may warning metadata-leak
hedged
done_case

mk flip-data-bitmap snap flip data-bitmap 0
rc 2
has fatal space-map-damaged "$B" -
says space-map-damaged "counts of blocks $K unknown"
done_case

mk flip-metadata-index snap flip metadata-index
rc 2
has fatal space-map-damaged "$B" -
done_case

mk flip-metadata-bitmap snap flip metadata-bitmap 0
rc 2
has fatal space-map-damaged "$B" -
says space-map-damaged "counts of blocks $K unknown"
done_case

mk flip-data-overflow ref3 flip data-overflow
rc 2
has fatal space-map-damaged "$B" -
may fatal bad-node "$B"
done_case

mk flip-metadata-overflow shared3 flip metadata-overflow
rc 2
has fatal space-map-damaged "$B" -
may fatal bad-node "$B"
done_case

# ---- the file cut short ----

# Only free blocks cut: the kernel still refuses the pool (metadata device
# smaller than its space map); everything else checks out.
mk truncate-tail snap truncate 64
rc 2
has fatal metadata-size "*" -
done_case

# Blocks in use cut: devices 2 and 3 lose their trees (blocks 12 and 13).
mk truncate-used snap truncate 12
rc 2
has fatal metadata-size "*" -
has fatal node-out-of-range "*" 2
has fatal node-out-of-range "*" 3
names node-out-of-range 12
names node-out-of-range 13
may warning metadata-leak
may warning data-leak
may warning data-count-high
hedged
done_case

# ---- bad pointers ----

mk self-pointer snap self-pointer 3
rc 2
has fatal tree-cycle "$B" "$D"
says tree-cycle "virtual blocks $K of device $D lost"
may warning metadata-leak
may warning data-leak
hedged
done_case

mk child-beyond snap child-beyond 3
rc 2
has fatal node-out-of-range "*" "$D"
says node-out-of-range "virtual blocks $K of device $D lost"
names node-out-of-range "$B"
says node-out-of-range "$(ppval child | sed 's/.*->//')"
may warning metadata-leak
may warning data-leak
hedged
done_case

# ---- reference counts ----

mk data-leak snap data-count 150 1
rc 1
has warning data-leak - -
says data-leak "data block 150 "
done_case

mk data-undercount snap data-count 0 1
rc 2
has fatal data-count-low - -
says data-count-low "data block 0 "
done_case

mk data-overcount snap data-count 200 2
rc 1
has warning data-count-high - -
says data-count-high "data block 200 "
done_case

mk data-mapped-free snap data-count 300 0
rc 2
has fatal data-count-low - -
says data-count-low "data block 300 "
done_case

mk data-undercount-overflow ref3 data-count 0 2
rc 2
has fatal data-count-low - -
says data-count-low "data block 0 "
done_case

mk meta-undercount snap meta-count 11 0
rc 2
has fatal metadata-count-low "$B" -
done_case

mk meta-overcount snap meta-count 11 2
rc 1
has warning metadata-count-high "$B" -
done_case

mk meta-leak snap meta-count 100 1
rc 1
has warning metadata-leak "$B" -
done_case

# The root leaf devices 1 and 2 share (count 2) set back to 1.
s=$FIXDIR/sharedleaf.meta
mk meta-undercount-shared sharedleaf meta-count "$(u64 "$s" $(($(u64 "$s" 320) * 4096 + 2048)))" 1
rc 2
has fatal metadata-count-low "$B" -
done_case

# The top-level root a held metadata snapshot shares (count 2) set back to 1.
mk meta-undercount-metasnap metasnap meta-count "$(u64 "$FIXDIR/metasnap.meta" 320)" 1
rc 2
has fatal metadata-count-low "$B" -
done_case

# ---- mapped_blocks ----

mk mapped-blocks-plus snap mapped-blocks 1 +1
rc 2
has fatal mapped-blocks-wrong "*" 1
says mapped-blocks-wrong "details say 101 mapped blocks, its tree holds 100 mappings"
done_case

mk mapped-blocks-minus snap mapped-blocks 1 -1
rc 2
has fatal mapped-blocks-wrong "*" 1
says mapped-blocks-wrong "details say 99 mapped blocks, its tree holds 100 mappings"
done_case

# ---- keys ----

mk keys-unsorted bigdev keys-unsorted 1 4350
rc 2
has fatal bad-node "$B" "$D"
says bad-node "virtual blocks $K of device $D lost"
may warning data-leak
hedged
done_case

mk internal-keys-unsorted snap internal-keys-unsorted 3
rc 2
has fatal bad-node "$B" "$D"
says bad-node "virtual blocks $K of device $D lost"
may warning metadata-leak
may warning data-leak
hedged
done_case

# Leaf 0 of device 3 ends with key 130, inside its sibling's range 126..:
# the leaf that breaks its parent's range is the one to name.
mk keys-overlap snap keys-overlap 3
rc 2
has fatal key-outside-parent-range "$B" "$D"
says key-outside-parent-range "virtual blocks $K of device $D lost"
may warning data-leak
hedged
done_case

# ---- node header fields (device 1's root leaf, resealed) ----

for c in value-size blocknr nr-entries; do
	mk "$c" snap "$c" 1
	rc 2
	has fatal bad-node "$B" "$D"
	says bad-node "virtual blocks $K of device $D lost"
	may warning data-leak
	may warning data-count-high
	hedged
	done_case
done

# ---- a data bitmap missing from the index ----

# The index entry of bitmap 1 points at block 0 (the superblock): the entry
# is wrong, in the index leaf; nothing is outside the metadata.
mk bitmap-missing-zero bigsm bitmap-missing 1 zero
rc 2
has fatal space-map-damaged "$B" -
says space-map-damaged "counts of blocks $K unknown"
may warning metadata-leak "$(ppval bitmap_block | sed 's/->.*//')"
done_case

# The index entry of bitmap 0 points at a free block (a stale node).
mk bitmap-missing-free snap bitmap-missing 0 free
rc 2
new=$(ppval bitmap_block | sed 's/.*->//')
has fatal space-map-damaged "$new" -
says space-map-damaged "counts of blocks $K unknown"
may fatal metadata-count-low "$new"
may warning metadata-leak "$(ppval bitmap_block | sed 's/->.*//')"
done_case

# ---- the superblock flag, device sets, the pool's end, underfull ----

mk needs-check snap needs-check
rc 1
has warning needs-check-set 0 -
done_case

mk details-only snap drop-mapping-tree 2
rc 2
has fatal device-without-mapping-tree "*" "$D"
done_case

mk mapping-only snap drop-details 2
rc 2
has fatal device-without-details "*" "$D"
done_case

mk mapping-beyond snap mapping-beyond 3 5000
rc 2
has fatal mapping-beyond-pool "$B" "$D"
says mapping-beyond-pool "virtual block 5000 maps to data block $(ppval data_block | sed 's/.*->//')"
done_case

mk underfull snap underfull 3 200 76
rc 1
has warning underfull-node "$B" "$D"
done_case

# ---- every undamaged fixture ----

for f in $(fixtures); do
	CASE=$f FIX=$f CASE_FAILS=$FAILS
	m="$FIXDIR/$f.meta"
	dmr --metadata "$m" check >"$WORK/$f.txt" 2>"$WORK/$f.err"
	RC_T=$?
	dmr --metadata "$m" check --json >"$WORK/$f.json" 2>"$WORK/$f.err"
	RC_J=$?
	codes=$(jq -r '[.findings[] | .severity + " " + .code + " " + (.dev_id // "-" | tostring)] | join(",")' "$WORK/$f.json" 2>/dev/null)
	case $f in
	needscheck) want_rc=1 want_codes="warning needs-check-set -" ;;
	mappedoff) want_rc=2 want_codes="fatal mapped-blocks-wrong 1" ;;
	*) want_rc=0 want_codes= ;;
	esac
	if [ "$RC_T" = "$want_rc" ] && [ "$RC_J" = "$want_rc" ] && [ "$codes" = "$want_codes" ]; then
		ok "$f: exit $want_rc${want_codes:+, $want_codes}"
	else
		fail "$f: exit $RC_T/$RC_J, findings '$codes'; expected exit $want_rc, '$want_codes'"
	fi
	[ "$want_rc" != 0 ] || ! grep -q -E '^(info|warning|fatal) ' "$WORK/$f.txt" || fail "$f: text findings on an undamaged pool"
	thin_check "$m" >"$WORK/$f.tc" 2>&1
	TC_RC=$?
	[ "$FAILS" = "$CASE_FAILS" ] && as=yes || as=NO
	# bench is opt-in (FIXTURES_BENCH=1): asserted, kept out of the golden table
	[ "$f" = bench ] || row "(fixture) $f" "$f" "$TC_RC" "$(tc_says "$WORK/$f.tc")" "$RC_J" "$(check_says "$WORK/$f.json" "$WORK/$f.err")" "$as"
done

# ---- the comparison table ----

cat "$TABLE"
if thin_check -V 2>/dev/null | grep -qx '0.9.0'; then
	golden check/corpus-table.txt "$TABLE"
else
	echo "thin_check is not 0.9.0 ($(thin_check -V 2>&1 | head -n 1)): the table is not compared with the golden file"
fi
finish
