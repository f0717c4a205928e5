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

#include "quotes_encode.h"
#include "quotes_parse.h"
#include "quotes_symbols.h"
#include "quotes_types.h"

typedef struct {
    PyObject_HEAD
    PyObject *data; /* the frame's bytes: every Span points into them */
    Py_ssize_t n;
    Slot *slots;
    PyObject *others; /* list of the frame's other elements, as bytes, in order */
} QuoteBlock;

static PyTypeObject QuoteBlockType;

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
    /* memchr: a byte loop here was a quarter of scan's time (perf, docs/architecture.md) */
    for (const char *c = p; (c = memchr(c, '{', (size_t)(end - c))) != NULL; c++) cap++;
    if (cap == 0) Py_RETURN_NONE;
    Slot *slots = PyMem_Malloc(sizeof(Slot) * (size_t)cap);
    if (slots == NULL) return PyErr_NoMemory();
    PyObject *others = PyList_New(0);
    if (others == NULL) { PyMem_Free(slots); return NULL; }
    p = ws(p + 1, end);
    for (;;) {
        const char *start = p, *after;
        if (n < cap && (after = quote(p, end, base, &slots[n])) != NULL) {
            if (!judge(&slots[n], (uint64_t)max_price)) goto bail;
            n++;
        } else if ((after = other_element(start, end, base)) != NULL) {
            PyObject *element = PyBytes_FromStringAndSize(start, after - start);
            int failed = element == NULL || PyList_Append(others, element) < 0;
            Py_XDECREF(element);
            if (failed) { Py_DECREF(others); PyMem_Free(slots); return NULL; }
        } else {
            goto bail;
        }
        p = ws(after, end);
        if (p < end && *p == ',') { p = ws(p + 1, end); continue; }
        if (p < end && *p == ']' && ws(p + 1, end) == end) break;
        goto bail;
    }
    if (n == 0) goto bail; /* no quote: nothing for this path to do */
    QuoteBlock *block = PyObject_New(QuoteBlock, &QuoteBlockType);
    if (block == NULL) { Py_DECREF(others); PyMem_Free(slots); return NULL; }
    Py_INCREF(data);
    block->data = data;
    block->n = n;
    block->slots = slots;
    block->others = others;
    return (PyObject *)block;
bail:
    Py_DECREF(others);
    PyMem_Free(slots);
    Py_RETURN_NONE;
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
        if (store(&table.entries[i], seqs, instants) < 0) goto done;
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
        /* A str and two bytes cannot form a cycle: the collector need not visit it (CPython
         * untracks such tuples itself, but only once a collection has walked them). */
        PyObject_GC_UnTrack(update);
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

static PyObject *block_others(QuoteBlock *self, void *closure) {
    (void)closure;
    Py_INCREF(self->others);
    return self->others;
}

static void block_dealloc(QuoteBlock *self) {
    Py_XDECREF(self->others);
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
    {"others", (getter)block_others, NULL,
     "The frame's elements that are not quotes (trades, bars, control messages), as bytes.",
     NULL},
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
