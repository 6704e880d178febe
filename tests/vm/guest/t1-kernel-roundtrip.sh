#!/bin/sh
# Test 1, the kernel round trip. A thin pool on loop files, thin devices and
# snapshots with ext4 and xfs holding known files; some devices deleted
# through the kernel, some orphaned (left in the pool). Offline,
# 'dmrescue clean --device' drops the orphans and 'dmrescue reclaim' punches
# the free blocks. Then the kernel must take the rewritten metadata: the pool
# comes up clean, every remaining device mounts with its files unchanged,
# snapshots and writes work, and the data file shrank by what reclaim said.
. /vmwork/tests/lib.sh
set -x

S=$DMR_SCRATCH
R=$S/root # a Docker root for dmrescue's lock and backup, no Docker in it
DATA=$S/data
META=$S/metadata
POOL=dmrt1-pool
DATA_SIZE=$((2 * 1024 * 1024 * 1024))
THIN_SECTORS=$((1024 * 1024 * 1024 / 512))
mkdir -p "$S/mnt" "$R/devicemapper"

DL='' ML=''
teardown() { takedown "$S/mnt/" dmrt1- "$DATA" "$META"; }
trap teardown EXIT

pool_up() {
	DL=$(losetup -f --show "$DATA") && ML=$(losetup -f --show "$META") &&
		dmsetup create "$POOL" --table "0 $((DATA_SIZE / 512)) thin-pool $ML $DL 128 0 1 skip_block_zeroing" &&
		udevadm settle
}
used_data() { pool_data_used "$POOL"; }
act() { dmsetup create "dmrt1-$1" --table "0 $THIN_SECTORS thin /dev/mapper/$POOL $1" && udevadm settle; }
deact() { dmsetup remove "dmrt1-$1"; }
msg() { dmsetup message "$POOL" 0 "$*"; }
dev() { echo "/dev/mapper/dmrt1-$1"; }
mnt() { echo "$S/mnt/$1"; }
# Files of random content; $1 the directory, then NAME:MiB pairs.
put() {
	_d=$1
	shift
	for f in "$@"; do
		head -c "$((${f#*:} * 1024 * 1024))" /dev/urandom >"$_d/${f%:*}" || return 1
	done
	sync
}
sums() { (cd "$(mnt "$1")" && find . -type f ! -path './lost+found/*' | sort | xargs sha256sum); }
mount_fs() {
	mkdir -p "$(mnt "$1")"
	case $2 in
	xfs) mount -t xfs -o "nouuid${3:+,$3}" "$(dev "$1")" "$(mnt "$1")" ;;
	*) mount -t ext4 ${3:+-o "$3"} "$(dev "$1")" "$(mnt "$1")" ;;
	esac
}

# --- build the pool ---------------------------------------------------------
must truncate -s "$DATA_SIZE" "$DATA"
must truncate -s 64M "$META"
must pool_up

# 1: ext4; 2: xfs.
must msg create_thin 1
must act 1
must mkfs.ext4 -q -E nodiscard "$(dev 1)"
must mount_fs 1 ext4
must put "$(mnt 1)" a:8 b:4 c:1
echo "a text file" >"$(mnt 1)/hello.txt"
must sums 1 >"$S/sums.1"
must umount "$(mnt 1)"

must msg create_thin 2
must act 2
must mkfs.xfs -q -K "$(dev 2)"
must mount_fs 2 xfs
mkdir -p "$(mnt 2)/sub"
must put "$(mnt 2)" x:6 sub/y:3
must sums 2 >"$S/sums.2"
must umount "$(mnt 2)"

# 3: snapshot of 1 taken while 1 is mounted (suspend, snap, resume), then
# changed; 1 is written to after the snapshot.
must mount_fs 1 ext4
must dmsetup suspend "dmrt1-1"
must msg create_snap 3 1
must dmsetup resume "dmrt1-1"
must act 3
must mount_fs 3 ext4
must put "$(mnt 3)" d:6
dd if=/dev/urandom of="$(mnt 3)/b" bs=1M count=1 seek=1 conv=notrunc
rm -f "$(mnt 3)/c"
sync
must sums 3 >"$S/sums.3"
must umount "$(mnt 3)"
must deact 3
must umount "$(mnt 1)"
must deact 1

# 4: snapshot of 2 (inactive origin), changed.
must deact 2
must msg create_snap 4 2
must act 4
must mount_fs 4 xfs
must put "$(mnt 4)" z:5
rm -f "$(mnt 4)/x"
must sums 4 >"$S/sums.4"
must umount "$(mnt 4)"
must deact 4

# 5: ext4 with data, deleted through the kernel. 9: snapshot of 3 with more
# data, deleted through the kernel too.
must msg create_thin 5
must act 5
must mkfs.ext4 -q -E nodiscard "$(dev 5)"
must mount_fs 5 ext4
must put "$(mnt 5)" big:16
must umount "$(mnt 5)"
must deact 5
must msg create_snap 9 3
must act 9
must mount_fs 9 ext4
must put "$(mnt 9)" more:8
must umount "$(mnt 9)"
must deact 9
used_with_5_9=$(used_data)
must msg delete 5
must msg delete 9
used_kernel_deleted=$(used_data)
check "the kernel freed the blocks of the deleted devices 5 and 9 ($used_with_5_9 -> $used_kernel_deleted blocks)" \
	test "$used_kernel_deleted" -lt "$used_with_5_9"

# 6: xfs, 7: a snapshot of 6 with more data: orphans, left in the pool.
must msg create_thin 6
must act 6
must mkfs.xfs -q -K "$(dev 6)"
must mount_fs 6 xfs
must put "$(mnt 6)" o1:12
must umount "$(mnt 6)"
must deact 6
must msg create_snap 7 6
must act 7
must mount_fs 7 xfs
must put "$(mnt 7)" o2:8
must umount "$(mnt 7)"
must deact 7
used_before=$(used_data)
pool_status "$POOL"
teardown
check "the pool and its loop devices are gone after teardown" \
	sh -c "! dmsetup info $POOL >/dev/null 2>&1 && [ -z \"\$(losetup -j $DATA)\" ]"

# --- offline: clean and reclaim ---------------------------------------------
D="dmrescue -r $R --metadata $META --data $DATA"
$D ls
must thin_check "$META"
$D clean --device 6 --device 7 --yes --json >"$S/clean.json"
rc=$?
cat "$S/clean.json"
check "dmrescue clean --device 6 --device 7 exits 0 (got $rc)" test "$rc" -eq 0
check "thin_check accepts the metadata clean wrote" thin_check "$META"
devs=$(thin_dump "$META" | sed -n 's/.*<device dev_id="\([0-9]*\)".*/\1/p' | sort -n | tr '\n' ' ')
check "the pool holds devices 1 2 3 4 after clean (has: $devs)" test "$devs" = "1 2 3 4 "

reclaim_checked "$D" "$DATA" "$S/reclaim.json"
# 5 (16 MiB), 9 (8 MiB), 6 (12 MiB) and 7 (8 MiB) held at least 40 MiB of files.
check "reclaim returned at least the 40 MiB of the deleted devices' files" \
	test "${returned:-0}" -ge $((40 * 1024 * 1024))
check "thin_check accepts the metadata after reclaim" thin_check "$META"

# --- back in the kernel -----------------------------------------------------
must pool_up
st=$(pool_status "$POOL")
echo "pool status: $st"
check "the kernel activates the pool on the rewritten metadata, read-write ($st)" \
	sh -c "echo '$st' | awk '{ exit !(\$5 == \"rw\") }'"
check "the pool status has no needs_check, no Fail ($st)" \
	sh -c "! echo '$st' | grep -qE 'needs_check|Fail|Error'"
used_after=$(used_data)
check "the pool's used data blocks dropped with the orphans ($used_before -> $used_after)" \
	test "$used_after" -lt "$used_before"
check "device 6 is gone from the kernel's view (activating it fails)" \
	sh -c "! dmsetup create dmrt1-6 --table '0 $THIN_SECTORS thin /dev/mapper/$POOL 6' 2>/dev/null"
dmsetup remove dmrt1-6 2>/dev/null
for id in 1 2 3 4; do
	case $id in 2 | 4) fs=xfs ;; *) fs=ext4 ;; esac
	must act "$id"
	if mount_fs "$id" "$fs" ro; then
		check "device $id ($fs) mounts read-only with its files unchanged" \
			sh -c "cd $(mnt "$id") && sha256sum -c --quiet $S/sums.$id"
		umount "$(mnt "$id")"
	else
		fail "device $id ($fs) mounts read-only"
	fi
done

# New snapshot of a mounted, written device; writes on both sides.
must mount_fs 1 ext4
echo before >"$(mnt 1)/when"
sync
must dmsetup suspend dmrt1-1
check "a new snapshot (10 of 1) is created on the rewritten pool" msg create_snap 10 1
must dmsetup resume dmrt1-1
echo after >"$(mnt 1)/when"
must put "$(mnt 1)" new1:4
must act 10
must mount_fs 10 ext4
check "the new snapshot sees the origin as it was" grep -qx before "$(mnt 10)/when"
must put "$(mnt 10)" new10:4
(cd "$(mnt 10)" && sha256sum new10) >"$S/sums.10"
umount "$(mnt 10)" && umount "$(mnt 1)"
must mount_fs 4 xfs
check "writing to an xfs snapshot (4) works" put "$(mnt 4)" new4:4
umount "$(mnt 4)"
must msg create_thin 11
must act 11
check "a new thin device (11) takes a fresh ext4 filesystem" mkfs.ext4 -q "$(dev 11)"
mount_fs 10 ext4 ro
check "the new snapshot's writes read back" sh -c "cd $(mnt 10) && sha256sum -c --quiet $S/sums.10"
umount "$(mnt 10)"
st=$(pool_status "$POOL")
check "after the writes the pool is still clean ($st)" \
	sh -c "! echo '$st' | grep -qE 'needs_check|Fail|Error|out_of_data_space'"
teardown
check "thin_check accepts the metadata the kernel wrote afterwards" thin_check "$META"
$D ls
exit 0
