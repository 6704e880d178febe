# Helpers of the clean tests (sourced after lib.sh).

# A private copy of the leftovers root in $WORK/r: R, META, DATA.
fresh() {
	rm -rf "$WORK/r"
	cp -a --sparse=always "$ROOTDIR/root" "$WORK/r"
	R="$WORK/r"
	META="$R/devicemapper/devicemapper/metadata"
	DATA="$R/devicemapper/devicemapper/data"
}

# Every file, directory and link under a root, one line each: "HASH PATH"
# (file content), "dir PATH", "link:TARGET PATH". The data file is named by
# size and mtime (clean never opens it for writing; hash_devices checks
# what the devices hold); big sparse files by their non-zero blocks. Our own lock and backups are left out.
state() {
	(cd "$1" && {
		skip='-path ./devicemapper/dmrescue-backup -prune -o -name .dmrescue.lock -prune -o'
		# shellcheck disable=SC2086
		find . $skip -type d -printf 'dir %P\n' -o -type l -printf 'link:%l %P\n'
		# shellcheck disable=SC2086
		find . $skip -type f -path ./devicemapper/devicemapper/data -printf 'data:%s:%T@ %P\n'
		# shellcheck disable=SC2086
		find . $skip -type f -size -1025k -print0 | xargs -0 -r sha256sum | sed 's|^\([0-9a-f]*\)  \./|\1 |'
		# shellcheck disable=SC2086
		find . $skip -type f -size +1024k ! -path ./devicemapper/devicemapper/data -print |
			while IFS= read -r p; do echo "$("$top_builddir/tests/fixtures/fixturepp" hash-sparse "$p") ${p#./}"; done
	} | grep -v '^dir $' | LC_ALL=C sort -k2)
}

# Per device of the root's pool: "DEV SHA256" of what it maps.
hash_devices() {
	"$top_builddir/tests/fixtures/fixturepp" hash-devices "$1/devicemapper/devicemapper/metadata" \
		"$1/devicemapper/devicemapper/data"
}

meta_used() {
	"$top_builddir/tests/fixtures/fixturepp" info "$1" | awk '$1 == "metadata_blocks_used" { print $2 }'
}

# The pool of root $1 after removing devices "$3" from the state dumped in
# $2: thin_check and dmrescue check accept it, and thin_dump equals the
# reference (the same devices dropped from the XML, thin_restore'd).
verify_removed() {
	vr_root=$1 vr_xml=$2 vr_ids=$3 vr_tag=$4
	vr_meta="$vr_root/devicemapper/devicemapper/metadata"
	if thin_check -q "$vr_meta" 2>"$WORK/tc.err"; then ok "$vr_tag: thin_check accepts the rewritten metadata"; else
		fail "$vr_tag: thin_check rejects it"; cat "$WORK/tc.err"; fi
	if dmr --metadata "$vr_meta" --data "$vr_root/devicemapper/devicemapper/data" check -q >"$WORK/ck.out" 2>&1; then
		ok "$vr_tag: dmrescue check is clean (data reference counts included)"; else
		fail "$vr_tag: dmrescue check"; cat "$WORK/ck.out"; fi
	awk -v ids=" $vr_ids " '
		/<device dev_id="/ { id = $0; sub(/.*dev_id="/, "", id); sub(/".*/, "", id); drop = index(ids, " " id " ") > 0 }
		!drop { print }
		/<\/device>/ { drop = 0 }' "$vr_xml" >"$WORK/ref.xml"
	rm -f "$WORK/ref.meta"
	truncate -s "$(stat -c %s "$vr_meta")" "$WORK/ref.meta"
	thin_restore -q -i "$WORK/ref.xml" -o "$WORK/ref.meta" >/dev/null 2>&1 || thin_restore -i "$WORK/ref.xml" -o "$WORK/ref.meta" >/dev/null
	thin_dump "$WORK/ref.meta" >"$WORK/ref.dump"
	thin_dump "$vr_meta" >"$WORK/got.dump"
	if cmp -s "$WORK/ref.dump" "$WORK/got.dump"; then
		ok "$vr_tag: devices and mappings equal the reference (thin_dump, drop, thin_restore)"; else
		fail "$vr_tag: thin_dump differs from the reference"; diff "$WORK/ref.dump" "$WORK/got.dump" | head -20; fi
}

# BuildKit's other databases in root $1, written with the test writer:
# metadata_v2.db with one cache record whose snapshot is $2 (and a value
# naming $3 when given), containerdmeta.db with one lease on snapshot $4
# (none when empty). Keys of 25 a's name nothing in the leftovers root.
bk_dbs() {
	bk_boltfix="$top_builddir/tests/fixtures/buildkit/boltfix"
	bk_rec=aaaaaaaaaaaaaaaaaaaaaaaaa
	"$bk_boltfix" put "$1/buildkit/metadata_v2.db" "_main/$bk_rec/cache.snapshot={\"value\":\"$2\"}" \
		"_main/$bk_rec/cache.description={\"value\":\"[2/3] RUN make\"}" \
		${3:+"_main/$bk_rec/cache.mergeParents={\"value\":[\"$3\"]}"} "_index/" || return 1
	if [ -n "$4" ]; then
		"$bk_boltfix" put "$1/buildkit/containerdmeta.db" "v1/buildkit/leases/$bk_rec/snapshots/default/$4="
	else
		"$bk_boltfix" put "$1/buildkit/containerdmeta.db" "v1/buildkit/leases/"
	fi
}
