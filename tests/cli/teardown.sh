#!/bin/sh
# dmrescue teardown: what this machine can make for real (a loop device on
# the data file, tmpfs mounts under mnt/, one busy) is taken down in order
# and each step printed; the plan (--dry-run) changes nothing; the
# refusals (dockerd running, a pool or device that is not Docker's, no
# confirmation) come before anything is done. The device-mapper steps are
# covered by tests/unit/test_teardown (scripted) and by the VM tests.
. "$top_srcdir/tests/cli/lib.sh"
. "$top_srcdir/tests/cli/clean-lib.sh"
need jq
ensure_dockerroot leftovers
fresh
pool=$(dmr -r "$R" scan --json | jq -r .pool.name)
prefix=${pool%-pool}

# --- nothing active ---
run dmr -r "$R" teardown --yes
expect_rc 0 "nothing active"
if grep -q 'nothing of it is active' "$WORK/out"; then ok "says nothing is active"; else fail "nothing active"; cat "$WORK/out"; fi

# --- refusals, from a fake system root (test builds) ---
if "$DMRESCUE" --version | grep -q 'fault-injection'; then
	S="$WORK/sys"
	mkdir -p "$S/proc/1" "$S/proc/self" "$S/sys/block/loop0/loop" "$S/run" "$S/var/run"
	echo systemd >"$S/proc/1/comm"
	printf '/sbin/init\0' >"$S/proc/1/cmdline"
	echo "22 1 253:0 / / rw,relatime shared:1 - xfs /dev/vda1 rw" >"$S/proc/self/mountinfo"
	echo 7:0 >"$S/sys/block/loop0/dev"
	echo "$DATA" >"$S/sys/block/loop0/loop/backing_file"
	# a pool on Docker's loop under another name
	mkdir -p "$S/sys/block/dm-3/dm" "$S/sys/block/dm-3/slaves/loop0"
	echo 253:3 >"$S/sys/block/dm-3/dev"
	echo somebodys-pool >"$S/sys/block/dm-3/dm/name"
	DMRESCUE_SYSROOT="$S" run dmr -r "$R" teardown --yes
	expect_rc 5 "a pool on Docker's loop, not named like Docker's"
	if grep -q "somebodys-pool: it uses Docker's files but is not named like Docker's pool" "$WORK/err"; then
		ok "not Docker's pool: says so"; else fail "not Docker's pool message"; cat "$WORK/err"; fi
	rm -rf "$S/sys/block/dm-3"
	# dockerd running
	mkdir -p "$S/proc/1234"
	echo dockerd >"$S/proc/1234/comm"
	printf '/usr/bin/dockerd\0' >"$S/proc/1234/cmdline"
	echo 1234 >"$S/var/run/docker.pid"
	DMRESCUE_SYSROOT="$S" run dmr -r "$R" teardown --yes
	expect_rc 5 "dockerd running"
	if grep -q 'dockerd is running (pid 1234.*teardown is for a daemon that died' "$WORK/err" &&
		[ "$(grep -c . "$WORK/err")" = 1 ]; then ok "dockerd running: one line"; else fail "dockerd message"; cat "$WORK/err"; fi
	rm -rf "$S/proc/1234" "$S/var/run/docker.pid"
	# the plan from the fake root: the loop only
	DMRESCUE_SYSROOT="$S" run dmr -r "$R" teardown --dry-run --json
	expect_rc 0 "teardown --dry-run --json (fake root)"
	if jq -e '.schema == "dmrescue.teardown/1" and .state == "planned" and
		.steps == [{"action": "detach-loop", "object": "/dev/loop0", "state": "planned"}]' "$WORK/out" >/dev/null; then
		ok "JSON plan: detach /dev/loop0"; else fail "JSON plan"; cat "$WORK/out"; fi
fi

# --- for real: a loop device, two mounts (one inside the other), one busy ---
if [ "$(id -u)" != 0 ] || ! command -v losetup >/dev/null 2>&1; then
	echo "note: not root or no losetup: the real teardown is not tested"
	finish
fi
loop=$(losetup -f --show -r "$DATA" 2>/dev/null) || { echo "note: no loop device here"; finish; }
m1="$R/devicemapper/mnt/0937215ed8b3f4da0ecca82e317418bb3399c4dd9ed07110c63706b75eb8dd59"
m2="$R/devicemapper/mnt/18ef1b90f5fd091bfcb72e1b2fc002dd15b66954ebd987c4c1f7ffdb71c90b42"
mkdir -p "$m1" "$m2"
state "$R" >"$WORK/before.state"
mounted=0
if mount -t tmpfs dmrtest1 "$m1" 2>/dev/null && mkdir -p "$m1/rootfs" && mount -t tmpfs dmrtest2 "$m1/rootfs" &&
	mount -t tmpfs dmrtest3 "$m2"; then
	mounted=1
	# a process keeps m2 busy
	(cd "$m2" && exec sleep 30) &
	busy=$!
fi
run dmr -r "$R" teardown --dry-run
expect_rc 0 "teardown --dry-run"
if [ "$mounted" = 1 ]; then
	sed "s|$R|ROOT|g; s|$loop|/dev/LOOP|g; s|$pool|POOL|g" "$WORK/out" >"$WORK/plan"
	golden teardown/real.plan "$WORK/plan"
fi
if losetup "$loop" >/dev/null 2>&1 && [ "$mounted" = 0 ] || grep -q "$m1" /proc/self/mountinfo; then
	ok "--dry-run left everything in place"; else fail "--dry-run changed something"; fi
run dmr -r "$R" teardown </dev/null
expect_rc 5 "not confirmed off a terminal"
run dmr -r "$R" teardown --yes
expect_rc 0 "teardown --yes"
if [ "$mounted" = 1 ]; then
	if grep -q "$m1/rootfs: unmounted" "$WORK/out" && grep -q "$m2: unmounted (lazily: it was busy)" "$WORK/out"; then
		ok "each step printed; the busy mount went lazily"; else fail "steps"; cat "$WORK/out"; fi
	if ! grep -q "$R/devicemapper/mnt" /proc/self/mountinfo; then ok "nothing mounted under mnt/ any more"; else
		fail "still mounted"; grep "$R" /proc/self/mountinfo; fi
	kill "$busy" 2>/dev/null
	wait "$busy" 2>/dev/null
fi
if ! losetup "$loop" >/dev/null 2>&1 || ! losetup "$loop" | grep -q "$DATA"; then ok "the loop device is detached"; else
	fail "loop still attached"; losetup -d "$loop"; fi
if grep -q 'Nothing of the pool is active any more' "$WORK/out"; then ok "says the offline commands can run"; else
	fail "final line"; cat "$WORK/out"; fi
state "$R" >"$WORK/after.state"
if cmp -s "$WORK/before.state" "$WORK/after.state"; then ok "no file of the Docker root changed"; else
	fail "files changed"; diff "$WORK/before.state" "$WORK/after.state" | head; fi
run dmr -r "$R" clean --dry-run
expect_rc 0 "clean can plan afterwards"
rmdir "$m1" "$m2" 2>/dev/null
finish
