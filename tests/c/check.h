/*
 * check.h: a tiny assertion helper for the Shoal C ABI test (tests/c/test_shoal.c).
 *
 * A failed CHECK prints file:line, the failed condition and the calling thread's Shoal last
 * error, then jumps back to the test runner (RUN_TEST), which counts the test as failed and goes
 * on with the next one. main() exits non-zero when any test failed. CHECKs must only be used on
 * the main thread (callbacks record what they saw; the test checks it afterwards).
 */
#ifndef SHOAL_TEST_CHECK_H
#define SHOAL_TEST_CHECK_H

#include <inttypes.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "shoal.h"

static jmp_buf check_jump;
static int check_passed;
static int check_failed;

/* Prints the calling thread's last Shoal error (if any). Reading it is not a Shoal call that
 * resets it, so this can run right after the call under test. */
static void check_print_last_error(void) {
    shoal_error_t e;
    if (shoal_get_last_error(&e)) {
        fprintf(stderr, "    last error: %s (%d), category %d: %s%s%s\n", shoal_error_name(e.code), (int)e.code,
                (int)e.category, e.message ? e.message : "(no message)", e.path ? " path: " : "",
                e.path ? e.path : "");
    } else {
        fprintf(stderr, "    last error: none\n");
    }
}

#if defined(__GNUC__) || defined(__clang__)
__attribute__((format(printf, 3, 4), noreturn))
#endif
static void check_failf(const char *file, int line, const char *fmt, ...) {
    va_list ap;
    fprintf(stderr, "%s:%d: CHECK failed: ", file, line);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    check_print_last_error();
    fflush(stderr);
    longjmp(check_jump, 1);
}

/* CHECK(cond): cond must hold. */
#define CHECK(cond)                                                   \
    do {                                                              \
        if (!(cond)) check_failf(__FILE__, __LINE__, "%s", #cond);    \
    } while (0)

/* CHECK_INT_EQ(a, b): two integers are equal (printed on failure). */
#define CHECK_INT_EQ(a, b)                                                                      \
    do {                                                                                        \
        long long check_a_ = (long long)(a), check_b_ = (long long)(b);                         \
        if (check_a_ != check_b_)                                                               \
            check_failf(__FILE__, __LINE__, "%s == %s (%lld != %lld)", #a, #b, check_a_, check_b_); \
    } while (0)

/* CHECK_STR_EQ(a, b): two NUL-terminated strings are equal (NULL is never equal). */
#define CHECK_STR_EQ(a, b)                                                                      \
    do {                                                                                        \
        const char *check_a_ = (a), *check_b_ = (b);                                            \
        if (!check_a_ || !check_b_ || strcmp(check_a_, check_b_) != 0)                          \
            check_failf(__FILE__, __LINE__, "%s == %s (\"%s\" != \"%s\")", #a, #b,              \
                        check_a_ ? check_a_ : "(null)", check_b_ ? check_b_ : "(null)");        \
    } while (0)

/* CHECK_NO_ERROR(): the last Shoal call on this thread did not fail. */
#define CHECK_NO_ERROR()                                                                        \
    do {                                                                                        \
        if (shoal_get_last_error(NULL))                                                         \
            check_failf(__FILE__, __LINE__, "the last Shoal call set an error");               \
    } while (0)

static void check_error_impl(const char *file, int line, const char *expr, bool failed, int32_t code,
                             const char *code_name) {
    shoal_error_t e;
    if (!failed) check_failf(file, line, "%s: expected a failure with %s, but the call succeeded", expr, code_name);
    if (!shoal_get_last_error(&e))
        check_failf(file, line, "%s: the call failed but set no last error (expected %s)", expr, code_name);
    if (e.code != code)
        check_failf(file, line, "%s: expected error %s (%d), got %s (%d)", expr, code_name, (int)code,
                    shoal_error_name(e.code), (int)e.code);
    if (!e.message || !e.message[0]) check_failf(file, line, "%s: the %s error has no message", expr, code_name);
    if (e.category == SHOAL_ERR_CATEGORY_NONE)
        check_failf(file, line, "%s: the %s error has category NONE", expr, code_name);
}

/* CHECK_ERR(failed, code): `failed` (an expression that makes exactly one Shoal call, e.g.
 * `!shoal_realm_commit(r)` or `shoal_realm_query(...) == NULL`) is true, and that call's last error
 * has this code, a message and a category. */
#define CHECK_ERR(failed, code) check_error_impl(__FILE__, __LINE__, #failed, (failed), (code), #code)

/* Runs one test function; a failed CHECK inside jumps back here. */
#define RUN_TEST(fn)                                              \
    do {                                                          \
        fprintf(stdout, "test %-40s ", #fn);                      \
        fflush(stdout);                                           \
        if (setjmp(check_jump) == 0) {                            \
            fn();                                                 \
            check_passed++;                                       \
            fprintf(stdout, "ok\n");                              \
        } else {                                                  \
            check_failed++;                                       \
            fprintf(stdout, "FAILED\n");                          \
        }                                                         \
        fflush(stdout);                                           \
    } while (0)

#endif /* SHOAL_TEST_CHECK_H */
