/* The native quote path's records (see _quotes.c): a parsed quote and its numbers. */
#ifndef QUOTES_TYPES_H
#define QUOTES_TYPES_H

#include <Python.h>
#include <stdint.h>
#include <string.h>

typedef unsigned __int128 u128;

#define MAX_DIGITS 18       /* a price's digits: below 10**18, fits a uint64 */
#define MAX_SYMBOL 64       /* longer symbols take the Python path */
#define MAX_EXCHANGE 16
#define MIN_STAMP 20        /* Timestamp's bounds (libs/market_data/stream/messages.py) */
#define MAX_STAMP 35
#define MAX_DEPTH 32        /* nesting of skipped values */
#define PRECISION 28        /* Decimal's default context */

typedef struct {
    Py_ssize_t off, len; /* len < 0: null or absent */
} Span;

typedef struct {
    uint64_t coef;
    int exp; /* <= 0: minus the digits after the point */
    Span text; /* as sent: str(Decimal) of it when plain (no exponent, see judge) */
} Num;

enum { OK = 0, CROSSED = 1, TOO_HIGH = 2, INEXACT = 3 };

typedef struct {
    Span sym, t, bx, ax;
    Num bp, ap;
    int64_t bs, as;
    u128 mid;
    int mid_exp;
    int verdict; /* of the prices: OK, CROSSED, TOO_HIGH or INEXACT */
    long long seq;
} Slot;

#endif
