#!/bin/sh
# Usage errors, unreadable and non-metadata input: one clear line on stderr
# and the documented exit code (64 usage, 3 cannot read, 2 damaged).
. "$top_srcdir/tests/cli/lib.sh"

check() { # name rc cmd...
	name=$1 want=$2
	shift 2
	run "$@"
	expect_rc "$want" "$name"
	sed -e "s|$WORK|WORK|g" "$WORK/err" >"$WORK/err.n"
	golden "errors/$name" "$WORK/err.n"
}

check no-command 64 dmr
check unknown-command 64 dmr frobnicate
check unknown-option 64 dmr ls --frobnicate
check missing-argument 64 dmr ls -o
check unknown-field 64 dmr --metadata /dev/null ls -o DEV,NOPE
check bad-dev-id 64 dmr --metadata /dev/null dump --dev-id x1
check dump-json 64 dmr --metadata /dev/null dump --json
check extra-arg 64 dmr --metadata /dev/null ls extra
check missing-root 3 dmr -r "$WORK/nonexistent" ls
check missing-metadata 3 dmr --metadata "$WORK/nonexistent" dump

printf 'short' >"$WORK/tiny"
check tiny-file 2 dmr --metadata "$WORK/tiny" ls
truncate -s 64K "$WORK/zeros"
check zero-file 2 dmr --metadata "$WORK/zeros" dump
head -c 65536 /dev/urandom >"$WORK/random" 2>/dev/null || dd if=/dev/urandom of="$WORK/random" bs=4096 count=16 2>/dev/null
run dmr --metadata "$WORK/random" ls
expect_rc 2 "random-file"
if grep -q 'bad magic' "$WORK/err" && [ "$(wc -l <"$WORK/err")" = 1 ]; then ok "random-file: one line naming the problem"; else fail "random-file: message"; cat "$WORK/err"; fi
check directory 3 dmr --metadata "$WORK" ls

run dmr --help
expect_rc 0 "--help"
grep -q '^Usage:' "$WORK/out" && ok "--help prints usage on stdout" || fail "--help output"
run dmr ls --help
expect_rc 0 "ls --help"
grep -q 'EXCLUSIVE_BLOCKS' "$WORK/out" && ok "ls --help lists fields" || fail "ls --help output"
run dmr dump --help
expect_rc 0 "dump --help"
run dmr -V
expect_rc 0 "-V"
grep -q '^dmrescue [0-9]' "$WORK/out" && ok "-V prints the version" || fail "-V output"
if [ -w /dev/full ]; then
	dmr --help >/dev/full 2>"$WORK/err"
	RC=$?
	expect_rc 4 "write error on stdout"
fi
finish
