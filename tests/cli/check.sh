#!/bin/sh
# dmrescue check: every undamaged fixture is consistent; needs_check and a
# wrong mapped_blocks are found (thin_check 0.9.0 misses both); the Docker
# side of a synthetic root: a healthy host is consistent, the leftovers are
# warnings, and what stops Docker from starting is fatal.
. "$top_srcdir/tests/cli/lib.sh"
need jq
ensure_fixtures
for f in $(fixtures); do
	case $f in needscheck | mappedoff) continue ;; esac
	run dmr --metadata "$FIXDIR/$f.meta" check --json
	if [ "$RC" = 0 ] && jq -e '.verdict == "consistent" and (.findings | length) == 0' "$WORK/out" >/dev/null; then
		ok "$f: consistent"
	else
		fail "$f: check exit $RC"; jq -c '.findings[]' "$WORK/out" | head -5
	fi
done
run dmr --metadata "$FIXDIR/needscheck.meta" check --json
expect_rc 1 "needscheck"
jq -e '[.findings[].code] == ["needs-check-set"]' "$WORK/out" >/dev/null && ok "needscheck: needs-check-set" || fail "needscheck: codes"
run dmr --metadata "$FIXDIR/mappedoff.meta" check --json
expect_rc 2 "mappedoff"
jq -e '[.findings[] | [.code, .dev_id]] == [["mapped-blocks-wrong", 1]]' "$WORK/out" >/dev/null &&
	ok "mappedoff: mapped-blocks-wrong on device 1" || fail "mappedoff: codes"
run dmr --metadata "$FIXDIR/mappedoff.meta" check
sed "s|$FIXDIR/|FIXDIR/|" "$WORK/out" >"$WORK/out.n"
golden check/mappedoff.txt "$WORK/out.n"

# Docker's side.
for scenario in healthy leftovers cstorage; do
	ensure_dockerroot "$scenario"
	run dmr -r "$ROOTDIR/root" check --json
	case $scenario in leftovers) want=1 ;; *) want=0 ;; esac
	expect_rc "$want" "$scenario: check"
	jq -e '.docker_checked' "$WORK/out" >/dev/null && ok "$scenario: Docker's files checked" || fail "$scenario: docker_checked"
	cp "$WORK/out" "$WORK/$scenario.json"
done
codes=$(jq -r '[.findings[] | select(.severity != "info") | .code] | sort | join(",")' "$WORK/leftovers.json")
want=docker-hollow-file,docker-open-transaction,docker-pool-orphan,docker-pool-orphan
[ "$codes" = "$want" ] && ok "leftovers: $codes" || fail "leftovers: codes $codes, expected $want"

ensure_dockerroot healthy
r="$WORK/broken"
cp -a "$ROOTDIR/root" "$r"
sed -i 's/"BaseDeviceUUID":"[^"]*"/"BaseDeviceUUID":"11111111-2222-3333-4444-555555555555"/' "$r/devicemapper/metadata/deviceset-metadata"
layer=$(ls -d "$r"/image/devicemapper/layerdb/sha256/* | head -n 1)
mv "$r/devicemapper/metadata/$(cat "$layer/cache-id")" "$WORK/moved"
rm -rf "$(ls -d "$r"/image/devicemapper/layerdb/mounts/* | head -n 1)"
run dmr -r "$r" check --json
expect_rc 2 "broken host"
for code in docker-base-uuid-mismatch docker-layer-device-missing docker-container-mount-missing docker-pool-orphan; do
	jq -e --arg c "$code" 'any(.findings[]; .code == $c)' "$WORK/out" >/dev/null && ok "broken host: $code" || fail "broken host: no $code"
done
jq -e '.findings[] | select(.code == "docker-base-uuid-mismatch") | .severity == "fatal"' "$WORK/out" >/dev/null &&
	ok "a base UUID mismatch is fatal (Docker will not start)" || fail "base uuid severity"
jq -e 'any(.findings[]; .code == "docker-container-mount-missing" and (.message | contains("no read-write layer record: Docker skips it")))' \
	"$WORK/out" >/dev/null && ok "a container without layerdb/mounts/<id>: Docker skips it" || fail "mount record message"
# The record kept, the device's metadata file gone (removed by hand): Docker
# lists the container and fails to mount it.
r3="$WORK/nodev"
cp -a "$ROOTDIR/root" "$r3"
m=$(ls -d "$r3"/image/devicemapper/layerdb/mounts/* | head -n 1)
rm "$r3/devicemapper/metadata/$(cat "$m/mount-id")"
run dmr -r "$r3" check --json
jq -e --arg id "$(cat "$m/mount-id")" 'any(.findings[]; .code == "docker-container-mount-missing" and
	(.message | contains("read-write layer " + $id + " has no metadata file: Docker lists it but cannot start it")))' \
	"$WORK/out" >/dev/null && ok "a container whose device file is gone: listed, cannot start" || fail "device file message"
printf 'x' >"$r/devicemapper/metadata/deviceset-metadata"
run dmr -r "$r" check --json
jq -e 'any(.findings[]; .code == "docker-deviceset-metadata" and .severity == "fatal")' "$WORK/out" >/dev/null &&
	ok "an unparsable deviceset-metadata is fatal" || fail "deviceset-metadata finding"
# next_device_id is stale on the crashed host: worth a line, not a warning.
jq -e 'any(.findings[]; .code == "docker-deviceset-metadata" and .severity == "info")' "$WORK/leftovers.json" >/dev/null &&
	ok "leftovers: a stale next_device_id is an info line" || fail "leftovers: next_device_id"
# A file in a subdirectory of metadata/ stops Docker from starting.
r2="$WORK/stray"
cp -a "$ROOTDIR/root" "$r2"
mkdir "$r2/devicemapper/metadata/old"
printf '{"device_id":3}' >"$r2/devicemapper/metadata/old/backup"
run dmr -r "$r2" check --json
expect_rc 2 "stray file"
jq -e 'any(.findings[]; .code == "docker-bad-file" and .severity == "fatal" and (.message | contains("metadata/old/backup")))' \
	"$WORK/out" >/dev/null && ok "a stray file under metadata/ is fatal" || fail "stray file finding"
run dmr --metadata "$WORK/nonexistent" check
expect_rc 3 "missing metadata"
finish
