/* Shared by the libFuzzer harnesses of tests/fuzz and their replay driver.
 *
 * Each harness is one file defining LLVMFuzzerTestOneInput. Built with
 * clang -fsanitize=fuzzer it is a fuzzer; linked with replay.c (any
 * compiler) it runs the files named on its command line once each, which is
 * how `make check` replays the seeds and tests/fuzz/regress/.
 *
 * Beyond "no crash", the harnesses check what the readers promise about
 * their output (bounds, order) and abort through FUZZ_ASSERT when a promise
 * is broken, so the fuzzer reports it like a crash. */
#ifndef DMR_TESTS_FUZZ_FUZZ_H
#define DMR_TESTS_FUZZ_FUZZ_H

#include <stddef.h>
#include <stdint.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Prints "fuzz invariant broken: <what>" with the place, then aborts. */
void fuzz_fail(const char *file, int line, const char *fmt, ...) __attribute__((format(printf, 3, 4), noreturn));
#define FUZZ_ASSERT(cond, ...) do { if (!(cond)) fuzz_fail(__FILE__, __LINE__, __VA_ARGS__); } while (0)

/* A private directory for this process's scratch files, made on first use
 * under $TMPDIR (or /tmp) and removed with everything in it at exit. When
 * it cannot be made the process exits: a harness that skipped its work
 * would pass without testing anything. */
const char *fuzz_tmpdir(void);

/* Removes everything below dir (not dir itself), never following symlinks. */
void fuzz_rm_below(const char *dir);

#endif
