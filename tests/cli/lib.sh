# Shared helpers for the CLI tests (sourced by each tests/cli/*.sh).
# The automake harness exports top_srcdir and top_builddir.
set -u
: "${top_srcdir:?}" "${top_builddir:?}"
DMRESCUE="$top_builddir/dmrescue"
FIXDIR="$top_builddir/tests/fixtures/out"
TESTNAME=$(basename "$0" .sh)
WORK=$(mktemp -d "${TMPDIR:-/tmp}/dmr-$TESTNAME.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
PASSES=0
FAILS=0

# Run dmrescue under valgrind when DMR_VALGRIND=1 (scripts/test --valgrind).
dmr() {
	if [ "${DMR_VALGRIND:-0}" = 1 ]; then
		valgrind -q --error-exitcode=99 --leak-check=full --errors-for-leak-kinds=definite \
			"$DMRESCUE" "$@"
	else
		"$DMRESCUE" "$@"
	fi
}

skip() { echo "SKIP: $*"; exit 77; }
need() { for t in "$@"; do command -v "$t" >/dev/null 2>&1 || PATH=$PATH:/usr/sbin:/sbin command -v "$t" >/dev/null 2>&1 || skip "$t not installed"; done; PATH=$PATH:/usr/sbin:/sbin; }

ok() { PASSES=$((PASSES + 1)); echo "ok: $*"; }
fail() { FAILS=$((FAILS + 1)); echo "FAIL: $*"; }

# Compares a file with tests/cli/expected/NAME (golden); DMR_UPDATE_GOLDEN=1
# rewrites the golden file instead.
golden() {
	name=$1 file=$2
	exp="$top_srcdir/tests/cli/expected/$name"
	if [ "${DMR_UPDATE_GOLDEN:-0}" = 1 ]; then
		mkdir -p "$(dirname "$exp")"
		cp "$file" "$exp"
	fi
	if [ ! -f "$exp" ]; then
		fail "$name: no golden file $exp"
	elif diff -u "$exp" "$file"; then
		ok "$name"
	else
		fail "$name: output differs from golden"
	fi
}

# Runs a command, recording exit code in RC and output in $WORK/out, $WORK/err.
run() {
	"$@" >"$WORK/out" 2>"$WORK/err"
	RC=$?
}

expect_rc() {
	want=$1 what=$2
	if [ "$RC" = "$want" ]; then ok "$what: exit $RC"; else fail "$what: exit $RC, expected $want"; sed 's/^/  stderr: /' "$WORK/err"; fi
}

# Builds the fixture set once per build tree (tests run in parallel).
ensure_fixtures() {
	need thin_restore thin_check
	mkdir -p "$FIXDIR"
	(
		flock 9
		if [ ! -f "$FIXDIR/.stamp" ] || [ "$top_srcdir/tests/fixtures/build-fixtures" -nt "$FIXDIR/.stamp" ] ||
			[ "$top_builddir/tests/fixtures/genpool" -nt "$FIXDIR/.stamp" ] ||
			[ "$top_builddir/tests/fixtures/fixturepp" -nt "$FIXDIR/.stamp" ]; then
			sh "$top_srcdir/tests/fixtures/build-fixtures" "$FIXDIR" "$top_builddir" >"$FIXDIR/build.log" 2>&1 ||
				{ cat "$FIXDIR/build.log"; exit 1; }
			touch "$FIXDIR/.stamp"
		fi
	) 9>"$FIXDIR/.lock" || { echo "FAIL: could not build fixtures"; exit 1; }
}

# Every metadata fixture, by name.
fixtures() {
	for f in "$FIXDIR"/*.meta; do basename "$f" .meta; done
}

finish() {
	echo "$TESTNAME: $PASSES passed, $FAILS failed"
	[ "$FAILS" = 0 ] || exit 1
	[ "$PASSES" -gt 0 ] || exit 1
	exit 0
}

# Builds the synthetic Docker root of a scenario once per build tree, into
# $top_builddir/tests/fixtures/roots/SCENARIO (tests run in parallel);
# with FS ext4, into SCENARIO-ext4 with ext4 filesystems (real files).
ensure_dockerroot() {
	scenario=$1 fsopt=
	need thin_restore thin_check mkfs.xfs mkfs.ext4
	dir="$top_builddir/tests/fixtures/roots/$scenario"
	if [ "${2:-xfs}" = ext4 ]; then
		fsopt=--fs=ext4
		dir="$dir-ext4"
	fi
	mkdir -p "$top_builddir/tests/fixtures/roots"
	(
		flock 9
		gen="$top_srcdir/tests/fixtures/dockerroot/gen-dockerroot"
		if [ ! -f "$dir/.stamp" ] || [ "$gen" -nt "$dir/.stamp" ] ||
			[ "$top_builddir/tests/fixtures/dockerroot/dockerroot" -nt "$dir/.stamp" ]; then
			rm -rf "$dir"
			sh "$gen" $fsopt "$dir" "$scenario" "$top_builddir" >"$dir.log" 2>&1 ||
				{ cat "$dir.log"; exit 1; }
			touch "$dir/.stamp"
		fi
	) 9>"$top_builddir/tests/fixtures/roots/.lock" || { echo "FAIL: could not build the $scenario root"; exit 1; }
	ROOTDIR=$dir
}

# Compares scan's classes with the scenario's expect.tsv: one line
# "thin_id hash class" per device or file, sorted.
scan_classes() { # json-file
	jq -r '(.devices[] | [(.thin_id // "-"), ((.hash // "-") | if . == "" then "base" else . end), .class] | @tsv),
	       (.findings[] | select(.class == "transient") | ["-", .path, .class] | @tsv)' "$1" | sort
}
