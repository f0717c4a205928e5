/* A frame's updates as Redis commands, in C: FramePacker.pack's loop
 * (libs/market_data/pipeline/packing.py) without a Python step per update.
 *
 *   pack(updates, names, missing, set_suffix, latest) -> (sets, events, written)
 *
 * updates: (topic, record, event) tuples; names: {topic: (SET head, PUBLISH head)},
 * missing(topic) builds and caches a topic's heads; latest: {topic: update}, updated with
 * the frame's newest per topic. Returns every update's PUBLISH in order, one SET per topic
 * (its newest update, in the order the topics' newest appear... as the Python packer
 * orders them: by each topic's first appearance) and those newest updates. The bytes are
 * the Python packer's (a test holds the two together).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

static PyObject *heads_of(PyObject *names, PyObject *missing, PyObject *topic) {
    PyObject *heads = PyDict_GetItemWithError(names, topic);
    if (heads != NULL) {
        Py_INCREF(heads);
    } else if (!PyErr_Occurred()) {
        heads = PyObject_CallOneArg(missing, topic);
    }
    if (heads != NULL && !(PyTuple_Check(heads) && PyTuple_GET_SIZE(heads) == 2
                           && PyBytes_Check(PyTuple_GET_ITEM(heads, 0))
                           && PyBytes_Check(PyTuple_GET_ITEM(heads, 1)))) {
        Py_DECREF(heads);
        PyErr_SetString(PyExc_TypeError, "heads must be a (bytes, bytes) tuple");
        return NULL;
    }
    return heads;
}

/* "$<len>\r\n" */
static char *put_length(char *o, Py_ssize_t n) {
    char d[24];
    int k = 0;
    do { d[k++] = (char)('0' + (int)(n % 10)); n /= 10; } while (n);
    *o++ = '$';
    while (k) *o++ = d[--k];
    *o++ = '\r';
    *o++ = '\n';
    return o;
}

/* A command's fixed head, then its last argument as a bulk string (no CRLF after it). */
static char *put_command(char *o, PyObject *head, PyObject *payload) {
    memcpy(o, PyBytes_AS_STRING(head), (size_t)PyBytes_GET_SIZE(head));
    o = put_length(o + PyBytes_GET_SIZE(head), PyBytes_GET_SIZE(payload));
    memcpy(o, PyBytes_AS_STRING(payload), (size_t)PyBytes_GET_SIZE(payload));
    return o + PyBytes_GET_SIZE(payload);
}

static int valid_update(PyObject *u) {
    return PyTuple_Check(u) && PyTuple_GET_SIZE(u) == 3 && PyBytes_Check(PyTuple_GET_ITEM(u, 1))
           && PyBytes_Check(PyTuple_GET_ITEM(u, 2));
}

static PyObject *pack(PyObject *module, PyObject *args) {
    (void)module;
    PyObject *updates, *names, *missing, *suffix, *latest;
    if (!PyArg_ParseTuple(args, "O!O!OSO!", &PyList_Type, &updates, &PyDict_Type, &names,
                          &missing, &suffix, &PyDict_Type, &latest))
        return NULL;
    Py_ssize_t n = PyList_GET_SIZE(updates);
    PyObject *newest = PyDict_New(), *events = NULL, *sets = NULL, *written = NULL;
    PyObject *result = NULL, **held = NULL, **first = NULL;
    if (newest == NULL) return NULL;
    /* One pass for the sizes and the newest per topic, one to write. The heads are held
     * per update: missing() may clear the name cache (it is bounded) mid-frame. first[j]:
     * the heads of the j-th topic to enter newest, which is the j-th of its values (a dict
     * keeps first-insertion order), so the SETs need no second lookup. */
    held = PyMem_Calloc((size_t)n + 1, sizeof(PyObject *));
    first = PyMem_Malloc(((size_t)n + 1) * sizeof(PyObject *));
    if (held == NULL || first == NULL) { PyErr_NoMemory(); goto done; }
    Py_ssize_t topics = 0;
    Py_ssize_t event_size = 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *u = PyList_GET_ITEM(updates, i);
        if (!valid_update(u)) {
            PyErr_SetString(PyExc_TypeError, "an update must be (topic, bytes, bytes)");
            goto done;
        }
        PyObject *heads = heads_of(names, missing, PyTuple_GET_ITEM(u, 0));
        if (heads == NULL) goto done;
        held[i] = heads;
        event_size += PyBytes_GET_SIZE(PyTuple_GET_ITEM(heads, 1)) + 24
                      + PyBytes_GET_SIZE(PyTuple_GET_ITEM(u, 2)) + 2;
        if (PyDict_SetItem(newest, PyTuple_GET_ITEM(u, 0), u) < 0) goto done;
        if (PyDict_GET_SIZE(newest) > topics) first[topics++] = heads;
    }
    events = PyBytes_FromStringAndSize(NULL, event_size);
    if (events == NULL) goto done;
    char *o = PyBytes_AS_STRING(events);
    for (Py_ssize_t i = 0; i < n; i++) {
        o = put_command(o, PyTuple_GET_ITEM(held[i], 1),
                        PyTuple_GET_ITEM(PyList_GET_ITEM(updates, i), 2));
        *o++ = '\r';
        *o++ = '\n';
    }
    if (_PyBytes_Resize(&events, o - PyBytes_AS_STRING(events)) < 0) goto done;
    if (PyDict_Update(latest, newest) < 0) goto done;
    written = PyDict_Values(newest);
    if (written == NULL) goto done;
    Py_ssize_t w = PyList_GET_SIZE(written), set_size = 0; /* == topics: newest is ours */
    for (Py_ssize_t i = 0; i < w; i++) {
        PyObject *u = PyList_GET_ITEM(written, i);
        set_size += PyBytes_GET_SIZE(PyTuple_GET_ITEM(first[i], 0)) + 24
                    + PyBytes_GET_SIZE(PyTuple_GET_ITEM(u, 1)) + PyBytes_GET_SIZE(suffix);
    }
    sets = PyBytes_FromStringAndSize(NULL, set_size);
    if (sets == NULL) goto done;
    o = PyBytes_AS_STRING(sets);
    for (Py_ssize_t i = 0; i < w; i++) {
        o = put_command(o, PyTuple_GET_ITEM(first[i], 0),
                        PyTuple_GET_ITEM(PyList_GET_ITEM(written, i), 1));
        memcpy(o, PyBytes_AS_STRING(suffix), (size_t)PyBytes_GET_SIZE(suffix));
        o += PyBytes_GET_SIZE(suffix);
    }
    if (_PyBytes_Resize(&sets, o - PyBytes_AS_STRING(sets)) < 0) goto done;
    result = PyTuple_Pack(3, sets, events, written);
done:
    if (held != NULL)
        for (Py_ssize_t i = 0; i < n; i++) Py_XDECREF(held[i]);
    PyMem_Free(held);
    PyMem_Free(first);
    Py_XDECREF(newest);
    Py_XDECREF(events);
    Py_XDECREF(sets);
    Py_XDECREF(written);
    return result;
}

static PyMethodDef module_methods[] = {
    {"pack", pack, METH_VARARGS,
     "pack(updates, names, missing, set_suffix, latest) -> (sets, events, written)"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT, "_packing", "A frame's Redis commands in C.", -1, module_methods,
    NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__packing(void) { return PyModule_Create(&module_def); }
