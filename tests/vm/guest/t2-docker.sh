#!/bin/sh
# Test 2, real Docker. dockerd 20.10 (Debian's docker.io) with the
# devicemapper driver on a small loop-lvm pool: an imported busybox image,
# built layers, containers run, committed and removed. Then the leftovers of
# issue 7: the metadata file of a container's device deleted by hand, the
# pool filled by two containers until it runs out of data space, dockerd
# killed with -9 inside a create/remove loop on the full pool while a
# container runs. dmrescue teardown refuses while dockerd runs, and after the
# kill takes down the mounts, devices, pool and loops. Offline: dmrescue
# scan, check, clean (the orphaned device; the damaged container and the
# fillers by name; the rest of the kill's leftovers with --all), reclaim.
# Then dockerd must start again with the same images and containers minus
# the removed ones, they must still run, and docker info must show the pool
# space clean freed.
. /vmwork/tests/lib.sh
set -x

S=$DMR_SCRATCH
DR=$S/docker
mkdir -p "$S" "$DR"

dockerd_pid=
start_dockerd() {
	dockerd --data-root "$DR" --storage-driver=devicemapper \
		--iptables=false --ip-masq=false --ip-forward=false --bridge=none \
		--storage-opt dm.loopdatasize=3G --storage-opt dm.loopmetadatasize=128M \
		--storage-opt dm.basesize=2G >>"$S/dockerd.log" 2>&1 &
	dockerd_pid=$!
	i=0
	while ! docker info >/dev/null 2>&1; do
		i=$((i + 1))
		if [ "$i" -gt 120 ] || ! kill -0 "$dockerd_pid" 2>/dev/null; then
			tail -n 30 "$S/dockerd.log"
			return 1
		fi
		sleep 1
	done
}
stop_dockerd() {
	kill "$dockerd_pid" 2>/dev/null
	i=0
	while kill -0 "$dockerd_pid" 2>/dev/null && [ "$i" -lt 60 ]; do
		sleep 1
		i=$((i + 1))
	done
	wait "$dockerd_pid" 2>/dev/null
	# the containerd dockerd started for itself
	for p in $(pidof containerd); do kill "$p"; done
	sleep 2
}
# What a killed dockerd leaves, taken down by hand: only the EXIT trap and
# the fallback after a teardown that left something use it.
offline() {
	takedown "$DR" docker- "$DR/devicemapper/devicemapper/data" "$DR/devicemapper/devicemapper/metadata"
	sleep 1
}
# dinfo FIELD: a "FIELD: value" line of docker info (a daemon hung on a full
# pool does not answer: give up after a while).
dinfo() { timeout 120 docker info 2>/dev/null | sed -n "s/^ *$1: //p"; }
# Bytes from docker info's sizes: go-units HumanSize, SI units (kB = 1000),
# 4 significant digits ("2.899GB", "96.93MB", "0B").
si_bytes() {
	echo "$1" | awk '{ v = $0 + 0; u = $0; sub(/^[0-9.]+/, "", u)
		m["B"] = 1; m["kB"] = 1e3; m["MB"] = 1e6; m["GB"] = 1e9; m["TB"] = 1e12
		if (!(u in m)) exit 1
		printf "%.0f\n", v * m[u] }'
}
cleanup() {
	[ -n "$dockerd_pid" ] && kill -9 "$dockerd_pid" 2>/dev/null
	for p in $(pidof containerd); do kill -9 "$p"; done
	offline
}
trap cleanup EXIT

# --- a Docker host with images and containers -------------------------------
t0=$(date +%s)
check "dockerd starts with the devicemapper driver" start_dockerd
docker info 2>/dev/null | grep -E 'Storage Driver|Pool Name|Data Space|Data loop'
docker info 2>/dev/null | grep -q 'Storage Driver: devicemapper' || { fail "docker info reports devicemapper"; exit 1; }

mkdir -p "$S/rootfs/bin" "$S/rootfs/tmp" "$S/rootfs/etc"
cp -L /bin/busybox "$S/rootfs/bin/busybox"
for a in $(/bin/busybox --list); do
	[ "$a" = busybox ] || ln -s busybox "$S/rootfs/bin/$a"
done
ls -l "$S/rootfs/bin/busybox" "$S/rootfs/bin/sh"
echo 'root:x:0:0:root:/:/bin/sh' >"$S/rootfs/etc/passwd"
must sh -c "tar -C '$S/rootfs' -c . | docker import - bb:base"
mkdir -p "$S/ctx"
cat >"$S/ctx/Dockerfile" <<'EOF'
FROM bb:base
RUN mkdir /data && echo hello >/data/hello && head -c 3145728 /dev/urandom >/data/blob
EOF
must docker build -q -t img1 "$S/ctx"
printf 'FROM img1\nRUN echo layer2 >/data/l2 && sha256sum /data/blob >/data/blob.sum\n' >"$S/ctx/Dockerfile"
must docker build -q -t img2 "$S/ctx"
must docker run --network none --name keep1 img2 sh -c 'echo c1 >/c1file && sha256sum -c /data/blob.sum'
must docker commit keep1 img3
must docker create --network none --name keep2 img2 sleep 3600
must docker run --rm --network none img1 true
must docker run --network none --name gone img1 sh -c 'head -c 2097152 /dev/urandom >/x'
must docker rm gone
must docker build -q -t img4 - <<'EOF'
FROM img2
RUN head -c 4194304 /dev/urandom >/data/more
EOF
must docker rmi img4
must docker run --network none --name victim img1 sh -c 'head -c 8388608 /dev/urandom >/victim.dat'
note "building the Docker host took $(($(date +%s) - t0)) s"
POOLNAME=$(docker info 2>/dev/null | sed -n 's/^ *Pool Name: //p')
BLOCK=$(($(dmsetup table "$POOLNAME" | awk '{ print $6 }') * 512))
TOTAL=$(pool_data_total "$POOLNAME")

# --- leftovers: a container's metadata file deleted by hand -------------------
# victim's read-write device stays in the pool with no file naming it (a pool
# orphan); its container, layerdb mount and -init device remain.
VID=$(docker inspect -f '{{.GraphDriver.Data.DeviceId}}' victim)
VHASH=$(docker inspect -f '{{.GraphDriver.Data.DeviceName}}' victim)
VHASH=${VHASH##*-}
VCID=$(docker inspect -f '{{.Id}}' victim)
cat "$DR/devicemapper/metadata/$VHASH"
echo
must grep -q "\"device_id\":$VID," "$DR/devicemapper/metadata/$VHASH"
must rm "$DR/devicemapper/metadata/$VHASH"

# --- teardown refuses while dockerd runs --------------------------------------
# A container running when dockerd dies (its mount under mnt/ is live, its
# thin device open), and a removal of its device deferred until its last
# close (as dockerd's dm.use_deferred_removal leaves them).
DEVNAME=$(docker inspect -f '{{.GraphDriver.Data.DeviceName}}' keep2)
must docker start keep2
ctr_pid=$(docker inspect -f '{{.State.Pid}}' keep2)
must dmsetup remove --deferred "$DEVNAME"
dmsetup info "$DEVNAME"
dmsetup ls | sort >"$S/dm.live"
dmrescue -r "$DR" teardown --yes >"$S/td-live.txt" 2>&1
rc=$?
cat "$S/td-live.txt"
check "dmrescue teardown refuses while dockerd runs (exit $rc, want 5)" test "$rc" -eq 5
check "the refused teardown changed nothing (dmsetup ls)" sh -c "dmsetup ls | sort | cmp -s - '$S/dm.live'"
check "dockerd still answers after the refused teardown" docker info -f '{{.Driver}}'

# --- leftovers: fill the pool, kill -9 inside a create/remove loop -------------
# Two containers write zeros until their writes fail (each filesystem is
# 2 GiB, the pool 3 GiB). From 70% a create/remove loop runs (Docker refuses
# new devices below 10% free, so it fails from there on); once the pool is
# out of data space dockerd is killed with -9 inside that loop.
t_fill=$(date +%s)
filler_pids=
for f in filler1 filler2; do
	must docker run -d --network none --name "$f" img1 sh -c 'dd if=/dev/zero of=/fill bs=1M; sync'
	filler_pids="$filler_pids $(docker inspect -f '{{.State.Pid}}' "$f")"
done
docker images --format '{{.Repository}}:{{.Tag}} {{.ID}}' | sort >"$S/images.before"
docker ps -a --format '{{.Names}} {{.Image}}' | sort >"$S/containers.before"
cat "$S/images.before" "$S/containers.before"
# The fillers' container processes (pid 1 of their pid namespaces: sh, with
# dd under it).
fillers_alive() {
	for _p in $filler_pids; do
		kill -0 "$_p" 2>/dev/null && return 0
	done
	return 1
}
loop=
mode=
while :; do
	mode=$(pool_mode "$POOLNAME")
	[ "$mode" = out_of_data_space ] && break
	used=$(pool_data_used "$POOLNAME")
	echo "fill: $(($(date +%s) - t_fill)) s, $used/$TOTAL blocks"
	if [ -z "$loop" ] && [ "$used" -ge $((TOTAL * 7 / 10)) ]; then
		(
			i=0
			while :; do
				docker create --network none --name "tmp$i" img1 true >/dev/null 2>&1
				docker rm "tmp$i" >/dev/null 2>&1
				i=$((i + 1))
			done
		) &
		loop=$!
	fi
	fillers_alive || break
	[ $(($(date +%s) - t_fill)) -lt 900 ] || break
	sleep 2
done
used_full=$(pool_data_used "$POOLNAME")
st_full=$(pool_status "$POOLNAME")
echo "pool status: $st_full"
note "the fillers ran the pool out of data space in $(($(date +%s) - t_fill)) s"
check "the pool ran out of data space (dmsetup status: $st_full)" test "$mode" = out_of_data_space
check "every data block of the pool is used ($used_full/$TOTAL)" test "$used_full" -eq "$TOTAL"
timeout 120 docker info >"$S/info.full" 2>&1
grep -E 'Pool Name|Data Space' "$S/info.full"
space_full=$(sed -n 's/^ *Data Space Used: //p' "$S/info.full")
avail_full=$(sed -n 's/^ *Data Space Available: //p' "$S/info.full")
total_space=$(sed -n 's/^ *Data Space Total: //p' "$S/info.full")
check "docker info on the full pool: Data Space Used $space_full of $total_space, Available $avail_full (under 1%)" \
	test "$(si_bytes "$avail_full" || echo x)" -lt "$(($(si_bytes "$total_space" || echo 0) / 100))"
timeout 120 docker create --network none --name refused img1 true >"$S/refused.txt" 2>&1
rc=$?
cat "$S/refused.txt"
[ "$rc" -eq 0 ] && docker rm refused
check "docker refuses a new container on the full pool (exit $rc)" \
	sh -c "[ $rc -ne 0 ] && grep -q 'free data blocks' '$S/refused.txt'"
check "a create/remove loop is running when dockerd is killed" test -n "$loop"
kill -9 "$dockerd_pid"
wait "$dockerd_pid" 2>/dev/null
dockerd_pid=
[ -n "$loop" ] && kill "$loop" 2>/dev/null && wait "$loop" 2>/dev/null
for p in $(pidof containerd); do kill -9 "$p"; done
# The operator stops the fillers (dd waits on dirty-page throttling, which
# a kill ends; their writes stay queued in the pool until dm-thin's
# no_space_timeout, 60 s, errors them).
# shellcheck disable=SC2086 # one pid a word
kill -9 $filler_pids 2>/dev/null
t_stuck=$(date +%s)
while fillers_alive && [ $(($(date +%s) - t_stuck)) -lt 180 ]; do sleep 2; done
fillers_alive
left=$?
check "the fillers' processes end when killed on the full pool ($(($(date +%s) - t_stuck)) s)" test "$left" -ne 0
sleep 1
pool_status "$POOLNAME"
dmsetup ls
dmsetup info "$DEVNAME"
grep " $DR/devicemapper/mnt/" /proc/self/mountinfo

# --- dmrescue teardown ----------------------------------------------------------
live_left() {
	dmsetup ls | grep -q '^docker-' && { echo "left: dm devices"; dmsetup ls; return 1; }
	for f in data metadata; do
		[ -z "$(losetup -j "$DR/devicemapper/devicemapper/$f")" ] ||
			{ echo "left: loop on $f"; losetup -j "$DR/devicemapper/devicemapper/$f"; return 1; }
	done
	grep -q " $DR/devicemapper/mnt/" /proc/self/mountinfo && { echo "left: mounts"; return 1; }
	return 0
}
# clean's guards (clean --dry-run only prints its plan: it never refuses).
dmsetup ls | sort >"$S/dm.dead"
dmrescue -r "$DR" clean --yes >"$S/clean-before.txt" 2>&1
rc=$?
cat "$S/clean-before.txt"
check "dmrescue clean --yes refuses while the pool is active (exit $rc, want 5)" test "$rc" -eq 5
dmrescue -r "$DR" teardown --dry-run >"$S/td-dry.txt" 2>&1
rc=$?
cat "$S/td-dry.txt"
check "dmrescue teardown --dry-run exits 0 (got $rc)" test "$rc" -eq 0
check "teardown --dry-run lists the pool's removal" grep -q "remove pool ${POOLNAME}\$" "$S/td-dry.txt"
check "teardown --dry-run lists the unmounts under mnt/" grep -q "unmount $DR/devicemapper/mnt/" "$S/td-dry.txt"
check "teardown --dry-run lists the cancelled deferred removal" \
	grep -q "cancel the deferred removal of $DEVNAME\$" "$S/td-dry.txt"
check "teardown --dry-run lists the loop devices" grep -q "detach /dev/loop" "$S/td-dry.txt"
check "teardown --dry-run changed nothing (dmsetup ls)" sh -c "dmsetup ls | sort | cmp -s - '$S/dm.dead'"
# The container dockerd left running holds its device (its own mount
# namespace): no teardown can remove it until it is stopped.
dmrescue -r "$DR" teardown --yes --json >"$S/td-busy.json" 2>"$S/td-busy.err"
rc=$?
cat "$S/td-busy.json" "$S/td-busy.err"
note "teardown with container keep2 still running (pid $ctr_pid): exit $rc"
check "teardown stops (exit 4) on the device a running container holds (got $rc)" test "$rc" -eq 4
check "teardown names the device it could not remove" grep -q "$DEVNAME" "$S/td-busy.err"
check "teardown names the container's process that holds it (pid $ctr_pid)" grep -q "pid $ctr_pid " "$S/td-busy.err"
# What the operator does next: stop the orphaned containers (their shims
# and processes outlived dockerd and containerd).
# shellcheck disable=SC2046 # one pid a word
kill -9 "$ctr_pid" $(pidof containerd-shim-runc-v2 containerd-shim) 2>/dev/null
sleep 2
dmrescue -r "$DR" teardown --yes --json >"$S/teardown.json" 2>"$S/teardown.err"
rc=$?
cat "$S/teardown.json" "$S/teardown.err"
check "dmrescue teardown --yes --json exits 0 (got $rc)" test "$rc" -eq 0
check "teardown --json: state done, no step failed" \
	sh -c "grep -q '\"state\": *\"done\"' '$S/teardown.json' && ! grep -q '\"failed\"' '$S/teardown.json'"
check "after teardown: no dm device of Docker's (dmsetup ls)" sh -c "! dmsetup ls | grep -q '^docker-'"
check "after teardown: no loop device on the data or metadata file (losetup -j)" \
	sh -c "[ -z \"\$(losetup -j $DR/devicemapper/devicemapper/data)\" ] && [ -z \"\$(losetup -j $DR/devicemapper/devicemapper/metadata)\" ]"
check "after teardown: nothing mounted under mnt/ (mountinfo)" \
	sh -c "! grep -q ' $DR/devicemapper/mnt/' /proc/self/mountinfo"
dmrescue -r "$DR" clean --dry-run >"$S/clean-after.txt" 2>&1
rc=$?
tail -n 5 "$S/clean-after.txt"
check "dmrescue clean --dry-run after teardown exits 0 (got $rc; clean --yes below must not refuse)" test "$rc" -eq 0
# A fallback, so the rest of the test can run: the manual procedure. It
# never passes anything: whatever it finds is a failure already counted.
if ! live_left; then
	fail "teardown left something active: taken down by hand"
	offline
fi

# --- offline: dmrescue -------------------------------------------------------
D="dmrescue -r $DR"
META=$DR/devicemapper/devicemapper/metadata
DATA=$DR/devicemapper/devicemapper/data
$D scan >"$S/scan.txt" 2>&1
rc=$?
cat "$S/scan.txt"
check "dmrescue scan reads the killed daemon's root (exit $rc)" test "$rc" -le 1
check "dmrescue scan reports victim's device, whose file was deleted, as a pool orphan (thin $VID)" \
	awk -v id="$VID" '/^  [A-Z]/ { sec = $0 } $1 == "thin" && $2 == id && sec ~ /^  Pool orphans/ { f = 1 } END { exit !f }' "$S/scan.txt"
$D scan --json >"$S/scan.json"
used0=$(json_first "$S/scan.json" data_used_blocks)
$D check >"$S/check.txt" 2>&1
rc=$?
cat "$S/check.txt"
check "dmrescue check finds no fatal damage (exit $rc)" test "$rc" -le 1
check "dmrescue check says container victim lost its read-write layer" grep -q "container victim ($VCID)" "$S/check.txt"
# The default classes: pool orphans (victim's device), deferred-deleted
# devices, transient files.
$D clean --yes --json >"$S/clean.json"
rc=$?
cat "$S/clean.json"
check "dmrescue clean exits 0 (got $rc)" test "$rc" -eq 0
check "clean removed victim's orphaned device (thin $VID)" \
	sh -c "! thin_dump '$META' | grep -q 'dev_id=\"$VID\"'"
# What is left of victim (its record, layerdb mount, -init device) and the
# fillers, by name.
$D clean --yes --json --container victim --container filler1 --container filler2 >"$S/clean-named.json"
rc=$?
cat "$S/clean-named.json"
check "dmrescue clean --container victim --container filler1 --container filler2 exits 0 (got $rc)" test "$rc" -eq 0
check "clean removed the containers' records and layerdb mounts" \
	sh -c "[ ! -e '$DR/containers/$VCID' ] && [ ! -e '$DR/image/devicemapper/layerdb/mounts/$VCID' ] && ! grep -lq -e '\"Name\":\"/filler' '$DR'/containers/*/config.v2.json"
# What else the kill left that only the opt-in classes remove (seen: the
# -init device of a create the full pool refused, a driver orphan; dead
# containers, hollow files).
$D clean --yes --json --all >"$S/clean-all.json"
rc=$?
cat "$S/clean-all.json"
check "dmrescue clean --all exits 0 (got $rc)" test "$rc" -eq 0
$D scan >"$S/scan-clean.txt" 2>&1
rc=$?
cat "$S/scan-clean.txt"
check "dmrescue scan after the cleans: no leftovers (exit $rc)" \
	sh -c "[ $rc -eq 0 ] && grep -q '^No leftovers found' '$S/scan-clean.txt'"
freed=0
for f in clean clean-named clean-all; do
	n=$(json_first "$S/$f.json" data_bytes_freed)
	freed=$((freed + ${n:-0}))
done
$D check
rc=$?
check "dmrescue check after clean: consistent (exit $rc)" test "$rc" -eq 0
check "thin_check accepts the metadata after clean" thin_check "$META"
$D scan --json >"$S/scan-after.json"
used1=$(json_first "$S/scan-after.json" data_used_blocks)
note "pool data blocks used: $used0 before clean, $used1 after; clean reported $freed bytes freed"
check "the pool's used data blocks dropped by what clean reported freed ($used0 - $used1 blocks = $freed bytes)" \
	test "$(((used0 - used1) * BLOCK))" -eq "$freed"
reclaim_checked "$D" "$DATA" "$S/reclaim.json"
# The fillers wrote whole blocks: nearly all that clean freed was on disk.
check "reclaim returned at least 90% of the pool space clean freed (${returned:-?} of $freed bytes)" \
	test "$((${returned:-0} * 10))" -ge "$((freed * 9))"

# --- Docker again --------------------------------------------------------------
check "dockerd starts again on the cleaned pool" start_dockerd || exit 1
docker info 2>/dev/null | grep -E 'Pool Name|Data Space'
space_after=$(dinfo 'Data Space Used')
used_now=$(pool_data_used "$POOLNAME")
# dockerd's restart writes a little (it mounts keep2, running when it was
# killed, to restore it: XFS replays its log).
restart_blocks=$((used_now - used1))
note "docker info, Data Space Used: $space_full on the full pool, $space_after after clean, reclaim and the restart; clean freed $freed bytes; the restart allocated $restart_blocks blocks"
# Both figures are rounded to 4 significant digits: allow half a unit of
# the last digit on each.
b_full=$(si_bytes "$space_full")
b_after=$(si_bytes "$space_after")
round=$(((${b_full:-0} + ${b_after:-0}) / 2000))
d=$((used_now * BLOCK - ${b_after:-0}))
check "docker info's Data Space Used ($space_after) is the pool's ($used_now blocks)" \
	test "${d#-}" -le "$((${b_after:-0} / 2000 + 1))"
check "docker info's Data Space Used dropped by what clean freed less what the restart wrote ($space_full -> $space_after; $freed bytes, $restart_blocks blocks)" \
	test "$((${b_full:-0} - ${b_after:-0}))" -ge "$((freed - restart_blocks * BLOCK - round))"
docker images --format '{{.Repository}}:{{.Tag}} {{.ID}}' | sort >"$S/images.after"
docker ps -a --format '{{.Names}} {{.Image}}' | grep -v '^tmp' | sort >"$S/containers.after"
grep -v -e '^victim ' -e '^filler1 ' -e '^filler2 ' "$S/containers.before" >"$S/containers.want"
cat "$S/containers.after"
check "docker lists the same images" cmp "$S/images.before" "$S/images.after"
check "docker lists the same containers minus victim, filler1 and filler2 (tmp* from the killed loop aside)" \
	cmp "$S/containers.want" "$S/containers.after"
check "container keep2 starts" docker start keep2
check "a file of a built layer reads back in keep2" sh -c "docker exec keep2 sha256sum -c /data/blob.sum"
check "container keep1 runs again" docker start -a keep1
check "the committed image carries the container's file" \
	sh -c "[ \"\$(docker run --rm --network none img3 cat /c1file)\" = c1 ]"
check "a new container runs and writes" docker run --rm --network none img2 sh -c 'head -c 1048576 /dev/urandom >/new && test -s /new'
docker stop -t 1 keep2
stop_dockerd
exit 0
