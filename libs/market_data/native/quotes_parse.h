/* Parsing one quote of a frame, and the exact-decimal checks and mid (see _quotes.c). */
#ifndef QUOTES_PARSE_H
#define QUOTES_PARSE_H

#include "quotes_types.h"

/* -- parsing: each returns the position after what it read, or NULL to bail out --- */

static const char *ws(const char *p, const char *end) {
    while (p < end && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')) p++;
    return p;
}

/* A string of printable ASCII without escapes; p is at the opening quote. */
static const char *plain_string(const char *p, const char *end, const char *base, Span *out) {
    const char *s = ++p;
    while (p < end && *p != '"') {
        unsigned char c = (unsigned char)*p;
        if (c < 0x20 || c >= 0x7f || c == '\\') return NULL;
        p++;
    }
    if (p >= end) return NULL;
    out->off = s - base;
    out->len = p - s;
    return p + 1;
}

/* JSON number grammar; sets *digits to the count of integer+fraction digits,
 * *frac to the fraction's, *exp_seen if an exponent follows. */
static const char *number(const char *p, const char *end, int *negative, int *digits, int *frac,
                          int *exp_seen) {
    *negative = 0; *digits = 0; *frac = 0; *exp_seen = 0;
    if (p < end && *p == '-') { *negative = 1; p++; }
    if (p >= end || *p < '0' || *p > '9') return NULL;
    if (*p == '0') { p++; (*digits)++; }
    else while (p < end && *p >= '0' && *p <= '9') { p++; (*digits)++; }
    if (p < end && *p == '.') {
        p++;
        if (p >= end || *p < '0' || *p > '9') return NULL;
        while (p < end && *p >= '0' && *p <= '9') { p++; (*digits)++; (*frac)++; }
    }
    if (p < end && (*p == 'e' || *p == 'E')) {
        *exp_seen = 1;
        p++;
        if (p < end && (*p == '+' || *p == '-')) p++;
        if (p >= end || *p < '0' || *p > '9') return NULL;
        while (p < end && *p >= '0' && *p <= '9') p++;
    }
    return p;
}

static const char *price(const char *p, const char *end, const char *base, Num *out) {
    const char *s = p;
    int negative, digits, frac, exp_seen;
    p = number(p, end, &negative, &digits, &frac, &exp_seen);
    if (p == NULL || negative || exp_seen || digits > MAX_DIGITS) return NULL;
    out->text.off = s - base;
    out->text.len = p - s;
    uint64_t c = 0;
    for (; s < p; s++)
        if (*s != '.') c = c * 10 + (uint64_t)(*s - '0');
    out->coef = c;
    out->exp = -frac;
    return p;
}

static const char *size(const char *p, const char *end, int64_t *out) {
    const char *s = p;
    int negative, digits, frac, exp_seen;
    p = number(p, end, &negative, &digits, &frac, &exp_seen);
    if (p == NULL || frac || exp_seen || digits > MAX_DIGITS) return NULL;
    int64_t v = 0;
    for (s += negative; s < p; s++) v = v * 10 + (*s - '0');
    *out = negative ? -v : v;
    return p;
}

static const char *skip_value(const char *p, const char *end, int depth);

static const char *skip_string(const char *p, const char *end) {
    p++;
    while (p < end && *p != '"') {
        unsigned char c = (unsigned char)*p;
        if (c < 0x20 || c >= 0x7f) return NULL;
        if (c == '\\') {
            p++;
            if (p >= end || strchr("\"\\/bfnrt", *p) == NULL || *p == 0) return NULL;
        }
        p++;
    }
    return p < end ? p + 1 : NULL;
}

static const char *literal(const char *p, const char *end, const char *word) {
    size_t n = strlen(word);
    if ((size_t)(end - p) < n || memcmp(p, word, n) != 0) return NULL;
    return p + n;
}

static const char *skip_value(const char *p, const char *end, int depth) {
    if (p >= end || depth > MAX_DEPTH) return NULL;
    switch (*p) {
    case '"': return skip_string(p, end);
    case 't': return literal(p, end, "true");
    case 'f': return literal(p, end, "false");
    case 'n': return literal(p, end, "null");
    case '[': case '{': {
        char close = *p == '[' ? ']' : '}';
        int object = *p == '{';
        p = ws(p + 1, end);
        if (p < end && *p == close) return p + 1;
        for (;;) {
            if (object) {
                if (p >= end || *p != '"' || (p = skip_string(p, end)) == NULL) return NULL;
                p = ws(p, end);
                if (p >= end || *p != ':') return NULL;
                p = ws(p + 1, end);
            }
            if ((p = skip_value(p, end, depth + 1)) == NULL) return NULL;
            p = ws(p, end);
            if (p < end && *p == ',') { p = ws(p + 1, end); continue; }
            if (p < end && *p == close) return p + 1;
            return NULL;
        }
    }
    default: {
        int negative, digits, frac, exp_seen;
        return number(p, end, &negative, &digits, &frac, &exp_seen);
    }
    }
}

static const char *string_or_null(const char *p, const char *end, const char *base, Span *out) {
    if (p < end && *p == 'n') {
        out->len = -1;
        return literal(p, end, "null");
    }
    if (p < end && *p == '"') return plain_string(p, end, base, out);
    return NULL;
}

enum { K_T = 1, K_S = 2, K_BP = 4, K_AP = 8, K_BS = 16, K_AS = 32, K_TS = 64, K_BX = 128, K_AX = 256 };
#define REQUIRED (K_T | K_S | K_BP | K_AP | K_BS | K_AS | K_TS)

static int key_bit(const char *k, Py_ssize_t n) {
    if (n == 1) {
        if (k[0] == 'T') return K_T;
        if (k[0] == 'S') return K_S;
        if (k[0] == 't') return K_TS;
        return 0;
    }
    if (n == 2) {
        if (k[0] == 'b' && k[1] == 'p') return K_BP;
        if (k[0] == 'a' && k[1] == 'p') return K_AP;
        if (k[0] == 'b' && k[1] == 's') return K_BS;
        if (k[0] == 'a' && k[1] == 's') return K_AS;
        if (k[0] == 'b' && k[1] == 'x') return K_BX;
        if (k[0] == 'a' && k[1] == 'x') return K_AX;
    }
    return 0;
}

static const char *quote(const char *p, const char *end, const char *base, Slot *q) {
    int seen = 0;
    Span key, tag;
    q->bx.len = -1;
    q->ax.len = -1;
    if (p >= end || *p != '{') return NULL;
    p = ws(p + 1, end);
    for (;;) {
        if (p >= end || *p != '"' || (p = plain_string(p, end, base, &key)) == NULL) return NULL;
        p = ws(p, end);
        if (p >= end || *p != ':') return NULL;
        p = ws(p + 1, end);
        int bit = key_bit(base + key.off, key.len);
        if (bit & seen) return NULL; /* a duplicate key: leave it to msgspec */
        seen |= bit;
        switch (bit) {
        case K_T:
            if (p >= end || *p != '"' || (p = plain_string(p, end, base, &tag)) == NULL) return NULL;
            if (tag.len != 1 || base[tag.off] != 'q') return NULL;
            break;
        case K_S:
            if (p >= end || *p != '"' || (p = plain_string(p, end, base, &q->sym)) == NULL) return NULL;
            if (q->sym.len > MAX_SYMBOL) return NULL;
            break;
        case K_TS:
            if (p >= end || *p != '"' || (p = plain_string(p, end, base, &q->t)) == NULL) return NULL;
            if (q->t.len < MIN_STAMP || q->t.len > MAX_STAMP) return NULL;
            break;
        case K_BP: p = price(p, end, base, &q->bp); break;
        case K_AP: p = price(p, end, base, &q->ap); break;
        case K_BS: p = size(p, end, &q->bs); break;
        case K_AS: p = size(p, end, &q->as); break;
        case K_BX:
            p = string_or_null(p, end, base, &q->bx);
            if (p != NULL && q->bx.len > MAX_EXCHANGE) return NULL;
            break;
        case K_AX:
            p = string_or_null(p, end, base, &q->ax);
            if (p != NULL && q->ax.len > MAX_EXCHANGE) return NULL;
            break;
        default: p = skip_value(p, end, 1);
        }
        if (p == NULL) return NULL;
        p = ws(p, end);
        if (p < end && *p == ',') { p = ws(p + 1, end); continue; }
        if (p < end && *p == '}') break;
        return NULL;
    }
    return (seen & REQUIRED) == REQUIRED ? p + 1 : NULL;
}

/* An element that is not a quote (a trade, a bar, a control message, ...): its end, or
 * NULL unless it is a well-formed object whose one "T" is a plain string other than "q".
 * Such elements are handed to the Python decoder; a quote the parser above refused is
 * not (the whole frame then takes the Python path, which keeps the quotes' order). */
static const char *other_element(const char *p, const char *end, const char *base) {
    Span key, tag = {0, -1};
    if (p >= end || *p != '{') return NULL;
    p = ws(p + 1, end);
    if (p < end && *p == '}') return NULL;
    for (;;) {
        if (p >= end || *p != '"' || (p = plain_string(p, end, base, &key)) == NULL) return NULL;
        p = ws(p, end);
        if (p >= end || *p != ':') return NULL;
        p = ws(p + 1, end);
        if (key.len == 1 && base[key.off] == 'T') {
            if (tag.len >= 0 || p >= end || *p != '"') return NULL; /* a second "T" */
            if ((p = plain_string(p, end, base, &tag)) == NULL) return NULL;
        } else if ((p = skip_value(p, end, 1)) == NULL) {
            return NULL;
        }
        p = ws(p, end);
        if (p < end && *p == ',') { p = ws(p + 1, end); continue; }
        if (p < end && *p == '}') break;
        return NULL;
    }
    if (tag.len < 0 || (tag.len == 1 && base[tag.off] == 'q')) return NULL;
    return p + 1;
}

/* -- exact decimals -------------------------------------------------------------- */

static int ndigits(u128 c) {
    int n = 1;
    while (c > UINT64_MAX) { c /= 10; n++; } /* 128-bit division is slow: rare here */
    uint64_t v = (uint64_t)c;
    while (v >= 10) { v /= 10; n++; }
    return n;
}

static u128 pow10_(int n) {
    u128 r = 1;
    while (n-- > 0) r *= 10;
    return r;
}

/* str(Decimal) of coefficient c and exponent exp <= 0, when Decimal prints it without
 * an exponent (the caller has checked: ndigits(c) - 1 + exp >= -6). */
static char *put_decimal(char *o, u128 c, int exp) {
    char d[48];
    int n = 0;
    while (c > UINT64_MAX) { d[n++] = (char)('0' + (int)(c % 10)); c /= 10; }
    uint64_t v = (uint64_t)c;
    do { d[n++] = (char)('0' + (int)(v % 10)); v /= 10; } while (v);
    int frac = -exp;
    if (frac == 0) {
        while (n) *o++ = d[--n];
    } else if (n > frac) {
        while (n > frac) *o++ = d[--n];
        *o++ = '.';
        while (n) *o++ = d[--n];
    } else {
        *o++ = '0';
        *o++ = '.';
        for (int i = 0; i < frac - n; i++) *o++ = '0';
        while (n) *o++ = d[--n];
    }
    return o;
}

static int plain(u128 c, int exp) { return ndigits(c) - 1 + exp >= -6; }

/* The checks that depend on the prices alone, and the mid; 0 to bail out. */
static int judge(Slot *q, uint64_t max_price) {
    int e = q->bp.exp < q->ap.exp ? q->bp.exp : q->ap.exp;
    u128 b = (u128)q->bp.coef * pow10_(q->bp.exp - e);
    u128 a = (u128)q->ap.coef * pow10_(q->ap.exp - e);
    if (!plain(q->bp.coef, q->bp.exp) || !plain(q->ap.coef, q->ap.exp)) return 0;
    q->verdict = OK;
    q->mid = 0; /* read only for an OK verdict; never left undefined */
    q->mid_exp = 0;
    if (a < b) { q->verdict = CROSSED; return 1; }
    if (q->ap.coef / (uint64_t)pow10_(-q->ap.exp) >= max_price) { q->verdict = TOO_HIGH; return 1; }
    u128 s = a + b;
    if (ndigits(s) > PRECISION) { q->verdict = INEXACT; return 1; }
    if (s % 2 == 0) { q->mid = s / 2; q->mid_exp = e; }
    else { q->mid = s * 5; q->mid_exp = e - 1; }
    if (ndigits(q->mid) > PRECISION) { q->verdict = INEXACT; return 1; }
    return plain(q->mid, q->mid_exp);
}

#endif
