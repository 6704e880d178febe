#!/bin/sh
# Runs inside the VM as init (under tini, from /sbin/dmr-vm-init of the
# image): sets up a minimal system, runs each test named in
# /vmwork/tests-to-run, writes "ok: ..." / "FAIL: ..." / "skip: ..." lines to
# /vmwork/results/results.txt (and a log per test), then powers off.
export PATH=/vmwork/dmr:/usr/sbin:/usr/bin:/sbin:/bin
export LC_ALL=C
W=/vmwork
R=$W/results
mkdir -p "$R"
RESULTS=$R/results.txt
: >"$RESULTS"
exec >"$R/init.log" 2>&1
set -x

read -r up _ </proc/uptime
echo "boot: ${up%.*} s to the test init" >>"$RESULTS"

mountpoint -q /dev/pts || { mkdir -p /dev/pts && mount -t devpts devpts /dev/pts; }
mountpoint -q /dev/shm || { mkdir -p /dev/shm && mount -t tmpfs shm /dev/shm; }
mountpoint -q /run || mount -t tmpfs -o mode=755 run /run
mountpoint -q /tmp || mount -t tmpfs tmp /tmp
mountpoint -q /sys/fs/cgroup || mount -t cgroup2 cgroup2 /sys/fs/cgroup
mkdir -p /run/lock
mount -o remount,rw /
hostname dmrvm
ip link set lo up 2>/dev/null
for m in loop dm_mod dm_thin_pool dm_bufio dm_persistent_data xfs ext4; do
	modprobe "$m" || echo "modprobe $m failed"
done
# libdevmapper's udev synchronisation works as on a real host.
/lib/systemd/systemd-udevd --daemon
udevadm trigger --action=add
udevadm settle --timeout=60
read -r up _ </proc/uptime
echo "boot: ${up%.*} s to the tests (modules loaded, udev settled)" >>"$RESULTS"

for t in $(cat "$W/tests-to-run"); do
	s=$(cut -d' ' -f1 /proc/uptime)
	if [ ! -x "$W/tests/$t.sh" ]; then
		echo "FAIL: $t: no such test" >>"$RESULTS"
		continue
	fi
	before=$(grep -c '^FAIL:' "$RESULTS")
	DMR_RESULTS=$RESULTS DMR_TEST=$t DMR_SCRATCH=$W/scratch/$t \
		timeout -k 10 "${DMR_VM_TEST_TIMEOUT:-1800}" \
		"$W/tests/$t.sh" >"$R/$t.log" 2>&1
	rc=$?
	after=$(grep -c '^FAIL:' "$RESULTS")
	if [ "$rc" -ne 0 ] && [ "$after" -eq "$before" ]; then
		echo "FAIL: $t: exited $rc (see $t.log)" >>"$RESULTS"
	fi
	e=$(cut -d' ' -f1 /proc/uptime)
	echo "time: $t $(awk -v s="$s" -v e="$e" 'BEGIN { printf "%d", e - s }') s" >>"$RESULTS"
	rm -rf "$W/scratch/$t"
done

echo "done" >>"$RESULTS"
sync
kill "$(pidof systemd-udevd)" 2>/dev/null
exec >/dev/console 2>&1
mount -o remount,ro "$W"
sync
echo o >/proc/sysrq-trigger
sleep 30
