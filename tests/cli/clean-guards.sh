#!/bin/sh
# The guards of clean (and undo): each one refuses with one clear line,
# exit 5, and changes nothing. The live state comes from a fake system root
# (DMRESCUE_SYSROOT, honoured by test builds) and, where this machine
# allows, from real loop devices and mounts. --force overrides only the
# process check.
. "$top_srcdir/tests/cli/lib.sh"
. "$top_srcdir/tests/cli/clean-lib.sh"
need jq
ensure_dockerroot leftovers
"$DMRESCUE" --version | grep -q 'fault-injection' || skip "not a test build (configure --enable-fault-injection)"

# The pool's name comes from the driver home's device and inode: a new
# copy has a new one.
fresh_pool() {
	fresh
	pool=$(dmr -r "$R" scan --json | jq -r .pool.name)
}
fresh_pool
S="$WORK/sys"
quiet_sysroot() {
	rm -rf "$S"
	mkdir -p "$S/proc/1" "$S/proc/self" "$S/sys/block/loop0/loop" "$S/sys/block/dm-0/dm" "$S/run" "$S/var/run"
	echo systemd >"$S/proc/1/comm"
	printf '/sbin/init\0' >"$S/proc/1/cmdline"
	echo "22 1 253:0 / / rw,relatime shared:1 - xfs /dev/vda1 rw" >"$S/proc/self/mountinfo"
	echo 7:0 >"$S/sys/block/loop0/dev"
	echo 253:0 >"$S/sys/block/dm-0/dev"
	echo rhel-root >"$S/sys/block/dm-0/dm/name"
}
# guard NAME WANT_RC GREP [clean options]: runs clean --yes on the fake root.
guard() {
	g_name=$1 g_rc=$2 g_msg=$3
	shift 3
	state "$R" >"$WORK/g.before"
	DMRESCUE_SYSROOT="$S" run dmr -r "$R" clean --yes --backup-dir "$WORK/bk-$(date +%s%N)" "$@"
	expect_rc "$g_rc" "$g_name"
	if grep -q -- "$g_msg" "$WORK/err"; then ok "$g_name: says '$g_msg'"; else fail "$g_name: message"; cat "$WORK/err"; fi
	if [ "$g_rc" = 5 ]; then
		state "$R" >"$WORK/g.after"
		if cmp -s "$WORK/g.before" "$WORK/g.after"; then ok "$g_name: nothing changed"; else fail "$g_name: files changed"; fi
	fi
}

quiet_sysroot
# dockerd: refused, and --force goes on
mkdir -p "$S/proc/1234"
echo dockerd >"$S/proc/1234/comm"
printf '/usr/bin/dockerd\0-H\0fd://\0' >"$S/proc/1234/cmdline"
echo 1234 >"$S/var/run/docker.pid"
guard "dockerd running" 5 "dockerd is running (pid 1234"
guard "dockerd running, --force" 0 "(--force: going on)" --force
fresh_pool
quiet_sysroot
# the pool active in the kernel: --force does not help
mkdir -p "$S/sys/block/dm-3/dm"
echo 253:3 >"$S/sys/block/dm-3/dev"
echo "$pool" >"$S/sys/block/dm-3/dm/name"
guard "the pool is active" 5 "$pool" --force
quiet_sysroot
# a thin device of the pool
mkdir -p "$S/sys/block/dm-4/dm"
echo 253:4 >"$S/sys/block/dm-4/dev"
echo "${pool%-pool}-0937215ed8b3f4da0ecca82e317418bb3399c4dd9ed07110c63706b75eb8dd59" >"$S/sys/block/dm-4/dm/name"
guard "a thin device is active" 5 "0937215ed8b3" --force
quiet_sysroot
# a loop device backed by the data file
echo "$DATA" >"$S/sys/block/loop0/loop/backing_file"
guard "a loop device on the data file" 5 "loop device /dev/loop0 is backed by" --force
quiet_sysroot
# something mounted under mnt/
echo "40 22 253:4 / $R/devicemapper/mnt/0937215ed8b3f4da0ecca82e317418bb3399c4dd9ed07110c63706b75eb8dd59 rw - xfs /dev/mapper/x rw" \
	>>"$S/proc/self/mountinfo"
guard "a mount under mnt/" 5 "mounted" --force
quiet_sysroot
# another dmrescue holds the lock
exec 8>"$R/devicemapper/.dmrescue.lock"
flock -x 8
guard "the lock is held" 5 "another dmrescue"
exec 8>&-

# Real loop devices and mounts, where this machine can make them.
if [ "$(id -u)" = 0 ] && command -v losetup >/dev/null 2>&1 && loop=$(losetup -f --show -r "$DATA" 2>/dev/null); then
	state "$R" >"$WORK/g.before"
	run dmr -r "$R" clean --yes --force
	losetup -d "$loop"
	expect_rc 5 "a real loop device ($loop) on the data file"
	if grep -q "loop device $loop is backed by" "$WORK/err"; then ok "real loop: named"; else fail "real loop message"; cat "$WORK/err"; fi
else
	echo "note: no loop device here; the real-loop check is skipped"
fi
mp="$R/devicemapper/mnt/0937215ed8b3f4da0ecca82e317418bb3399c4dd9ed07110c63706b75eb8dd59"
mkdir -p "$mp"
if [ "$(id -u)" = 0 ] && mount -t tmpfs dmrtest "$mp" 2>/dev/null; then
	run dmr -r "$R" clean --yes --force
	umount "$mp"
	expect_rc 5 "a real mount under mnt/"
	if grep -q "$mp" "$WORK/err"; then ok "real mount: named"; else fail "real mount message"; cat "$WORK/err"; fi
else
	echo "note: cannot mount here; the real-mount check is skipped"
fi
rmdir "$mp" 2>/dev/null
finish
