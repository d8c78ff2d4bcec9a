/* arrayferry._speedups: the range-checked cast in one pass, and the plan cache's hot path
 * (optional: without it arrayferry runs the same logic in Python).
 *
 * cast_checked(src, dst, src_kind, src_size, dst_kind, dst_size, lo, hi) -> int
 *
 * Casts every element of the C-contiguous buffer `src` into the C-contiguous writable buffer
 * `dst` (the same number of elements) with C's conversion, which is NumPy's for every value in
 * range (integers exactly, floats truncated toward zero), while testing lo <= v <= hi in the
 * source type (NaN fails the test). Returns -1 when every value passed, else the index of the
 * first value that did not (the caller then casts again and words the error; dst then holds
 * whatever the conversion of the failing values gave). An unsigned source takes lo == 0 and
 * hi == 2**k - 1 (every integer target's bounds): one OR per element, tested once at the end;
 * so does a signed source with such bounds (read as unsigned: a negative value sets the top bit).
 *
 * Kinds: 'i' signed, 'u' unsigned integers of 1, 2, 4, 8 bytes and 'f' floats of 4, 8 bytes to
 * 'i'/'u' integers; and 'c' complex of 8, 16 bytes to the 'f' float of half their size, testing
 * that every imaginary part is zero (lo and hi unused). Anything else raises ValueError, so that
 * the caller falls back to NumPy. The loop is branch-free so that compilers vectorise it: the
 * check rides along with the cast instead of costing a second pass over memory. The GIL is
 * released while it runs.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stddef.h>
#include <stdint.h>

/* x86-64's baseline (SSE2) has no 64-bit integer compares or float<->int64 conversions in its
 * vectors: compile each kernel also for AVX2 and AVX-512 and let the loader pick (GCC/clang
 * function multi-versioning, as NumPy dispatches its own loops at run time). */
#if defined(__x86_64__) && defined(__linux__) && !defined(__clang__) && __GNUC__ >= 12
/* the x86-64 levels: v4 (AVX-512 F/BW/DQ/VL: byte packing and 64-bit compares into masks), v3
 * (AVX2), baseline */
#define KERNEL_ATTR __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#elif defined(__x86_64__) && defined(__linux__) && defined(__GNUC__)
#define KERNEL_ATTR __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define KERNEL_ATTR
#endif

/* Every element is converted unconditionally (an integer to a narrower one wraps, a float out of
 * range gives the hardware's "indefinite" value, no trap: the result is discarded when any value
 * failed), and the test accumulates into `bad` without a branch, so that the loop vectorises. */
/* The test, 1 when v is outside [lo, hi]: for integers one unsigned compare, (v - lo) > (hi - lo)
 * in the unsigned type of their width (wrapping maps both sides of the range above it); for
 * floats two compares (NaN fails both). */
#define UTEST(MT, v, lo, hi) ((MT)((MT)(v) - (MT)(lo)) > (MT)((MT)(hi) - (MT)(lo)))
#define TEST_uint8_t_int8_t(v, lo, hi) UTEST(uint8_t, v, lo, hi)
#define TEST_uint16_t_int16_t(v, lo, hi) UTEST(uint16_t, v, lo, hi)
#define TEST_uint32_t_int32_t(v, lo, hi) UTEST(uint32_t, v, lo, hi)
#define TEST_uint64_t_int64_t(v, lo, hi) UTEST(uint64_t, v, lo, hi)
#define TEST_uint32_t_float(v, lo, hi) ((uint32_t)((v >= lo) & (v <= hi)) ^ (uint32_t)1)
#define TEST_uint64_t_double(v, lo, hi) ((uint64_t)((v >= lo) & (v <= hi)) ^ (uint64_t)1)

#define RANGE_KERNEL(NAME, ST, DT, MT)                                                          \
    KERNEL_ATTR static Py_ssize_t NAME##_run(const ST *restrict s, DT *restrict d, Py_ssize_t n, ST lo, \
                                 ST hi) {                                                        \
        MT bad = 0; /* as wide as the source: no narrowing of the mask in the loop */          \
        for (Py_ssize_t i = 0; i < n; i++) {                                                     \
            ST v = s[i];                                                                         \
            bad |= TEST_##MT##_##ST(v, lo, hi);                                                  \
            d[i] = (DT)v;                                                                        \
        }                                                                                        \
        if (!bad) return -1;                                                                     \
        for (Py_ssize_t i = 0; i < n; i++) {                                                     \
            ST v = s[i];                                                                         \
            if (!((v >= lo) && (v <= hi))) return i;                                             \
        }                                                                                        \
        return -1;                                                                               \
    }

/* Unsigned sources (lo is 0 and hi + 1 a power of two for every integer target): one OR per
 * element, the bound tested once at the end (a value above hi sets a bit that hi lacks). */
#define OR_KERNEL(NAME, ST, DT, MT)                                                             \
    KERNEL_ATTR static Py_ssize_t NAME##_run(const ST *restrict s, DT *restrict d, Py_ssize_t n, ST lo, \
                                 ST hi) {                                                        \
        ST acc = 0;                                                                              \
        (void)lo;                                                                                \
        for (Py_ssize_t i = 0; i < n; i++) {                                                     \
            ST v = s[i];                                                                         \
            acc |= v;                                                                            \
            d[i] = (DT)v;                                                                        \
        }                                                                                        \
        if (acc <= hi) return -1;                                                                \
        for (Py_ssize_t i = 0; i < n; i++) {                                                     \
            if (s[i] > hi) return i;                                                             \
        }                                                                                        \
        return -1;                                                                               \
    }

#define COMPLEX_KERNEL(NAME, RT)                                                                \
    KERNEL_ATTR static Py_ssize_t NAME##_run(const RT *restrict s, RT *restrict d, Py_ssize_t n) { \
        int bad = 0;                                                                             \
        for (Py_ssize_t i = 0; i < n; i++) {                                                     \
            bad |= (s[2 * i + 1] != (RT)0);                                                      \
            d[i] = s[2 * i];                                                                     \
        }                                                                                        \
        if (!bad) return -1;                                                                     \
        for (Py_ssize_t i = 0; i < n; i++) {                                                     \
            if (s[2 * i + 1] != (RT)0) return i;                                                 \
        }                                                                                        \
        return -1;                                                                               \
    }

COMPLEX_KERNEL(c8_f4, float)
COMPLEX_KERNEL(c16_f8, double)

/* one kernel per (source, target) pair, named by kind and size */
#define PAIRS(SNAME, ST, MT)                                                                    \
    RANGE_KERNEL(SNAME##_i1, ST, int8_t, MT)                                                     \
    RANGE_KERNEL(SNAME##_i2, ST, int16_t, MT)                                                    \
    RANGE_KERNEL(SNAME##_i4, ST, int32_t, MT)                                                    \
    RANGE_KERNEL(SNAME##_i8, ST, int64_t, MT)                                                    \
    RANGE_KERNEL(SNAME##_u1, ST, uint8_t, MT)                                                    \
    RANGE_KERNEL(SNAME##_u2, ST, uint16_t, MT)                                                   \
    RANGE_KERNEL(SNAME##_u4, ST, uint32_t, MT)                                                   \
    RANGE_KERNEL(SNAME##_u8, ST, uint64_t, MT)

PAIRS(i1, int8_t, uint8_t)
PAIRS(i2, int16_t, uint16_t)
PAIRS(i4, int32_t, uint32_t)
PAIRS(i8, int64_t, uint64_t)
#define PAIRS_OR(SNAME, ST)                                                                     \
    OR_KERNEL(SNAME##_i1, ST, int8_t, ST)                                                        \
    OR_KERNEL(SNAME##_i2, ST, int16_t, ST)                                                       \
    OR_KERNEL(SNAME##_i4, ST, int32_t, ST)                                                       \
    OR_KERNEL(SNAME##_i8, ST, int64_t, ST)                                                       \
    OR_KERNEL(SNAME##_u1, ST, uint8_t, ST)                                                       \
    OR_KERNEL(SNAME##_u2, ST, uint16_t, ST)                                                      \
    OR_KERNEL(SNAME##_u4, ST, uint32_t, ST)                                                      \
    OR_KERNEL(SNAME##_u8, ST, uint64_t, ST)

PAIRS_OR(u1, uint8_t)
PAIRS_OR(u2, uint16_t)
PAIRS_OR(u4, uint32_t)
PAIRS_OR(u8, uint64_t)
PAIRS(f4, float, uint32_t)
PAIRS(f8, double, uint64_t)

/* the bounds, converted to the source type (exactly: the caller passes source-type values) */
static int bound_i(PyObject *o, int64_t *out) {
    long long v = PyLong_AsLongLong(o);
    if (v == -1 && PyErr_Occurred()) return -1;
    *out = (int64_t)v;
    return 0;
}
static int bound_u(PyObject *o, uint64_t *out) {
    unsigned long long v = PyLong_AsUnsignedLongLong(o);
    if (v == (unsigned long long)-1 && PyErr_Occurred()) return -1;
    *out = (uint64_t)v;
    return 0;
}
static int bound_f(PyObject *o, double *out) {
    double v = PyFloat_AsDouble(o);
    if (v == -1.0 && PyErr_Occurred()) return -1;
    *out = v;
    return 0;
}

static int dst_index(int kind, int size) {
    int k = kind == 'i' ? 0 : kind == 'u' ? 4 : -1;
    int s = size == 1 ? 0 : size == 2 ? 1 : size == 4 ? 2 : size == 8 ? 3 : -1;
    return (k < 0 || s < 0) ? -1 : k + s;
}

#define DISPATCH(SNAME, ST, LO, HI)                                                             \
    switch (di) {                                                                                \
    case 0: r = SNAME##_i1_run((const ST *)s, (int8_t *)d, n, (ST)(LO), (ST)(HI)); break;        \
    case 1: r = SNAME##_i2_run((const ST *)s, (int16_t *)d, n, (ST)(LO), (ST)(HI)); break;       \
    case 2: r = SNAME##_i4_run((const ST *)s, (int32_t *)d, n, (ST)(LO), (ST)(HI)); break;       \
    case 3: r = SNAME##_i8_run((const ST *)s, (int64_t *)d, n, (ST)(LO), (ST)(HI)); break;       \
    case 4: r = SNAME##_u1_run((const ST *)s, (uint8_t *)d, n, (ST)(LO), (ST)(HI)); break;       \
    case 5: r = SNAME##_u2_run((const ST *)s, (uint16_t *)d, n, (ST)(LO), (ST)(HI)); break;      \
    case 6: r = SNAME##_u4_run((const ST *)s, (uint32_t *)d, n, (ST)(LO), (ST)(HI)); break;      \
    default: r = SNAME##_u8_run((const ST *)s, (uint64_t *)d, n, (ST)(LO), (ST)(HI)); break;     \
    }

static PyObject *cast_checked(PyObject *self, PyObject *args) {
    PyObject *src, *dst, *lo_o, *hi_o;
    int ss, ds, sk, dk; /* "C" gives an int */
    if (!PyArg_ParseTuple(args, "OOCiCiOO", &src, &dst, &sk, &ss, &dk, &ds, &lo_o, &hi_o)) return NULL;
    Py_buffer sb, db;
    if (PyObject_GetBuffer(src, &sb, PyBUF_C_CONTIGUOUS) < 0) return NULL;
    if (PyObject_GetBuffer(dst, &db, PyBUF_C_CONTIGUOUS | PyBUF_WRITABLE) < 0) {
        PyBuffer_Release(&sb);
        return NULL;
    }
    Py_ssize_t r = -1;
    int err = 0;
    const void *s = sb.buf;
    void *d = db.buf;
    Py_ssize_t n = ss > 0 ? sb.len / ss : 0;
    if (ss <= 0 || ds <= 0 || sb.len % ss || db.len != n * (Py_ssize_t)ds) {
        PyErr_SetString(PyExc_ValueError, "cast_checked: buffer sizes do not match the item sizes");
        err = 1;
    } else if (sk == 'c') {
        if (dk != 'f' || ds * 2 != ss || (ds != 4 && ds != 8)) {
            PyErr_SetString(PyExc_ValueError, "cast_checked: complex goes to the float of its component only");
            err = 1;
        } else {
            Py_BEGIN_ALLOW_THREADS
            r = ds == 4 ? c8_f4_run((const float *)s, (float *)d, n) : c16_f8_run((const double *)s, (double *)d, n);
            Py_END_ALLOW_THREADS
        }
    } else {
        int di = dst_index(dk, ds);
        if (di < 0) {
            PyErr_SetString(PyExc_ValueError, "cast_checked: the target must be an integer type");
            err = 1;
        } else if (sk == 'i' || sk == 'u') {
            int64_t li = 0, hi = 0;
            uint64_t lu = 0, hu = 0;
            if (sk == 'i' ? (bound_i(lo_o, &li) < 0 || bound_i(hi_o, &hi) < 0)
                          : (bound_u(lo_o, &lu) < 0 || bound_u(hi_o, &hu) < 0)) {
                err = 1;
            } else if (sk == 'u' && (lu != 0 || (hu & (hu + 1)) != 0)) {
                PyErr_SetString(PyExc_ValueError, "cast_checked: an unsigned source takes lo == 0 and hi == 2**k - 1");
                err = 1;
            } else {
                int key = (sk == 'i' ? 0 : 10) + ss;
                if (sk == 'i' && li == 0 && hi >= 0 && (((uint64_t)hi & ((uint64_t)hi + 1)) == 0)) {
                    /* [0, 2**k - 1] from a signed source (to any unsigned target, int32 to uint16, ...): a
                     * negative value has its top bit set, so the source read as unsigned takes the OR
                     * kernel; in-range values convert alike either way */
                    key += 10;
                    lu = 0;
                    hu = (uint64_t)hi;
                }
                if (key != 1 && key != 2 && key != 4 && key != 8 && key != 11 && key != 12 && key != 14 && key != 18) {
                    PyErr_SetString(PyExc_ValueError, "cast_checked: unsupported source integer size");
                    err = 1;
                } else {
                    Py_BEGIN_ALLOW_THREADS
                    switch (key) {
                    case 1: DISPATCH(i1, int8_t, li, hi) break;
                    case 2: DISPATCH(i2, int16_t, li, hi) break;
                    case 4: DISPATCH(i4, int32_t, li, hi) break;
                    case 8: DISPATCH(i8, int64_t, li, hi) break;
                    case 11: DISPATCH(u1, uint8_t, lu, hu) break;
                    case 12: DISPATCH(u2, uint16_t, lu, hu) break;
                    case 14: DISPATCH(u4, uint32_t, lu, hu) break;
                    default: DISPATCH(u8, uint64_t, lu, hu) break;
                    }
                    Py_END_ALLOW_THREADS
                }
            }
        } else if (sk == 'f' && (ss == 4 || ss == 8)) {
            double lf = 0, hf = 0;
            if (bound_f(lo_o, &lf) < 0 || bound_f(hi_o, &hf) < 0) {
                err = 1;
            } else {
                Py_BEGIN_ALLOW_THREADS
                if (ss == 4) {
                    DISPATCH(f4, float, lf, hf)
                } else {
                    DISPATCH(f8, double, lf, hf)
                }
                Py_END_ALLOW_THREADS
            }
        } else {
            PyErr_SetString(PyExc_ValueError, "cast_checked: unsupported source type");
            err = 1;
        }
    }
    PyBuffer_Release(&sb);
    PyBuffer_Release(&db);
    if (err) return NULL;
    return PyLong_FromSsize_t(r);
}

/* ---------------------------------------------------------------------------------------------
 * Hot: the plan cache's hot path (arrayferry._api), for `convert(x, to)` and `converter(to)(x)`.
 *
 * Hot(types, cache, slow, refused): called with one array (types given: a converter) or with
 * (x, to) (cache given: convert), no keywords. It reads the entry of type(x) in `types` (or in
 * cache[to]), a 5-tuple (key function, {key: run}, adapter, {signature: run}, direct call or None),
 * and returns direct(x), or run(x) for the run its key finds. Everything else goes to Python:
 * a miss, keywords or another number of arguments to slow(*args, **kw); a direct call that raises
 * an Exception to refused(*args) (which counts the refusal and plans); a key function or run that
 * raises an Exception to slow(*args), which computes everything again and words the error. Only
 * what cannot fail differently is done here: the Python path stays the one that decides.
 * ------------------------------------------------------------------------------------------- */
typedef struct {
    PyObject_HEAD
    PyObject *types;   /* converter: type -> entry; or NULL */
    PyObject *cache;   /* convert: to -> types; or NULL */
    PyObject *slow;
    PyObject *refused;
    PyObject *dict;
    vectorcallfunc vectorcall;
} HotObject;

static PyObject *hot_entry_call(HotObject *self, PyObject *types, PyObject *const *args, size_t nargsf) {
    PyObject *x = args[0];
    PyObject *te = PyDict_GetItemWithError(types, (PyObject *)Py_TYPE(x));
    if (te == NULL) {
        if (PyErr_Occurred()) return NULL;
        return PyObject_Vectorcall(self->slow, args, nargsf, NULL);
    }
    if (!PyTuple_CheckExact(te) || PyTuple_GET_SIZE(te) != 5) return PyObject_Vectorcall(self->slow, args, nargsf, NULL);
    Py_INCREF(te); /* the dict may change while Python code runs */
    PyObject *r = NULL;
    PyObject *direct = PyTuple_GET_ITEM(te, 4);
    if (direct != Py_None) {
        r = PyObject_Vectorcall(direct, &x, 1, NULL);
        if (r == NULL && PyErr_ExceptionMatches(PyExc_Exception)) {
            PyErr_Clear();
            r = PyObject_Vectorcall(self->refused, args, nargsf, NULL);
        }
        Py_DECREF(te);
        return r;
    }
    PyObject *key = PyObject_Vectorcall(PyTuple_GET_ITEM(te, 0), &x, 1, NULL);
    PyObject *run = NULL;
    if (key != NULL) {
        PyObject *fast = PyTuple_GET_ITEM(te, 1);
        run = PyDict_CheckExact(fast) ? PyDict_GetItemWithError(fast, key) : NULL;
        Py_XINCREF(run);
        Py_DECREF(key);
    }
    if (run != NULL) {
        r = PyObject_Vectorcall(run, &x, 1, NULL);
        Py_DECREF(run);
        if (r != NULL) {
            Py_DECREF(te);
            return r;
        }
    }
    Py_DECREF(te);
    if (PyErr_Occurred()) {
        if (!PyErr_ExceptionMatches(PyExc_Exception)) return NULL;
        PyErr_Clear();
    }
    return PyObject_Vectorcall(self->slow, args, nargsf, NULL);
}

static PyObject *hot_vectorcall(PyObject *op, PyObject *const *args, size_t nargsf, PyObject *kwnames) {
    HotObject *self = (HotObject *)op;
    Py_ssize_t nargs = PyVectorcall_NARGS(nargsf);
    if (kwnames == NULL || PyTuple_GET_SIZE(kwnames) == 0) {
        if (self->types != NULL && nargs == 1) return hot_entry_call(self, self->types, args, nargsf);
        if (self->cache != NULL && nargs == 2) {
            PyObject *types = PyDict_GetItemWithError(self->cache, args[1]);
            if (types != NULL && PyDict_CheckExact(types)) {
                Py_INCREF(types);
                PyObject *r = hot_entry_call(self, types, args, nargsf);
                Py_DECREF(types);
                return r;
            }
            if (PyErr_Occurred()) {  /* an unhashable target: the Python path says what it is */
                if (!PyErr_ExceptionMatches(PyExc_TypeError)) return NULL;
                PyErr_Clear();
            }
        }
    }
    return PyObject_Vectorcall(self->slow, args, nargsf, kwnames);
}

static PyObject *hot_new(PyTypeObject *type, PyObject *args, PyObject *kw) {
    PyObject *types, *cache, *slow, *refused;
    static char *names[] = {"types", "cache", "slow", "refused", NULL};
    if (!PyArg_ParseTupleAndKeywords(args, kw, "OOOO", names, &types, &cache, &slow, &refused)) return NULL;
    if ((types == Py_None) == (cache == Py_None) || (types != Py_None && !PyDict_CheckExact(types)) ||
        (cache != Py_None && !PyDict_CheckExact(cache)) || !PyCallable_Check(slow) || !PyCallable_Check(refused)) {
        PyErr_SetString(PyExc_TypeError, "Hot(types, cache, slow, refused): one of types/cache is a dict, the other None; slow and refused are callables");
        return NULL;
    }
    HotObject *self = (HotObject *)type->tp_alloc(type, 0);
    if (self == NULL) return NULL;
    self->types = types == Py_None ? NULL : Py_NewRef(types);
    self->cache = cache == Py_None ? NULL : Py_NewRef(cache);
    self->slow = Py_NewRef(slow);
    self->refused = Py_NewRef(refused);
    self->dict = NULL;
    self->vectorcall = hot_vectorcall;
    return (PyObject *)self;
}

static int hot_traverse(HotObject *self, visitproc visit, void *arg) {
    Py_VISIT(self->types);
    Py_VISIT(self->cache);
    Py_VISIT(self->slow);
    Py_VISIT(self->refused);
    Py_VISIT(self->dict);
    return 0;
}

static int hot_clear(HotObject *self) {
    Py_CLEAR(self->types);
    Py_CLEAR(self->cache);
    Py_CLEAR(self->slow);
    Py_CLEAR(self->refused);
    Py_CLEAR(self->dict);
    return 0;
}

static void hot_dealloc(HotObject *self) {
    PyObject_GC_UnTrack(self);
    hot_clear(self);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyObject *hot_get(PyObject *self, PyObject *obj, PyObject *type) {
    /* a function, not a method: stored on a class it is not bound (like builtins) */
    return Py_NewRef(self);
}

static PyObject *hot_repr(HotObject *self) {
    PyObject *name = self->dict ? PyDict_GetItemString(self->dict, "__qualname__") : NULL;
    if (name != NULL && PyUnicode_Check(name)) return PyUnicode_FromFormat("<compiled function %U>", name);
    return PyUnicode_FromString("<arrayferry._speedups.Hot>");
}

static PyGetSetDef hot_getset[] = {
    {"__dict__", PyObject_GenericGetDict, PyObject_GenericSetDict},
    {NULL},
};

static PyTypeObject HotType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "arrayferry._speedups.Hot",
    .tp_basicsize = sizeof(HotObject),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_HAVE_VECTORCALL,
    .tp_doc = "The plan cache's hot path (see arrayferry._api).",
    .tp_new = hot_new,
    .tp_call = PyVectorcall_Call,
    .tp_vectorcall_offset = offsetof(HotObject, vectorcall),
    .tp_dictoffset = offsetof(HotObject, dict),
    .tp_traverse = (traverseproc)hot_traverse,
    .tp_clear = (inquiry)hot_clear,
    .tp_dealloc = (destructor)hot_dealloc,
    .tp_descr_get = hot_get,
    .tp_repr = (reprfunc)hot_repr,
    .tp_getset = hot_getset,
};

/* ---------------------------------------------------------------------------------------------
 * Guarded(call, key, mask, accepted, fallback): x -> call(x) when int(key(x)) & mask is one of
 * `accepted` (a tuple of ints), else fallback(x). A direct call's guard without a Python frame
 * (arrayferry.plugin.guarded_call): torch.from_numpy behind NumPy's flags.
 * ------------------------------------------------------------------------------------------- */
typedef struct {
    PyObject_HEAD
    PyObject *call, *key, *fallback, *accepted;
    long long mask;
    long long acc[16];
    Py_ssize_t nacc;
    vectorcallfunc vectorcall;
} GuardedObject;

static PyObject *guarded_vectorcall(PyObject *op, PyObject *const *args, size_t nargsf, PyObject *kwnames) {
    GuardedObject *self = (GuardedObject *)op;
    if (PyVectorcall_NARGS(nargsf) != 1 || (kwnames && PyTuple_GET_SIZE(kwnames))) {
        PyErr_SetString(PyExc_TypeError, "a guarded call takes one array");
        return NULL;
    }
    PyObject *k = PyObject_Vectorcall(self->key, args, 1, NULL);
    if (k == NULL) return NULL;
    long long v = PyLong_Check(k) ? PyLong_AsLongLong(k) : -1;
    Py_DECREF(k);
    if (v == -1 && PyErr_Occurred()) return NULL;
    v &= self->mask;
    for (Py_ssize_t i = 0; i < self->nacc; i++) {
        if (self->acc[i] == v) return PyObject_Vectorcall(self->call, args, 1, NULL);
    }
    return PyObject_Vectorcall(self->fallback, args, 1, NULL);
}

static PyObject *guarded_new(PyTypeObject *type, PyObject *args, PyObject *kw) {
    PyObject *call, *key, *accepted, *fallback;
    long long mask;
    static char *names[] = {"call", "key", "mask", "accepted", "fallback", NULL};
    if (!PyArg_ParseTupleAndKeywords(args, kw, "OOLOO", names, &call, &key, &mask, &accepted, &fallback)) return NULL;
    if (!PyCallable_Check(call) || !PyCallable_Check(key) || !PyCallable_Check(fallback) || !PyTuple_Check(accepted) ||
        PyTuple_GET_SIZE(accepted) > 16) {
        PyErr_SetString(PyExc_TypeError, "Guarded(call, key, mask, accepted, fallback): callables, an int mask and a tuple of at most 16 ints");
        return NULL;
    }
    GuardedObject *self = (GuardedObject *)type->tp_alloc(type, 0);
    if (self == NULL) return NULL;
    self->nacc = PyTuple_GET_SIZE(accepted);
    for (Py_ssize_t i = 0; i < self->nacc; i++) {
        self->acc[i] = PyLong_AsLongLong(PyTuple_GET_ITEM(accepted, i));
        if (self->acc[i] == -1 && PyErr_Occurred()) {
            Py_DECREF(self);
            return NULL;
        }
    }
    self->call = Py_NewRef(call);
    self->key = Py_NewRef(key);
    self->fallback = Py_NewRef(fallback);
    self->accepted = Py_NewRef(accepted);
    self->mask = mask;
    self->vectorcall = guarded_vectorcall;
    return (PyObject *)self;
}

static int guarded_traverse(GuardedObject *self, visitproc visit, void *arg) {
    Py_VISIT(self->call);
    Py_VISIT(self->key);
    Py_VISIT(self->fallback);
    Py_VISIT(self->accepted);
    return 0;
}

static int guarded_clear(GuardedObject *self) {
    Py_CLEAR(self->call);
    Py_CLEAR(self->key);
    Py_CLEAR(self->fallback);
    Py_CLEAR(self->accepted);
    return 0;
}

static void guarded_dealloc(GuardedObject *self) {
    PyObject_GC_UnTrack(self);
    guarded_clear(self);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyObject *guarded_repr(GuardedObject *self) {
    return PyUnicode_FromFormat("<guarded %R>", self->call);
}

static PyTypeObject GuardedType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "arrayferry._speedups.Guarded",
    .tp_basicsize = sizeof(GuardedObject),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_HAVE_VECTORCALL,
    .tp_doc = "call(x) when int(key(x)) & mask is accepted, else fallback(x) (arrayferry.plugin.guarded_call).",
    .tp_new = guarded_new,
    .tp_call = PyVectorcall_Call,
    .tp_vectorcall_offset = offsetof(GuardedObject, vectorcall),
    .tp_traverse = (traverseproc)guarded_traverse,
    .tp_clear = (inquiry)guarded_clear,
    .tp_dealloc = (destructor)guarded_dealloc,
    .tp_repr = (reprfunc)guarded_repr,
    .tp_descr_get = hot_get,
};

/* ---------------------------------------------------------------------------------------------
 * walk(node, conv, kinds, names, limit): convert_tree's walk over exact dicts, lists and tuples
 * (arrayferry._tree._map). kinds maps type -> kind (one of the five objects in `names`: array,
 * leaf, dict, list, tuple); an array leaf becomes conv(leaf), a plain leaf stays, containers are
 * rebuilt. Anything else (a type not yet classified, another container, a container changed
 * while walked, deeper than `limit`) raises WalkFallback, and so does nothing but pass on an
 * error of conv: the caller walks again in Python, which words errors with the leaf's path.
 * ------------------------------------------------------------------------------------------- */
static PyObject *WalkFallback;

static PyObject *walk_node(PyObject *node, PyObject *conv, PyObject *kinds, PyObject **names, int depth, int limit) {
    PyObject *k = PyDict_GetItemWithError(kinds, (PyObject *)Py_TYPE(node));
    if (k == NULL) {
        if (!PyErr_Occurred()) PyErr_SetNone(WalkFallback);
        return NULL;
    }
    if (k == names[0]) return PyObject_Vectorcall(conv, &node, 1, NULL);
    if (k == names[1]) return Py_NewRef(node);
    if (depth >= limit) {
        PyErr_SetNone(WalkFallback);
        return NULL;
    }
    if (k == names[2] && PyDict_CheckExact(node)) {
        Py_ssize_t n = PyDict_GET_SIZE(node), pos = 0;
        PyObject *new = PyDict_New(), *key, *value;
        if (new == NULL) return NULL;
        while (PyDict_Next(node, &pos, &key, &value)) {
            Py_INCREF(key);
            Py_INCREF(value);
            PyObject *v = walk_node(value, conv, kinds, names, depth + 1, limit);
            Py_DECREF(value);
            if (v == NULL || PyDict_SetItem(new, key, v) < 0 || PyDict_GET_SIZE(node) != n) {
                if (v != NULL && !PyErr_Occurred()) PyErr_SetNone(WalkFallback);  /* changed while walked */
                Py_XDECREF(v);
                Py_DECREF(key);
                Py_DECREF(new);
                return NULL;
            }
            Py_DECREF(v);
            Py_DECREF(key);
        }
        return new;
    }
    if ((k == names[3] && PyList_CheckExact(node)) || (k == names[4] && PyTuple_CheckExact(node))) {
        int is_list = PyList_CheckExact(node);
        Py_ssize_t n = Py_SIZE(node);
        PyObject *new = is_list ? PyList_New(n) : PyTuple_New(n);
        if (new == NULL) return NULL;
        for (Py_ssize_t i = 0; i < n; i++) {
            if (Py_SIZE(node) != n) {  /* a list changed while walked */
                PyErr_SetNone(WalkFallback);
                Py_DECREF(new);
                return NULL;
            }
            PyObject *item = is_list ? PyList_GET_ITEM(node, i) : PyTuple_GET_ITEM(node, i);
            Py_INCREF(item);
            PyObject *v = walk_node(item, conv, kinds, names, depth + 1, limit);
            Py_DECREF(item);
            if (v == NULL) {
                Py_DECREF(new);
                return NULL;
            }
            if (is_list) PyList_SET_ITEM(new, i, v); else PyTuple_SET_ITEM(new, i, v);
        }
        return new;
    }
    PyErr_SetNone(WalkFallback);
    return NULL;
}

static PyObject *walk(PyObject *self, PyObject *args) {
    PyObject *node, *conv, *kinds, *names_t;
    int limit;
    if (!PyArg_ParseTuple(args, "OOO!O!i", &node, &conv, &PyDict_Type, &kinds, &PyTuple_Type, &names_t, &limit)) return NULL;
    if (PyTuple_GET_SIZE(names_t) != 5) {
        PyErr_SetString(PyExc_TypeError, "walk: names is (array, leaf, dict, list, tuple)");
        return NULL;
    }
    PyObject *names[5];
    for (int i = 0; i < 5; i++) names[i] = PyTuple_GET_ITEM(names_t, i);
    return walk_node(node, conv, kinds, names, 0, limit);
}

static PyMethodDef methods[] = {
    {"cast_checked", cast_checked, METH_VARARGS,
     "cast_checked(src, dst, src_kind, src_size, dst_kind, dst_size, lo, hi) -> index of the first "
     "value outside [lo, hi] (or with a non-zero imaginary part), or -1; casts src into dst in one pass."},
    {"walk", walk, METH_VARARGS,
     "walk(node, conv, kinds, (array, leaf, dict, list, tuple), limit): convert_tree's walk over exact "
     "dicts, lists and tuples; raises WalkFallback for anything else."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "arrayferry._speedups",
    "The range-checked cast in one pass (see arrayferry._hostops).", -1, methods,
};

PyMODINIT_FUNC PyInit__speedups(void) {
    if (PyType_Ready(&HotType) < 0 || PyType_Ready(&GuardedType) < 0) return NULL;
    PyObject *m = PyModule_Create(&module);
    if (m == NULL) return NULL;
    WalkFallback = PyErr_NewException("arrayferry._speedups.WalkFallback", PyExc_Exception, NULL);
    if (WalkFallback == NULL || PyModule_AddObjectRef(m, "WalkFallback", WalkFallback) < 0 ||
        PyModule_AddObjectRef(m, "Hot", (PyObject *)&HotType) < 0 ||
        PyModule_AddObjectRef(m, "Guarded", (PyObject *)&GuardedType) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
