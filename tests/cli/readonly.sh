#!/bin/sh
# The read-only guarantee: every inspection command (and every --dry-run)
# leaves the Docker root exactly as it was (a hash of every file before and
# after), and strace sees it open nothing of the root for writing: no
# O_WRONLY/O_RDWR/O_CREAT/O_TRUNC, no rename, unlink or truncate.
. "$top_srcdir/tests/cli/lib.sh"
. "$top_srcdir/tests/cli/clean-lib.sh"
need jq
ensure_dockerroot leftovers
fresh
use_strace=no
if command -v strace >/dev/null 2>&1 && strace -f -o /dev/null true 2>/dev/null; then use_strace=yes; else
	echo "note: strace unusable here: only the before/after hashes are checked"; fi

# readonly TAG ARGS...: dmrescue ARGS on the root changes nothing.
readonly_cmd() {
	tag=$1
	shift
	state "$R" >"$WORK/before.state"
	if [ "$use_strace" = yes ]; then
		# LeakSanitizer cannot run under ptrace: the other tests look for
		# leaks; here only the opens matter.
		ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0" \
			strace -f -e trace=open,openat,creat,truncate,ftruncate,rename,renameat,renameat2,unlink,unlinkat,fallocate \
			-o "$WORK/strace" "$DMRESCUE" -r "$R" "$@" >"$WORK/out" 2>"$WORK/err"
		RC=$?
		# Docker's files are opened relative to directory descriptors:
		# look at every open, except export's own FILE (and its dot
		# temporary, by name relative to its directory).
		if grep -E 'O_WRONLY|O_RDWR|O_CREAT|O_TRUNC|rename|unlink|truncate|fallocate' "$WORK/strace" |
			grep -v -e '/dev/null' -e '/dev/tty' -e "${ALLOW:-^\$}" >"$WORK/writes"; then
			fail "$tag: opened something for writing"; cat "$WORK/writes"
		else
			ok "$tag: strace: $(grep -c 'open' "$WORK/strace") opens, none for writing"
		fi
	else
		run "$DMRESCUE" -r "$R" "$@"
	fi
	case $RC in 0 | 1) ;; *) fail "$tag: exit $RC"; cat "$WORK/err" ;; esac
	state "$R" >"$WORK/after.state"
	if cmp -s "$WORK/before.state" "$WORK/after.state"; then ok "$tag: every file of the root unchanged"; else
		fail "$tag: the root changed"; diff "$WORK/before.state" "$WORK/after.state" | head -5; fi
}

readonly_cmd scan scan
readonly_cmd "scan --json" scan --json
readonly_cmd check check
readonly_cmd ls ls
readonly_cmd dump dump
readonly_cmd timeline timeline
readonly_cmd "diff" diff 2 3
# export writes FILE (a dot temporary in its directory, sized, renamed)
# and nothing else: its file descriptor is the one opened with O_EXCL.
ALLOW='export\.img\|ftruncate(5,' readonly_cmd "export" export 2 -o "$WORK/export.img" --no-checksum
rm -f "$WORK/export.img"
readonly_cmd "clean --dry-run" clean --dry-run --all
readonly_cmd "reclaim --dry-run" reclaim --dry-run --dig-zeroes
readonly_cmd "teardown --dry-run" teardown --dry-run
finish
