/* The stock feed's quote frames, decoded, validated and encoded in C.
 *
 * Why this exists: at full speed the service spends two thirds of its CPU decoding
 * quotes, checking them with Decimals and encoding their JSON, one Python step at a
 * time (docs/architecture.md, "Native quote path"). This module does the same work
 * for the common frame (plain quotes, plain numbers, ASCII text) and nothing else:
 *
 *   scan(data) -> QuoteBlock | None
 *       Parses a frame that is a JSON array of stock quotes. Returns None, having
 *       changed nothing, for anything outside the common case (another message type,
 *       an escape, a non-ASCII byte, an exponent, a negative price, more than 18
 *       digits, a duplicate key, a mid that Decimal would print in scientific
 *       notation, ...): the Python path then decodes the frame as before.
 *
 *   QuoteBlock.process(subscribed, wildcard, seqs, instants, epoch_json,
 *                      instant_key, max_price) -> (updates, newest, rejected)
 *       Applies the processor's rules in the processor's order and returns exactly
 *       what QuoteProcessor.process returns for the same quotes (a test holds the
 *       two together byte for byte): updates as (symbol, price JSON or b"", event
 *       JSON), newest as {symbol: index of its newest update}, rejected as counts
 *       (unsubscribed, malformed, crossed, negative_size, stale).
 *
 * Numbers are exact: a price is its digits as an integer and a power of ten, and the
 * mid is (bid + ask) / 2 computed as Decimal computes it at 28 digits (a result that
 * would need rounding is malformed, as Decimal's Inexact trap makes it there).
 */
#define PY_SSIZE_T_CLEAN
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

typedef struct {
    PyObject_HEAD
    PyObject *data; /* the frame's bytes: every Span points into them */
    Py_ssize_t n;
    Slot *slots;
} QuoteBlock;

static PyTypeObject QuoteBlockType;

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

/* -- scan ------------------------------------------------------------------------ */

static PyObject *scan(PyObject *module, PyObject *args) {
    (void)module;
    PyObject *data;
    unsigned long long max_price;
    if (!PyArg_ParseTuple(args, "SK", &data, &max_price)) return NULL;
    const char *base = PyBytes_AS_STRING(data);
    const char *end = base + PyBytes_GET_SIZE(data);
    const char *p = ws(base, end);
    if (p >= end || *p != '[') Py_RETURN_NONE;
    Py_ssize_t cap = 0, n = 0;
    for (const char *c = p; c < end; c++) cap += *c == '{';
    if (cap == 0) Py_RETURN_NONE;
    Slot *slots = PyMem_Malloc(sizeof(Slot) * (size_t)cap);
    if (slots == NULL) return PyErr_NoMemory();
    p = ws(p + 1, end);
    for (;;) {
        if (n >= cap || (p = quote(p, end, base, &slots[n])) == NULL
            || !judge(&slots[n], (uint64_t)max_price)) {
            PyMem_Free(slots);
            Py_RETURN_NONE;
        }
        n++;
        p = ws(p, end);
        if (p < end && *p == ',') { p = ws(p + 1, end); continue; }
        if (p < end && *p == ']' && ws(p + 1, end) == end) break;
        PyMem_Free(slots);
        Py_RETURN_NONE;
    }
    QuoteBlock *block = PyObject_New(QuoteBlock, &QuoteBlockType);
    if (block == NULL) { PyMem_Free(slots); return NULL; }
    Py_INCREF(data);
    block->data = data;
    block->n = n;
    block->slots = slots;
    return (PyObject *)block;
}

/* -- process --------------------------------------------------------------------- */

static char *put(char *o, const char *s, size_t n) { memcpy(o, s, n); return o + n; }
#define PUT(o, lit) put((o), (lit), sizeof(lit) - 1)

static char *put_span(char *o, const char *base, Span s) { return put(o, base + s.off, (size_t)s.len); }

static char *put_int(char *o, long long v) {
    char d[24];
    int n = 0;
    unsigned long long u = v < 0 ? 0ULL - (unsigned long long)v : (unsigned long long)v;
    do { d[n++] = (char)('0' + (int)(u % 10)); u /= 10; } while (u);
    if (v < 0) *o++ = '-';
    while (n) *o++ = d[--n];
    return o;
}

static char *put_exchange(char *o, const char *base, Span s) {
    if (s.len < 0) return PUT(o, "null");
    *o++ = '"';
    o = put_span(o, base, s);
    *o++ = '"';
    return o;
}

/* The record and event are under 512 bytes of fields we bound, plus the epoch. */
#define BUFFER 2048

static PyObject *event_json(const char *base, const Slot *q, const char *epoch, size_t elen) {
    char buf[BUFFER], *o = buf;
    o = PUT(o, "{\"event_type\":\"price.updated\",\"symbol\":\"");
    o = put_span(o, base, q->sym);
    o = PUT(o, "\",\"price\":\"");
    o = put_decimal(o, q->mid, q->mid_exp);
    o = PUT(o, "\",\"bid\":\"");
    o = put_span(o, base, q->bp.text);
    o = PUT(o, "\",\"ask\":\"");
    o = put_span(o, base, q->ap.text);
    o = PUT(o, "\",\"bid_size\":");
    o = put_int(o, q->bs);
    o = PUT(o, ",\"ask_size\":");
    o = put_int(o, q->as);
    o = PUT(o, ",\"seq\":");
    o = put_int(o, q->seq);
    o = PUT(o, ",\"epoch\":");
    o = put(o, epoch, elen);
    o = PUT(o, ",\"timestamp\":\"");
    o = put_span(o, base, q->t);
    o = PUT(o, "\"}");
    return PyBytes_FromStringAndSize(buf, o - buf);
}

static PyObject *price_json(const char *base, const Slot *q, const char *epoch, size_t elen) {
    char buf[BUFFER], *o = buf;
    o = PUT(o, "{\"symbol\":\"");
    o = put_span(o, base, q->sym);
    o = PUT(o, "\",\"bid\":\"");
    o = put_span(o, base, q->bp.text);
    o = PUT(o, "\",\"ask\":\"");
    o = put_span(o, base, q->ap.text);
    o = PUT(o, "\",\"mid\":\"");
    o = put_decimal(o, q->mid, q->mid_exp);
    o = PUT(o, "\",\"bid_size\":");
    o = put_int(o, q->bs);
    o = PUT(o, ",\"ask_size\":");
    o = put_int(o, q->as);
    o = PUT(o, ",\"timestamp\":\"");
    o = put_span(o, base, q->t);
    o = PUT(o, "\",\"exchange\":");
    o = put_exchange(o, base, q->bx);
    o = PUT(o, ",\"bid_exchange\":");
    o = put_exchange(o, base, q->bx);
    o = PUT(o, ",\"ask_exchange\":");
    o = put_exchange(o, base, q->ax);
    o = PUT(o, ",\"seq\":");
    o = put_int(o, q->seq);
    o = PUT(o, ",\"epoch\":");
    o = put(o, epoch, elen);
    *o++ = '}';
    return PyBytes_FromStringAndSize(buf, o - buf);
}

/* One symbol of the frame being processed: what the processor's dicts hold for it is
 * read once, kept here while its quotes go by, and written back once at the end, so a
 * symbol quoted many times in a frame costs one lookup per dict, not one per quote. */
typedef struct {
    PyObject *sym;        /* owned */
    const char *name;     /* its bytes in the frame */
    Py_ssize_t len;
    int wanted;           /* subscribed */
    int loaded;           /* seq and instant read from the dicts */
    long long seq;        /* the last seq taken */
    PyObject *instant;    /* owned: the last accepted instant as a str, or NULL */
    char key[32];         /* or as text in the fixed-width form */
    Py_ssize_t key_len;   /* < 0: not as text */
    int instant_changed;
    Py_ssize_t last;      /* index among the updates of its newest, -1: none accepted */
    int listed;           /* in the newest dict already */
} Entry;

typedef struct {
    Entry *entries;
    Py_ssize_t count;
    Py_ssize_t *table; /* open addressing: entry index + 1, 0 empty */
    size_t mask;
} Symbols;

static Entry *entry_of(Symbols *t, const char *name, Py_ssize_t len, PyObject *subscribed,
                       int wildcard) {
    uint64_t h = 1469598103934665603ULL; /* FNV-1a */
    for (Py_ssize_t i = 0; i < len; i++) h = (h ^ (unsigned char)name[i]) * 1099511628211ULL;
    size_t at = (size_t)h & t->mask;
    while (t->table[at]) {
        Entry *e = &t->entries[t->table[at] - 1];
        if (e->len == len && memcmp(e->name, name, (size_t)len) == 0) return e;
        at = (at + 1) & t->mask;
    }
    Entry *e = &t->entries[t->count];
    memset(e, 0, sizeof(Entry));
    e->sym = PyUnicode_FromStringAndSize(name, len);
    if (e->sym == NULL) return NULL;
    t->table[at] = ++t->count;
    e->name = name;
    e->len = len;
    e->key_len = -1;
    e->last = -1;
    if (wildcard) {
        e->wanted = 1;
    } else if ((e->wanted = PySequence_Contains(subscribed, e->sym)) < 0) {
        return NULL;
    }
    return e;
}

static int load(Entry *e, PyObject *seqs, PyObject *instants) {
    PyObject *last = PyDict_GetItemWithError(seqs, e->sym);
    if (last != NULL) {
        e->seq = PyLong_AsLongLong(last);
        if (e->seq == -1 && PyErr_Occurred()) return -1;
    } else if (PyErr_Occurred()) {
        return -1;
    }
    PyObject *instant = PyDict_GetItemWithError(instants, e->sym);
    if (instant == NULL && PyErr_Occurred()) return -1;
    Py_XINCREF(instant);
    e->instant = instant;
    e->loaded = 1;
    return 0;
}

/* The entry's last instant as bytes (UTF-8 orders as the str does); 0: none. */
static int last_instant(const Entry *e, const char *base, const char **text, Py_ssize_t *len) {
    (void)base;
    if (e->key_len >= 0) {
        *text = e->key;
        *len = e->key_len;
        return 1;
    }
    if (e->instant == NULL) return 0;
    *text = PyUnicode_AsUTF8AndSize(e->instant, len);
    return *text == NULL ? -1 : 1;
}

static int older(const char *a, Py_ssize_t alen, const char *b, Py_ssize_t blen) {
    int c = memcmp(a, b, (size_t)(alen < blen ? alen : blen));
    return c < 0 || (c == 0 && alen < blen);
}

/* instant_key's fast forms (libs/telemetry/timestamps.py), the same text: a stamp in the
 * fixed-width form is its own key; "...:SSZ" and "...:SS.fZ" (up to 9 digits) are padded
 * with zeros. 0 for any other stamp: instant_key itself decides. */
static int fixed_width(const char *t, Py_ssize_t len, char *key) {
    if (len < 20 || t[len - 1] != 'Z') return 0;
    if (len == 20) {
        memcpy(key, t, 19);
        memcpy(key + 19, ".000000000Z", 11);
        return 1;
    }
    if (t[19] != '.' || len < 22 || len > 30) return 0;
    memcpy(key, t, (size_t)len - 1);
    memset(key + len - 1, '0', (size_t)(30 - len));
    key[29] = 'Z';
    return 1;
}

/* Orders a quote's stamp against its symbol's last instant: 1 stale, 0 accepted (and
 * recorded as the last), -1 error. A stamp outside instant_key's fast forms is ordered by
 * instant_key's answer; one instant_key refuses is neither ordered nor recorded. */
static int order(Entry *e, const char *base, Span stamp, PyObject *instant_key) {
    const char *t = base + stamp.off, *prev, *text;
    char fixed[32];
    Py_ssize_t prev_len, len = 30;
    PyObject *key = NULL;
    if (fixed_width(t, stamp.len, fixed)) {
        text = fixed;
    } else {
        PyObject *raw = PyUnicode_FromStringAndSize(t, stamp.len);
        if (raw == NULL) return -1;
        key = PyObject_CallOneArg(instant_key, raw);
        Py_DECREF(raw);
        if (key == NULL) {
            if (!PyErr_ExceptionMatches(PyExc_ValueError)) return -1;
            PyErr_Clear();
            return 0;
        }
        if (!PyUnicode_Check(key)) {
            Py_DECREF(key);
            PyErr_SetString(PyExc_TypeError, "instant_key must return a str");
            return -1;
        }
        if ((text = PyUnicode_AsUTF8AndSize(key, &len)) == NULL) { Py_DECREF(key); return -1; }
        if (len == 0) { Py_DECREF(key); return 0; }
    }
    int have = last_instant(e, base, &prev, &prev_len);
    if (have < 0 || (have && older(text, len, prev, prev_len))) {
        Py_XDECREF(key);
        return have < 0 ? -1 : 1;
    }
    Py_CLEAR(e->instant);
    e->instant = key; /* NULL for a key kept as text */
    e->key_len = -1;
    if (key == NULL) {
        memcpy(e->key, fixed, 30);
        e->key_len = 30;
    }
    e->instant_changed = 1;
    return 0;
}

static int store(Entry *e, const char *base, PyObject *seqs, PyObject *instants) {
    if (e->last < 0) return 0;
    PyObject *seq = PyLong_FromLongLong(e->seq);
    if (seq == NULL) return -1;
    int failed = PyDict_SetItem(seqs, e->sym, seq);
    Py_DECREF(seq);
    if (failed || !e->instant_changed) return failed;
    (void)base;
    PyObject *instant = e->instant;
    if (e->key_len >= 0) instant = PyUnicode_FromStringAndSize(e->key, e->key_len);
    else Py_INCREF(instant);
    if (instant == NULL) return -1;
    failed = PyDict_SetItem(instants, e->sym, instant);
    Py_DECREF(instant);
    return failed;
}

enum { R_UNSUBSCRIBED, R_MALFORMED, R_CROSSED, R_NEGATIVE_SIZE, R_STALE, R_COUNT };

static PyObject *block_process(QuoteBlock *self, PyObject *args) {
    PyObject *subscribed, *seqs, *instants, *epoch, *instant_key;
    int wildcard;
    if (!PyArg_ParseTuple(args, "OpO!O!SO", &subscribed, &wildcard, &PyDict_Type, &seqs,
                          &PyDict_Type, &instants, &epoch, &instant_key))
        return NULL;
    const char *base = PyBytes_AS_STRING(self->data);
    const char *ep = PyBytes_AS_STRING(epoch);
    size_t elen = (size_t)PyBytes_GET_SIZE(epoch);
    if (elen > BUFFER / 2) {
        PyErr_SetString(PyExc_ValueError, "epoch too long");
        return NULL;
    }
    Py_ssize_t rejected[R_COUNT] = {0};
    Py_ssize_t n = self->n, k = 0;
    size_t size = 16;
    while (size < 2 * (size_t)n) size *= 2;
    Symbols table = {PyMem_Malloc(((size_t)n + 1) * sizeof(Entry)), 0,
                     PyMem_Calloc(size, sizeof(Py_ssize_t)), size - 1};
    Py_ssize_t *accepted = PyMem_Malloc(sizeof(Py_ssize_t) * ((size_t)n + 1));
    Entry **owner = PyMem_Malloc(sizeof(Entry *) * ((size_t)n + 1));
    PyObject *newest = PyDict_New(), *updates = NULL, *result = NULL;
    if (table.entries == NULL || table.table == NULL || accepted == NULL || owner == NULL
        || newest == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        Slot *q = &self->slots[i];
        Entry *e = entry_of(&table, base + q->sym.off, q->sym.len, subscribed, wildcard);
        if (e == NULL) goto done;
        if (!e->wanted) { rejected[R_UNSUBSCRIBED]++; continue; }
        const char *t = base + q->t.off;
        if (t[4] != '-' || t[7] != '-' || t[10] != 'T' || t[13] != ':' || t[16] != ':') {
            rejected[R_MALFORMED]++;
            continue;
        }
        if (q->verdict == CROSSED) { rejected[R_CROSSED]++; continue; }
        if (q->verdict == TOO_HIGH) { rejected[R_MALFORMED]++; continue; }
        if (q->bs < 0 || q->as < 0) { rejected[R_NEGATIVE_SIZE]++; continue; }
        if (q->verdict == INEXACT) { rejected[R_MALFORMED]++; continue; }
        if (!e->loaded && load(e, seqs, instants) < 0) goto done;
        int stale = order(e, base, q->t, instant_key);
        if (stale < 0) goto done;
        if (stale) { rejected[R_STALE]++; continue; }
        q->seq = ++e->seq;
        e->last = k;
        owner[k] = e;
        accepted[k++] = i;
    }
    for (Py_ssize_t i = 0; i < table.count; i++)
        if (store(&table.entries[i], base, seqs, instants) < 0) goto done;
    updates = PyList_New(k);
    if (updates == NULL) goto done;
    for (Py_ssize_t j = 0; j < k; j++) {
        Slot *q = &self->slots[accepted[j]];
        Entry *e = owner[j];
        if (!e->listed) { /* first accepted: the dict's order is the Python path's */
            PyObject *index = PyLong_FromSsize_t(e->last);
            if (index == NULL) goto done;
            int failed = PyDict_SetItem(newest, e->sym, index);
            Py_DECREF(index);
            if (failed) goto done;
            e->listed = 1;
        }
        PyObject *record = e->last == j ? price_json(base, q, ep, elen)
                                        : PyBytes_FromStringAndSize(NULL, 0);
        PyObject *event = event_json(base, q, ep, elen);
        PyObject *update = record && event ? PyTuple_Pack(3, e->sym, record, event) : NULL;
        Py_XDECREF(record);
        Py_XDECREF(event);
        if (update == NULL) goto done;
        PyList_SET_ITEM(updates, j, update);
    }
    result = Py_BuildValue("OO(nnnnn)", updates, newest, rejected[R_UNSUBSCRIBED],
                           rejected[R_MALFORMED], rejected[R_CROSSED], rejected[R_NEGATIVE_SIZE],
                           rejected[R_STALE]);
done:
    if (table.entries != NULL)
        for (Py_ssize_t i = 0; i < table.count; i++) {
            Py_XDECREF(table.entries[i].sym);
            Py_XDECREF(table.entries[i].instant);
        }
    PyMem_Free(table.entries);
    PyMem_Free(table.table);
    PyMem_Free(accepted);
    PyMem_Free(owner);
    Py_XDECREF(newest);
    Py_XDECREF(updates);
    return result;
}

static Py_ssize_t block_len(QuoteBlock *self) { return self->n; }

static PyObject *block_data(QuoteBlock *self, void *closure) {
    (void)closure;
    Py_INCREF(self->data);
    return self->data;
}

static void block_dealloc(QuoteBlock *self) {
    Py_XDECREF(self->data);
    PyMem_Free(self->slots);
    PyObject_Free(self);
}

static PyMethodDef block_methods[] = {
    {"process", (PyCFunction)block_process, METH_VARARGS,
     "Validate, number and encode the block's quotes (see the module's docstring)."},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef block_getset[] = {
    {"data", (getter)block_data, NULL, "The frame's bytes.", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PySequenceMethods block_sequence = {.sq_length = (lenfunc)block_len};

static PyTypeObject QuoteBlockType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "libs.market_data.native._quotes.QuoteBlock",
    .tp_basicsize = sizeof(QuoteBlock),
    .tp_dealloc = (destructor)block_dealloc,
    .tp_as_sequence = &block_sequence,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "A frame of stock quotes, parsed: scan() makes them, process() uses them.",
    .tp_methods = block_methods,
    .tp_getset = block_getset,
};

static PyMethodDef module_methods[] = {
    {"scan", scan, METH_VARARGS,
     "scan(data: bytes, max_price: int) -> QuoteBlock | None: parse a frame of plain "
     "stock quotes, or None (nothing changed) for anything else."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT, "_quotes", "The stock feed's quote frames in C.", -1, module_methods,
    NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__quotes(void) {
    if (PyType_Ready(&QuoteBlockType) < 0) return NULL;
    PyObject *m = PyModule_Create(&module_def);
    if (m == NULL) return NULL;
    Py_INCREF(&QuoteBlockType);
    if (PyModule_AddObject(m, "QuoteBlock", (PyObject *)&QuoteBlockType) < 0) {
        Py_DECREF(&QuoteBlockType);
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
