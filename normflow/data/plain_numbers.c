/* plain_numbers: the pass's fast path for a byte range of plain numeric lines, parsed in one sweep without the GIL.

A cell is taken only when it is a plain decimal (an optional sign, digits with an optional point, an optional
exponent) of at most 19 significant digits, and its correctly rounded double is known for certain:
- the digits as an integer of at most 2^53 times or divided by a power of ten of at most 10^22: one IEEE
  operation on exact operands (Clinger's fast path);
- else, where long double has a 64-bit significand (x86), a power of ten of at most 10^27: one extended-precision
  operation on exact operands, rounded to double, unless the extended result lies within one unit of its last
  place of a midpoint between two doubles, where only C's strtod (correctly rounded) can tell: a rare cell.
Such a value is what pyarrow's reader gives for the same text, bit for bit. Anything else in the range (a quote, a
space, an empty cell, text, a longer number or exponent, a ragged or blank line, a lone carriage return) and the
range is not plain: the call returns -1 and the caller reads the range with pyarrow, which parses, fills or names
what is wrong as before. So this kernel never decides what a cell means; it only skips pyarrow's tokenizer and
converter where their answer is known.
*/
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <float.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static const double POWERS_OF_TEN[23] = {1e0,  1e1,  1e2,  1e3,  1e4,  1e5,  1e6,  1e7,  1e8,  1e9,  1e10, 1e11,
                                         1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22};

#if defined(__x86_64__) && LDBL_MANT_DIG == 64
#define EXTENDED_POWERS 27 /* 10^27 = 2^27 5^27, and 5^27 < 2^64: exact in long double */
static const long double EXTENDED_POWERS_OF_TEN[EXTENDED_POWERS + 1] = {
    1e0L,  1e1L,  1e2L,  1e3L,  1e4L,  1e5L,  1e6L,  1e7L,  1e8L,  1e9L,  1e10L, 1e11L, 1e12L, 1e13L,
    1e14L, 1e15L, 1e16L, 1e17L, 1e18L, 1e19L, 1e20L, 1e21L, 1e22L, 1e23L, 1e24L, 1e25L, 1e26L, 1e27L};

/* The double nearest mantissa * 10^exponent (|exponent| <= 27); 1 when only strtod can tell (see the top). */
static inline int extended_value(uint64_t mantissa, long exponent, double *value) {
    long double result = (long double)mantissa;
    result = exponent < 0 ? result / EXTENDED_POWERS_OF_TEN[-exponent] : result * EXTENDED_POWERS_OF_TEN[exponent];
    uint64_t significand;
    memcpy(&significand, &result, sizeof significand); /* x87 layout: the 64-bit significand first */
    if ((significand & 0x7FF) - 0x3FF <= 2) return 1; /* within one unit of a midpoint between doubles */
    *value = (double)result;
    return 0;
}
#else
#define EXTENDED_POWERS 0
static inline int extended_value(uint64_t mantissa, long exponent, double *value) { return 1; }
#endif

/* The correctly rounded value of the cell's text [start, end), by C's strtod; 1 if it is not all taken. */
static int strtod_value(const char *start, const char *end, double *value) {
    char text[64];
    size_t length = (size_t)(end - start);
    if (length >= sizeof text) return 1;
    memcpy(text, start, length);
    text[length] = '\0';
    char *stop;
    *value = strtod(text, &stop);
    return stop != text + length;
}

static inline int is_digit(char c) { return (unsigned char)(c - '0') < 10; }

/* The number at *cursor, which is moved past it; 0 when it is plain and exact, else 1. */
static inline int plain_number(const char **cursor, const char *end, double *value) {
    const char *p = *cursor, *start = p;
    int negative = 0;
    if (p < end && (*p == '-' || *p == '+')) {
        negative = *p == '-';
        p++;
    }
    uint64_t mantissa = 0;
    const char *digits = p, *first;
    while (p < end && *p == '0') p++; /* leading zeros: no significant digit */
    for (first = p; p < end && is_digit(*p); p++) mantissa = mantissa * 10 + (uint64_t)(*p - '0');
    Py_ssize_t count = p - digits, significant = p - first, fraction = 0;
    if (p < end && *p == '.') {
        const char *point = p++;
        if (significant == 0)
            while (p < end && *p == '0') p++;
        for (first = p; p < end && is_digit(*p); p++) mantissa = mantissa * 10 + (uint64_t)(*p - '0');
        significant += p - first;
        fraction = p - point - 1;
        count += fraction;
    }
    if (count == 0 || significant > 19) return 1; /* no digit; or the mantissa may have wrapped */
    long exponent = 0;
    if (p < end && (*p == 'e' || *p == 'E')) {
        p++;
        int negative_exponent = 0;
        if (p < end && (*p == '-' || *p == '+')) {
            negative_exponent = *p == '-';
            p++;
        }
        const char *exponent_digits = p;
        while (p < end && is_digit(*p) && p - exponent_digits < 6) exponent = exponent * 10 + (*p++ - '0');
        if (p == exponent_digits) return 1;
        if (negative_exponent) exponent = -exponent;
    }
    exponent -= (long)fraction;
    double result;
    if (mantissa <= ((uint64_t)1 << 53) && exponent >= -22 && exponent <= 22) {
        result = (double)mantissa;
        result = exponent < 0 ? result / POWERS_OF_TEN[-exponent] : result * POWERS_OF_TEN[exponent];
        result = negative ? -result : result;
    } else if (exponent < -EXTENDED_POWERS || exponent > EXTENDED_POWERS) {
        return 1;
    } else if (extended_value(mantissa, exponent, &result) == 0) {
        result = negative ? -result : result;
    } else if (strtod_value(start, p, &result)) {
        return 1;
    }
    *value = result;
    *cursor = p;
    return 0;
}

/* Rows parsed into out (row r of field f at out[rows_of[f] * capacity + r], fields with rows_of[f] < 0 skipped), or
   -1 when the range is not plain or holds more than capacity rows. */
static Py_ssize_t parse_lines(const char *p, const char *end, const int *rows_of, int fields, char delimiter,
                              double *out, Py_ssize_t capacity) {
    Py_ssize_t row = 0;
    while (p < end) {
        if (row == capacity) return -1;
        for (int field = 0; field < fields; field++) {
            if (rows_of[field] >= 0) {
                if (plain_number(&p, end, out + rows_of[field] * capacity + row)) return -1;
            } else {
                while (p < end && *p != delimiter && *p != '\n' && *p != '\r') {
                    if (*p == '"') return -1;
                    p++;
                }
            }
            if (field < fields - 1) {
                if (p == end || *p != delimiter) return -1;
                p++;
            }
        }
        if (p < end && *p == '\r') p++;
        if (p < end && *p++ != '\n') return -1;
        row++;
    }
    return row;
}

PyDoc_STRVAR(parse_doc,
             "parse(data, out, capacity, rows_of, delimiter) -> rows, or -1 when the range is not plain\n\n"
             "data: the range's lines (bytes-like, no header); out: a writable C-contiguous float64 buffer of\n"
             "(k, capacity); rows_of: for each field of a line, its row in out, or -1 to skip it; delimiter:\n"
             "one ASCII character. The GIL is released while it parses.");

static PyObject *parse(PyObject *self, PyObject *args) {
    Py_buffer data, out;
    Py_ssize_t capacity;
    PyObject *rows_of_sequence;
    int delimiter;
    if (!PyArg_ParseTuple(args, "y*w*nOC", &data, &out, &capacity, &rows_of_sequence, &delimiter)) return NULL;
    PyObject *result = NULL;
    int *rows_of = NULL;
    Py_ssize_t fields, highest = -1, rows;
    PyObject *fast = PySequence_Fast(rows_of_sequence, "rows_of must be a sequence of ints");
    if (fast == NULL) goto done;
    fields = PySequence_Fast_GET_SIZE(fast);
    if (fields < 1 || fields > INT_MAX || capacity < 0 || delimiter < 1 || delimiter > 127) {
        PyErr_SetString(PyExc_ValueError, "rows_of must name one field or more, capacity be >= 0, delimiter ASCII");
        goto done;
    }
    rows_of = PyMem_New(int, fields);
    if (rows_of == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    for (Py_ssize_t field = 0; field < fields; field++) {
        long row = PyLong_AsLong(PySequence_Fast_GET_ITEM(fast, field));
        if (row == -1 && PyErr_Occurred()) goto done;
        if (row < -1 || row > INT_MAX) {
            PyErr_SetString(PyExc_ValueError, "rows_of holds a row out of range");
            goto done;
        }
        rows_of[field] = (int)row;
        if (row > highest) highest = row;
    }
    if (capacity > 0 && highest + 1 > out.len / (Py_ssize_t)sizeof(double) / capacity) {
        PyErr_SetString(PyExc_ValueError, "out is smaller than (rows named, capacity) float64 values");
        goto done;
    }
    Py_BEGIN_ALLOW_THREADS;
    rows = parse_lines((const char *)data.buf, (const char *)data.buf + data.len, rows_of, (int)fields,
                       (char)delimiter, (double *)out.buf, capacity);
    Py_END_ALLOW_THREADS;
    result = PyLong_FromSsize_t(rows);
done:
    PyMem_Free(rows_of);
    Py_XDECREF(fast);
    PyBuffer_Release(&data);
    PyBuffer_Release(&out);
    return result;
}

PyDoc_STRVAR(count_lines_doc, "count_lines(data) -> the line feeds in data (bytes-like), counted without the GIL.");

static PyObject *count_lines(PyObject *self, PyObject *args) {
    Py_buffer data;
    if (!PyArg_ParseTuple(args, "y*", &data)) return NULL;
    Py_ssize_t lines = 0;
    Py_BEGIN_ALLOW_THREADS;
    const char *p = (const char *)data.buf, *end = p + data.len;
    while ((p = memchr(p, '\n', (size_t)(end - p))) != NULL) {
        lines++;
        p++;
    }
    Py_END_ALLOW_THREADS;
    PyBuffer_Release(&data);
    return PyLong_FromSsize_t(lines);
}

static PyMethodDef methods[] = {{"parse", parse, METH_VARARGS, parse_doc},
                                {"count_lines", count_lines, METH_VARARGS, count_lines_doc},
                                {NULL, NULL, 0, NULL}};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "plain_numbers",
                                    "The pass's fast path for ranges of plain numeric lines.", -1, methods};

PyMODINIT_FUNC PyInit_plain_numbers(void) { return PyModule_Create(&module); }
