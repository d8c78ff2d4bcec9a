/* arrayferry._speedups: the range-checked cast in one pass (optional; pure Python falls back).
 *
 * cast_checked(src, dst, src_kind, src_size, dst_kind, dst_size, lo, hi) -> int
 *
 * Casts every element of the C-contiguous buffer `src` into the C-contiguous writable buffer
 * `dst` (the same number of elements) with C's conversion, which is NumPy's for every value in
 * range (integers exactly, floats truncated toward zero), while testing lo <= v <= hi in the
 * source type (NaN fails the test). Returns -1 when every value passed, else the index of the
 * first value that did not (the caller then words the error; dst holds 0 for failing values).
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
#include <stdint.h>

/* x86-64's baseline (SSE2) has no 64-bit integer compares or float<->int64 conversions in its
 * vectors: compile each kernel also for AVX2 and AVX-512 and let the loader pick (GCC/clang
 * function multi-versioning, as NumPy dispatches its own loops at run time). */
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__APPLE__) && defined(__linux__)
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
#define TEST_uint8_t_uint8_t(v, lo, hi) UTEST(uint8_t, v, lo, hi)
#define TEST_uint16_t_uint16_t(v, lo, hi) UTEST(uint16_t, v, lo, hi)
#define TEST_uint32_t_uint32_t(v, lo, hi) UTEST(uint32_t, v, lo, hi)
#define TEST_uint64_t_uint64_t(v, lo, hi) UTEST(uint64_t, v, lo, hi)
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
PAIRS(u1, uint8_t, uint8_t)
PAIRS(u2, uint16_t, uint16_t)
PAIRS(u4, uint32_t, uint32_t)
PAIRS(u8, uint64_t, uint64_t)
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
            } else {
                int key = (sk == 'i' ? 0 : 10) + ss;
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

static PyMethodDef methods[] = {
    {"cast_checked", cast_checked, METH_VARARGS,
     "cast_checked(src, dst, src_kind, src_size, dst_kind, dst_size, lo, hi) -> index of the first "
     "value outside [lo, hi] (or with a non-zero imaginary part), or -1; casts src into dst in one pass."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "arrayferry._speedups",
    "The range-checked cast in one pass (see arrayferry._hostops).", -1, methods,
};

PyMODINIT_FUNC PyInit__speedups(void) { return PyModule_Create(&module); }
