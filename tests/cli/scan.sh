#!/bin/sh
# dmrescue scan on synthetic Docker roots whose every device and file has a
# known class (tests/fixtures/dockerroot): the classes, the exit status,
# the owners, the filesystem probe, and the report for people.
. "$top_srcdir/tests/cli/lib.sh"
need jq
for scenario in healthy leftovers cstorage; do
	ensure_dockerroot "$scenario"
	root="$ROOTDIR/root"
	run dmr -r "$root" scan --json
	case $scenario in healthy) want=0 ;; *) want=1 ;; esac
	expect_rc "$want" "$scenario: scan --json"
	cp "$WORK/out" "$WORK/$scenario.json"
	if jq -e '.schema == "dmrescue.scan/1"' "$WORK/out" >/dev/null; then ok "$scenario: schema id"; else fail "$scenario: schema id"; fi
	scan_classes "$WORK/out" >"$WORK/got"
	# expect.tsv: thin_id, hash, class, note
	# transients are named by their path: the note's text before ": "
	awk -F'\t' '!/^#/ && NF >= 3 {
		h = $2; if (h == "") h = "base"
		if ($3 == "transient") { h = $4; sub(/: .*/, "", h) }
		print $1 "\t" h "\t" $3 }' "$ROOTDIR/expect.tsv" | sort >"$WORK/want"
	if cmp -s "$WORK/want" "$WORK/got"; then ok "$scenario: every device and file has its expected class"; else
		fail "$scenario: classes differ from expect.tsv"; diff "$WORK/want" "$WORK/got"; fi
	run dmr -r "$root" scan
	expect_rc "$want" "$scenario: scan"
	# The pool name comes from the build directory's device and inode, and
	# what the data file takes on the host depends on its filesystem.
	sed -e "s|$ROOTDIR|ROOT|g" -e 's/\(docker\|container\)-[0-9]*:[0-9]*-[0-9]*-pool/\1-MAJ:MIN-INO-pool/' \
		-e 's/takes [^;]* on disk; .* of it is/takes N on disk; N of it is/' \
		-e 's/, [^,]* of host disk/, N of host disk/' "$WORK/out" >"$WORK/report"
	golden "scan/$scenario.report" "$WORK/report"
done

# Owners and filesystems on the healthy host.
j="$WORK/healthy.json"
if jq -e '[.devices[] | select(.class == "container")] | length == 2 and all(.owners.containers | length == 1)' "$j" >/dev/null; then
	ok "healthy: both containers are named"; else fail "healthy: container owners"; fi
if jq -e '[.devices[] | select(.class == "image-layer")] | all(.owners.images | length >= 1)' "$j" >/dev/null; then
	ok "healthy: every image layer names its images"; else fail "healthy: image owners"; fi
uuid=$(jq -r '.devices[] | select(.class == "base") | .fs.uuid' "$j")
fstype=$(jq -r '.devices[] | select(.class == "base") | .fs.type' "$j")
dsuuid=$(jq -r '.BaseDeviceUUID // empty' "$ROOTDIR/root/devicemapper/metadata/deviceset-metadata")
if [ -n "$uuid" ] && [ "$uuid" = "$dsuuid" ] && [ "$fstype" = xfs ]; then
	ok "healthy: the base filesystem (xfs $uuid) probed through the pool matches BaseDeviceUUID"
else
	fail "healthy: base fs '$fstype' '$uuid', deviceset-metadata says '$dsuuid'"
fi
if jq -e '[.devices[] | select(.thin_id != null and .class != "pool-orphan") | .fs.uuid] | unique | length == 1' "$j" >/dev/null; then
	ok "healthy: every snapshot shares the base's filesystem UUID"; else fail "healthy: snapshot UUIDs"; fi
# Exclusive bytes are what each leftover holds alone.
j="$WORK/leftovers.json"
if jq -e '[.findings[] | select(.thin_id != null)] | all(.reclaim_bytes >= 0)' "$j" >/dev/null &&
	jq -e '.pool.reclaimable_bytes != null' "$j" >/dev/null; then
	ok "leftovers: reclaim figures present"; else fail "leftovers: reclaim figures"; fi
# The reclaimable bytes are exact: an independent count from thin_dump's
# mappings and filefrag's extents of the data file (4 KiB units) gives the
# same figure.
if command -v filefrag >/dev/null 2>&1; then
	ensure_dockerroot leftovers
	pool="$ROOTDIR/root/devicemapper/devicemapper"
	bs=$(sed -n 's/.*data_block_size="\([0-9]*\)".*/\1/p' "$ROOTDIR/pool.xml" | head -n 1)
	per=$((bs * 512 / 4096))
	thin_dump "$pool/metadata" | awk -F'"' '
		/<range_mapping/ { for (i = 0; i < $6; i++) print $4 + i }
		/<single_mapping/ { print $4 }' | sort -u >"$WORK/mapped"
	filefrag -v -b4096 "$pool/data" | awk '$1 ~ /^[0-9]+:$/ {
		split($2 $3, a, /[.:]+/); lo = a[1]; hi = a[2]
		for (b = lo; b <= hi; b++) print b }' >"$WORK/alloc4k"
	want=$(awk -v per="$per" 'NR == FNR { m[$1] = 1; next } { if (!(int($1 / per) in m)) n++ } END { print n * 4096 + 0 }' \
		"$WORK/mapped" "$WORK/alloc4k")
	got=$(jq '.pool.reclaimable_bytes' "$WORK/leftovers.json")
	if [ "$got" = "$want" ] && [ "$want" -gt 0 ]; then ok "leftovers: reclaimable $got bytes, as filefrag and thin_dump count them"; else
		fail "leftovers: reclaimable $got bytes, filefrag and thin_dump say $want"; fi
fi
finish
