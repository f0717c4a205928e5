/* Per-symbol state while a frame is processed: subscription, seq, ordering by instant (see _quotes.c). */
#ifndef QUOTES_SYMBOLS_H
#define QUOTES_SYMBOLS_H

#include "quotes_types.h"

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

/* Symbols met before, with the str made for each: a symbol the feed repeats (the whole
 * market repeats thousands, frame after frame) is not decoded and hashed again, and the
 * processor's dicts find the very object they hold. Bounded: emptied when half full. */
#define NAMES_SLOTS 65536 /* a power of two */
#define NAME_MAX_LEN 22

typedef struct {
    PyObject *str; /* owned; NULL: an empty slot */
    uint64_t hash;
    unsigned char len;
    char name[NAME_MAX_LEN];
} Name;

static Name *names;
static Py_ssize_t names_count;

static void names_clear(void) {
    for (size_t i = 0; i < NAMES_SLOTS; i++) Py_CLEAR(names[i].str);
    names_count = 0;
}

/* A new reference to the str of name (its FNV-1a hash h). */
static PyObject *symbol_str(const char *name, Py_ssize_t len, uint64_t h) {
    if (len > NAME_MAX_LEN) return PyUnicode_FromStringAndSize(name, len);
    if (names == NULL && (names = PyMem_Calloc(NAMES_SLOTS, sizeof(Name))) == NULL)
        return PyErr_NoMemory();
    size_t at = (size_t)h & (NAMES_SLOTS - 1);
    for (; names[at].str != NULL; at = (at + 1) & (NAMES_SLOTS - 1)) {
        Name *n = &names[at];
        if (n->hash == h && n->len == len && memcmp(n->name, name, (size_t)len) == 0) {
            Py_INCREF(n->str);
            return n->str;
        }
    }
    PyObject *str = PyUnicode_FromStringAndSize(name, len);
    if (str == NULL) return NULL;
    if (names_count >= NAMES_SLOTS / 2) { /* rare: a new universe's worth of names */
        names_clear();
        at = (size_t)h & (NAMES_SLOTS - 1);
    }
    Name *n = &names[at];
    Py_INCREF(str);
    n->str = str;
    n->hash = h;
    n->len = (unsigned char)len;
    memcpy(n->name, name, (size_t)len);
    names_count++;
    return str;
}

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
    e->sym = symbol_str(name, len, h);
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
static int last_instant(const Entry *e, const char **text, Py_ssize_t *len) {
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
    int have = last_instant(e, &prev, &prev_len);
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

static int store(Entry *e, PyObject *seqs, PyObject *instants) {
    if (e->last < 0) return 0;
    PyObject *seq = PyLong_FromLongLong(e->seq);
    if (seq == NULL) return -1;
    int failed = PyDict_SetItem(seqs, e->sym, seq);
    Py_DECREF(seq);
    if (failed || !e->instant_changed) return failed;
    PyObject *instant = e->instant;
    if (e->key_len >= 0) instant = PyUnicode_FromStringAndSize(e->key, e->key_len);
    else Py_INCREF(instant);
    if (instant == NULL) return -1;
    failed = PyDict_SetItem(instants, e->sym, instant);
    Py_DECREF(instant);
    return failed;
}

#endif
