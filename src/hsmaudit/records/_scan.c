/* The parser's fast-path match in C: records/parse.py's _FAST_RECORD, for ASCII text.
 *
 * scan(message) returns exactly what `_FAST_RECORD.match(message).groups()` returns (a tuple of
 * 13 str-or-None), or None when the regex does not match. For text that is not ASCII it returns
 * NotImplemented and the caller runs the regex: the character classes below are only written
 * for ASCII. tests/unit/test_fast_scan.py holds the two equal on generated and hostile records.
 *
 * The layout it reads (one record of the canonical CloudHSM form; SEP is `[ \t]*:[ \t]*` with
 * no backtracking, VALUE the whole rest of its line, starting and ending with a character
 * that is neither space nor tab, and no CR in it):
 *
 *   Time: DD/DD/DD DD:DD:DD.DDDDDD, usecs:D+\n
 *   Sequence No SEP 0x[0-9a-f]+\n      Reboot counter SEP 0x[0-9a-f]+\n
 *   Command Type(hex) SEP VALUE\n      Opcode SEP VALUE\n
 *   Session Handle SEP 0x[0-9a-f]+\n   Response SEP VALUE\n      Log type SEP VALUE
 *   then the end, or \nUser Name SEP VALUE\nUser Type SEP VALUE and the end,
 *   or \nPriv/Secret Key Handle SEP [0-9]+\nPublic Key Handle SEP [0-9]+ and the end.
 *
 * Every read is bounds-checked against the length: the text is attacker-controlled.
 */

#ifndef Py_LIMITED_API
#define Py_LIMITED_API 0x030B0000
#endif
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <string.h>

#define GROUPS 13

typedef struct {
    const char *text;
    Py_ssize_t size;
    Py_ssize_t at;
} Cursor;

typedef struct {
    Py_ssize_t start;
    Py_ssize_t end; /* start < 0: the group did not take part in the match */
} Span;

static int literal(Cursor *c, const char *expected, Py_ssize_t length) {
    if (c->size - c->at < length || memcmp(c->text + c->at, expected, (size_t)length) != 0) {
        return 0;
    }
    c->at += length;
    return 1;
}

#define LITERAL(c, s) literal((c), (s), (Py_ssize_t)(sizeof(s) - 1))

static void blanks(Cursor *c) {
    while (c->at < c->size && (c->text[c->at] == ' ' || c->text[c->at] == '\t')) {
        c->at++;
    }
}

/* `[ \t]*+:[ \t]*+` */
static int separator(Cursor *c) {
    blanks(c);
    if (c->at >= c->size || c->text[c->at] != ':') {
        return 0;
    }
    c->at++;
    blanks(c);
    return 1;
}

static int is_digit(char ch) { return ch >= '0' && ch <= '9'; }

/* exactly `count` digits */
static int digits(Cursor *c, Py_ssize_t count) {
    if (c->size - c->at < count) {
        return 0;
    }
    for (Py_ssize_t i = 0; i < count; i++) {
        if (!is_digit(c->text[c->at + i])) {
            return 0;
        }
    }
    c->at += count;
    return 1;
}

/* `([0-9]+)` */
static int number(Cursor *c, Span *span) {
    Py_ssize_t start = c->at;
    while (c->at < c->size && is_digit(c->text[c->at])) {
        c->at++;
    }
    if (c->at == start) {
        return 0;
    }
    span->start = start;
    span->end = c->at;
    return 1;
}

/* `(0x[0-9a-f]+)` */
static int hexadecimal(Cursor *c, Span *span) {
    Py_ssize_t start = c->at;
    if (!LITERAL(c, "0x")) {
        return 0;
    }
    Py_ssize_t first = c->at;
    while (c->at < c->size) {
        char ch = c->text[c->at];
        if (!(is_digit(ch) || (ch >= 'a' && ch <= 'f'))) {
            break;
        }
        c->at++;
    }
    if (c->at == first) {
        return 0;
    }
    span->start = start;
    span->end = c->at;
    return 1;
}

/* `([^ \t\r\n](?:[^\r\n]*[^ \t\r\n])?)` where the pattern goes on with `\n` or the end: the rest of
 * the line, which must not hold a CR nor start or end with a space or tab. */
static int value(Cursor *c, Span *span) {
    Py_ssize_t start = c->at;
    Py_ssize_t end = start;
    while (end < c->size && c->text[end] != '\n') {
        if (c->text[end] == '\r') {
            return 0;
        }
        end++;
    }
    if (end == start) {
        return 0;
    }
    char first = c->text[start];
    char last = c->text[end - 1];
    if (first == ' ' || first == '\t' || last == ' ' || last == '\t') {
        return 0;
    }
    span->start = start;
    span->end = end;
    c->at = end;
    return 1;
}

static int time_text(Cursor *c, Span *span) {
    Py_ssize_t start = c->at;
    if (!(digits(c, 2) && LITERAL(c, "/") && digits(c, 2) && LITERAL(c, "/") && digits(c, 2) &&
          LITERAL(c, " ") && digits(c, 2) && LITERAL(c, ":") && digits(c, 2) && LITERAL(c, ":") &&
          digits(c, 2) && LITERAL(c, ".") && digits(c, 6))) {
        return 0;
    }
    span->start = start;
    span->end = c->at;
    return 1;
}

static int user_block(Cursor *c, Span *spans) {
    return LITERAL(c, "\nUser Name") && separator(c) && value(c, &spans[9]) && LITERAL(c, "\nUser Type") &&
           separator(c) && value(c, &spans[10]) && c->at == c->size;
}

static int key_block(Cursor *c, Span *spans) {
    return LITERAL(c, "\nPriv/Secret Key Handle") && separator(c) && number(c, &spans[11]) &&
           LITERAL(c, "\nPublic Key Handle") && separator(c) && number(c, &spans[12]) && c->at == c->size;
}

static int record(Cursor *c, Span *spans) {
    if (!(LITERAL(c, "Time: ") && time_text(c, &spans[0]) && LITERAL(c, ", usecs:") && number(c, &spans[1]) &&
          LITERAL(c, "\nSequence No") && separator(c) && hexadecimal(c, &spans[2]) &&
          LITERAL(c, "\nReboot counter") && separator(c) && hexadecimal(c, &spans[3]) &&
          LITERAL(c, "\nCommand Type(hex)") && separator(c) && value(c, &spans[4]) && LITERAL(c, "\nOpcode") &&
          separator(c) && value(c, &spans[5]) && LITERAL(c, "\nSession Handle") && separator(c) &&
          hexadecimal(c, &spans[6]) && LITERAL(c, "\nResponse") && separator(c) && value(c, &spans[7]) &&
          LITERAL(c, "\nLog type") && separator(c) && value(c, &spans[8]))) {
        return 0;
    }
    if (c->at == c->size) {
        return 1;
    }
    Py_ssize_t after_log_type = c->at;
    if (user_block(c, spans)) {
        return 1;
    }
    spans[9].start = spans[10].start = -1;
    c->at = after_log_type;
    if (key_block(c, spans)) {
        return 1;
    }
    return 0;
}

static PyObject *scan(PyObject *module, PyObject *message) {
    (void)module;
    if (!PyUnicode_Check(message)) {
        PyErr_SetString(PyExc_TypeError, "scan() takes a str");
        return NULL;
    }
    Py_ssize_t size = 0;
    const char *text = PyUnicode_AsUTF8AndSize(message, &size);
    if (text == NULL) { /* lone surrogates have no UTF-8 form: the regex decides */
        PyErr_Clear();
        Py_RETURN_NOTIMPLEMENTED;
    }
    for (Py_ssize_t i = 0; i < size; i++) {
        if ((unsigned char)text[i] >= 0x80) {
            Py_RETURN_NOTIMPLEMENTED;
        }
    }
    Span spans[GROUPS];
    for (int i = 0; i < GROUPS; i++) {
        spans[i].start = -1;
        spans[i].end = -1;
    }
    Cursor cursor = {text, size, 0};
    if (!record(&cursor, spans)) {
        Py_RETURN_NONE;
    }
    PyObject *groups = PyTuple_New(GROUPS);
    if (groups == NULL) {
        return NULL;
    }
    for (Py_ssize_t i = 0; i < GROUPS; i++) {
        PyObject *item;
        if (spans[i].start < 0) {
            item = Py_None;
            Py_INCREF(item);
        } else {
            item = PyUnicode_FromStringAndSize(text + spans[i].start, spans[i].end - spans[i].start);
            if (item == NULL) {
                Py_DECREF(groups);
                return NULL;
            }
        }
        PyTuple_SetItem(groups, i, item); /* steals the reference */
    }
    return groups;
}

static PyMethodDef methods[] = {
    {"scan", scan, METH_O,
     "scan(message) -> the 13 groups of the parser's fast-path regex, None (no match), or\n"
     "NotImplemented (not ASCII: run the regex)."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef definition = {
    PyModuleDef_HEAD_INIT, "hsmaudit.records._scan", "The parser's fast-path match in C (ASCII records).",
    -1, methods, NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__scan(void) { return PyModule_Create(&definition); }
