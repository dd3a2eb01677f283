/* The parser's fast path in C: records/parse.py's _FAST_RECORD match (`scan`) and, on top of it,
 * lean_identity's checks and id for the Firehose path (`lean`, further down), for ASCII text.
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
#include <stdio.h>
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

typedef enum { MATCHED, NO_MATCH, NOT_ASCII } Outcome;

/* The message's text and the spans of its groups: what both functions start from. Text with no
 * UTF-8 form (lone surrogates) or that is not ASCII is NOT_ASCII: the Python path decides. */
static Outcome match_message(PyObject *message, const char **text, Py_ssize_t *size, Span *spans) {
    *size = 0;
    *text = PyUnicode_AsUTF8AndSize(message, size);
    if (*text == NULL) {
        PyErr_Clear();
        return NOT_ASCII;
    }
    for (Py_ssize_t i = 0; i < *size; i++) {
        if ((unsigned char)(*text)[i] >= 0x80) {
            return NOT_ASCII;
        }
    }
    for (int i = 0; i < GROUPS; i++) {
        spans[i].start = -1;
        spans[i].end = -1;
    }
    Cursor cursor = {*text, *size, 0};
    return record(&cursor, spans) ? MATCHED : NO_MATCH;
}

static PyObject *scan(PyObject *module, PyObject *message) {
    (void)module;
    if (!PyUnicode_Check(message)) {
        PyErr_SetString(PyExc_TypeError, "scan() takes a str");
        return NULL;
    }
    const char *text;
    Py_ssize_t size;
    Span spans[GROUPS];
    Outcome outcome = match_message(message, &text, &size, spans);
    if (outcome == NOT_ASCII) {
        Py_RETURN_NOTIMPLEMENTED;
    }
    if (outcome == NO_MATCH) {
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

/* --- lean(message, cluster_id, hsm_id, statics, blake2b): the Firehose path's time and id --------
 *
 * records.parse.lean_identity in C for the records it is sure of: the match above, then the
 * checks and the id of `_fast_core` (the record's repeating part must be known clean in
 * `statics`, parse's `_STATIC`; a required user name or key handle must be there), the
 * normalised content and its BLAKE2b-128 through the `blake2b` given (hashlib's). Returns
 * (usecs, event_id), None where lean_identity returns None, or NotImplemented for what the Python
 * path must decide (not ASCII, a repeating part not seen yet, numbers too long for 64 bits).
 */

#define USECS_LIMIT 253402300800000000ULL /* 10000-01-01T00:00:00Z: records.parse._USECS_LIMIT */

static PyObject *digest_size_kwargs = NULL; /* {"digest_size": 16}, made at import */

static PyObject *span_str(const char *text, const Span *span) {
    if (span->start < 0) {
        Py_RETURN_NONE;
    }
    return PyUnicode_FromStringAndSize(text + span->start, span->end - span->start);
}

/* Digits of span -> value; 0 when there are more than `most` digits (the Python path decides). */
static int span_number(const char *text, const Span *span, Py_ssize_t skip, int base, Py_ssize_t most,
                       unsigned long long *out) {
    Py_ssize_t start = span->start + skip;
    if (span->end - start > most) {
        return 0;
    }
    unsigned long long value = 0;
    for (Py_ssize_t i = start; i < span->end; i++) {
        char ch = text[i];
        unsigned digit = (unsigned)(ch >= 'a' ? ch - 'a' + 10 : ch - '0');
        value = value * (unsigned long long)base + digit;
    }
    *out = value;
    return 1;
}

/* UTF-8 of an origin id (None or "" -> ""); 0 when it has none (lone surrogates) or is not a str. */
static int origin_text(PyObject *value, const char **text, Py_ssize_t *size) {
    *text = "";
    *size = 0;
    if (value == Py_None) {
        return 1;
    }
    if (!PyUnicode_Check(value)) {
        return 0;
    }
    const char *utf8 = PyUnicode_AsUTF8AndSize(value, size);
    if (utf8 == NULL) {
        PyErr_Clear();
        return 0;
    }
    *text = utf8;
    return 1;
}

typedef struct {
    char *at;
} Writer;

static void put(Writer *w, const char *text, Py_ssize_t size) {
    memcpy(w->at, text, (size_t)size);
    w->at += size;
}

#define PUT(w, s) put((w), (s), (Py_ssize_t)(sizeof(s) - 1))

static void put_span(Writer *w, const char *text, const Span *span) {
    put(w, text + span->start, span->end - span->start);
}

static PyObject *static_key(const char *text, const Span *spans) {
    static const int fields[5] = {4, 5, 7, 8, 10}; /* command, opcode, response, log type, user type */
    PyObject *key = PyTuple_New(5);
    if (key == NULL) {
        return NULL;
    }
    for (Py_ssize_t i = 0; i < 5; i++) {
        PyObject *item = span_str(text, &spans[fields[i]]);
        if (item == NULL) {
            Py_DECREF(key);
            return NULL;
        }
        PyTuple_SetItem(key, i, item);
    }
    return key;
}

/* 0: no requirement or met; 1: a required field is missing (lean_identity's None); -1: error */
static int requirement_missing(PyObject *entry, const Span *spans) {
    PyObject *required = PyObject_GetAttrString(entry, "required");
    if (required == NULL) {
        return -1;
    }
    int missing = 0;
    if (PyTuple_Check(required) && PyTuple_Size(required) > 0) {
        PyObject *first = PyTuple_GetItem(required, 0);
        int user = first != NULL && PyUnicode_Check(first) && PyUnicode_CompareWithASCIIString(first, "user_name") == 0;
        missing = user ? spans[9].start < 0 : spans[11].start < 0;
    } else if (!PyTuple_Check(required)) {
        missing = -1;
        PyErr_SetString(PyExc_TypeError, "statics entry: `required` is not a tuple");
    }
    Py_DECREF(required);
    return missing;
}

static PyObject *lean(PyObject *module, PyObject *args) {
    (void)module;
    PyObject *message, *cluster_id, *hsm_id, *statics, *blake2b;
    if (!PyArg_ParseTuple(args, "UOOO!O:lean", &message, &cluster_id, &hsm_id, &PyDict_Type, &statics, &blake2b)) {
        return NULL;
    }
    const char *text;
    Py_ssize_t size;
    Span spans[GROUPS];
    Outcome outcome = match_message(message, &text, &size, spans);
    if (outcome == NOT_ASCII) {
        Py_RETURN_NOTIMPLEMENTED;
    }
    if (outcome == NO_MATCH) {
        Py_RETURN_NONE;
    }
    PyObject *key = static_key(text, spans);
    if (key == NULL) {
        return NULL;
    }
    PyObject *entry = PyDict_GetItemWithError(statics, key); /* borrowed */
    Py_DECREF(key);
    if (entry == NULL) {
        if (PyErr_Occurred()) {
            return NULL;
        }
        Py_RETURN_NOTIMPLEMENTED; /* not seen yet: the Python path converts and remembers it */
    }
    if (entry == Py_None) {
        Py_RETURN_NONE;
    }
    int missing = requirement_missing(entry, spans);
    if (missing < 0) {
        return NULL;
    }
    if (missing) {
        Py_RETURN_NONE;
    }
    unsigned long long usecs, sequence_no, reboot_counter;
    if (!span_number(text, &spans[1], 0, 10, 19, &usecs) || !span_number(text, &spans[2], 2, 16, 16, &sequence_no) ||
        !span_number(text, &spans[3], 2, 16, 16, &reboot_counter)) {
        Py_RETURN_NOTIMPLEMENTED;
    }
    if (usecs >= USECS_LIMIT) {
        Py_RETURN_NONE;
    }
    const char *cluster, *hsm;
    Py_ssize_t cluster_size, hsm_size;
    if (!origin_text(cluster_id, &cluster, &cluster_size) || !origin_text(hsm_id, &hsm, &hsm_size)) {
        Py_RETURN_NOTIMPLEMENTED;
    }
    char numbers[3][24];
    int widths[3] = {
        snprintf(numbers[0], sizeof numbers[0], "%llu", reboot_counter),
        snprintf(numbers[1], sizeof numbers[1], "%llu", sequence_no),
        snprintf(numbers[2], sizeof numbers[2], "%llu", usecs),
    };
    /* Upper bound: the origin ids, the three numbers, every captured span (at most the message)
     * and the fixed labels (under 200 bytes). */
    Py_ssize_t bound = cluster_size + hsm_size + widths[0] + widths[1] + widths[2] + size + 256;
    char *buffer = PyMem_Malloc((size_t)bound);
    if (buffer == NULL) {
        return PyErr_NoMemory();
    }
    Writer w = {buffer};
    put(&w, cluster, cluster_size);
    PUT(&w, "|");
    put(&w, hsm, hsm_size);
    PUT(&w, "|");
    put(&w, numbers[0], widths[0]);
    PUT(&w, "|");
    put(&w, numbers[1], widths[1]);
    PUT(&w, "|");
    put(&w, numbers[2], widths[2]);
    PUT(&w, "|time=");
    put_span(&w, text, &spans[0]);
    PUT(&w, ", usecs:");
    put_span(&w, text, &spans[1]);
    PUT(&w, "\nsequence_no=");
    put_span(&w, text, &spans[2]);
    PUT(&w, "\nreboot_counter=");
    put_span(&w, text, &spans[3]);
    PUT(&w, "\ncommand_type=");
    put_span(&w, text, &spans[4]);
    PUT(&w, "\nopcode=");
    put_span(&w, text, &spans[5]);
    PUT(&w, "\nsession_handle=");
    put_span(&w, text, &spans[6]);
    PUT(&w, "\nresponse=");
    put_span(&w, text, &spans[7]);
    PUT(&w, "\nlog_type=");
    put_span(&w, text, &spans[8]);
    if (spans[9].start >= 0) {
        PUT(&w, "\nuser_name=");
        put_span(&w, text, &spans[9]);
        PUT(&w, "\nuser_type=");
        put_span(&w, text, &spans[10]);
    } else if (spans[11].start >= 0) {
        PUT(&w, "\nkey_handle=");
        put_span(&w, text, &spans[11]);
        PUT(&w, "\npublic_key_handle=");
        put_span(&w, text, &spans[12]);
    }
    PyObject *data = PyBytes_FromStringAndSize(buffer, (Py_ssize_t)(w.at - buffer));
    PyMem_Free(buffer);
    if (data == NULL) {
        return NULL;
    }
    PyObject *call_args = PyTuple_Pack(1, data);
    Py_DECREF(data);
    if (call_args == NULL) {
        return NULL;
    }
    PyObject *hash = PyObject_Call(blake2b, call_args, digest_size_kwargs);
    Py_DECREF(call_args);
    if (hash == NULL) {
        return NULL;
    }
    PyObject *event_id = PyObject_CallMethod(hash, "hexdigest", NULL);
    Py_DECREF(hash);
    if (event_id == NULL) {
        return NULL;
    }
    PyObject *time = PyLong_FromUnsignedLongLong(usecs);
    if (time == NULL) {
        Py_DECREF(event_id);
        return NULL;
    }
    PyObject *result = PyTuple_Pack(2, time, event_id);
    Py_DECREF(time);
    Py_DECREF(event_id);
    return result;
}

static PyMethodDef methods[] = {
    {"scan", scan, METH_O,
     "scan(message) -> the 13 groups of the parser's fast-path regex, None (no match), or\n"
     "NotImplemented (not ASCII: run the regex)."},
    {"lean", lean, METH_VARARGS,
     "lean(message, cluster_id, hsm_id, statics, blake2b) -> (usecs, event_id), None, or\n"
     "NotImplemented (the Python path decides): records.parse.lean_identity for clean records."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef definition = {
    PyModuleDef_HEAD_INIT, "hsmaudit.records._scan", "The parser's fast-path match in C (ASCII records).",
    -1, methods, NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__scan(void) {
    if (digest_size_kwargs == NULL) {
        digest_size_kwargs = Py_BuildValue("{s:i}", "digest_size", 16);
        if (digest_size_kwargs == NULL) {
            return NULL;
        }
    }
    return PyModule_Create(&definition);
}
