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
#include <stdint.h>
#include <string.h>

#define GROUPS 13

/* Eight bytes at a time (SWAR): the record's hot scans read words, not bytes. memcpy keeps the
 * loads unaligned-safe on every machine; compilers turn it into one load. */
static uint64_t load_word(const char *p) {
    uint64_t word;
    memcpy(&word, p, sizeof word);
    return word;
}

#define ONES 0x0101010101010101ULL
#define HIGHS 0x8080808080808080ULL

/* Nonzero when a byte of `word` is below n (n <= 128) or has its high bit set. */
static uint64_t below_or_high(uint64_t word, unsigned n) { return ((word - ONES * n) | word) & HIGHS; }

/* Nonzero when a byte of `word` equals `ch`. */
static uint64_t has_byte(uint64_t word, unsigned char ch) {
    uint64_t x = word ^ (ONES * ch);
    return (x - ONES) & ~x & HIGHS;
}

static int all_ascii(const char *text, Py_ssize_t size) {
    Py_ssize_t i = 0;
    for (; i + 8 <= size; i += 8) {
        if (load_word(text + i) & HIGHS) {
            return 0;
        }
    }
    for (; i < size; i++) {
        if ((unsigned char)text[i] >= 0x80) {
            return 0;
        }
    }
    return 1;
}

/* Decimal digits of value at out (at least 20 bytes of room); returns how many. */
static int put_decimal(char *out, unsigned long long value) {
    char digits[20];
    int count = 0;
    do {
        digits[count++] = (char)('0' + value % 10);
        value /= 10;
    } while (value != 0);
    for (int i = 0; i < count; i++) {
        out[i] = digits[count - 1 - i];
    }
    return count;
}

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
    const char *newline = memchr(c->text + start, '\n', (size_t)(c->size - start));
    Py_ssize_t end = newline == NULL ? c->size : newline - c->text;
    if (end == start || memchr(c->text + start, '\r', (size_t)(end - start)) != NULL) {
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
    if (!all_ascii(*text, *size)) {
        return NOT_ASCII;
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

/* --- BLAKE2b (RFC 7693), unkeyed, for the 16-byte event id --------------------------------------
 *
 * The id is BLAKE2b-128 of the record's normalised content (records/identity.py, with hashlib).
 * Here the content is hashed as it is written, piece by piece, with no buffer and no call back
 * into Python. tests/unit/test_fast_scan.py holds it equal to hashlib's for any input.
 */

typedef struct {
    uint64_t h[8];
    uint64_t t[2];
    unsigned char block[128];
    size_t filled;
} Blake2b;

static const uint64_t blake2b_iv[8] = {
    0x6a09e667f3bcc908ULL, 0xbb67ae8584caa73bULL, 0x3c6ef372fe94f82bULL, 0xa54ff53a5f1d36f1ULL,
    0x510e527fade682d1ULL, 0x9b05688c2b3e6c1fULL, 0x1f83d9abfb41bd6bULL, 0x5be0cd19137e2179ULL,
};

static const unsigned char blake2b_sigma[12][16] = {
    {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15}, {14, 10, 4, 8, 9, 15, 13, 6, 1, 12, 0, 2, 11, 7, 5, 3},
    {11, 8, 12, 0, 5, 2, 15, 13, 10, 14, 3, 6, 7, 1, 9, 4}, {7, 9, 3, 1, 13, 12, 11, 14, 2, 6, 5, 10, 4, 0, 15, 8},
    {9, 0, 5, 7, 2, 4, 10, 15, 14, 1, 11, 12, 6, 8, 3, 13}, {2, 12, 6, 10, 0, 11, 8, 3, 4, 13, 7, 5, 15, 14, 1, 9},
    {12, 5, 1, 15, 14, 13, 4, 10, 0, 7, 6, 3, 9, 2, 8, 11}, {13, 11, 7, 14, 12, 1, 3, 9, 5, 0, 15, 4, 8, 6, 2, 10},
    {6, 15, 14, 9, 11, 3, 0, 8, 12, 2, 13, 7, 1, 4, 10, 5}, {10, 2, 8, 4, 7, 6, 1, 5, 15, 11, 9, 14, 3, 12, 13, 0},
    {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15}, {14, 10, 4, 8, 9, 15, 13, 6, 1, 12, 0, 2, 11, 7, 5, 3},
};

static uint64_t rotr64(uint64_t x, unsigned n) { return (x >> n) | (x << (64 - n)); }

static uint64_t load64(const unsigned char *p) { /* little-endian whatever the machine */
    return (uint64_t)p[0] | (uint64_t)p[1] << 8 | (uint64_t)p[2] << 16 | (uint64_t)p[3] << 24 |
           (uint64_t)p[4] << 32 | (uint64_t)p[5] << 40 | (uint64_t)p[6] << 48 | (uint64_t)p[7] << 56;
}

#define BLAKE2B_G(a, b, c, d, x, y)                                                                        \
    do {                                                                                                   \
        v[a] = v[a] + v[b] + (x);                                                                          \
        v[d] = rotr64(v[d] ^ v[a], 32);                                                                    \
        v[c] = v[c] + v[d];                                                                                \
        v[b] = rotr64(v[b] ^ v[c], 24);                                                                    \
        v[a] = v[a] + v[b] + (y);                                                                          \
        v[d] = rotr64(v[d] ^ v[a], 16);                                                                    \
        v[c] = v[c] + v[d];                                                                                \
        v[b] = rotr64(v[b] ^ v[c], 63);                                                                    \
    } while (0)

static void blake2b_compress(Blake2b *state, int last) {
    uint64_t m[16], v[16];
    for (int i = 0; i < 16; i++) {
        m[i] = load64(state->block + 8 * i);
    }
    for (int i = 0; i < 8; i++) {
        v[i] = state->h[i];
        v[i + 8] = blake2b_iv[i];
    }
    v[12] ^= state->t[0];
    v[13] ^= state->t[1];
    if (last) {
        v[14] = ~v[14];
    }
/* each round written out, so that every message index is a constant the compiler folds */
#define BLAKE2B_ROUND(r)                                                                                   \
    do {                                                                                                   \
        BLAKE2B_G(0, 4, 8, 12, m[blake2b_sigma[r][0]], m[blake2b_sigma[r][1]]);                            \
        BLAKE2B_G(1, 5, 9, 13, m[blake2b_sigma[r][2]], m[blake2b_sigma[r][3]]);                            \
        BLAKE2B_G(2, 6, 10, 14, m[blake2b_sigma[r][4]], m[blake2b_sigma[r][5]]);                           \
        BLAKE2B_G(3, 7, 11, 15, m[blake2b_sigma[r][6]], m[blake2b_sigma[r][7]]);                           \
        BLAKE2B_G(0, 5, 10, 15, m[blake2b_sigma[r][8]], m[blake2b_sigma[r][9]]);                           \
        BLAKE2B_G(1, 6, 11, 12, m[blake2b_sigma[r][10]], m[blake2b_sigma[r][11]]);                         \
        BLAKE2B_G(2, 7, 8, 13, m[blake2b_sigma[r][12]], m[blake2b_sigma[r][13]]);                          \
        BLAKE2B_G(3, 4, 9, 14, m[blake2b_sigma[r][14]], m[blake2b_sigma[r][15]]);                          \
    } while (0)
    BLAKE2B_ROUND(0);
    BLAKE2B_ROUND(1);
    BLAKE2B_ROUND(2);
    BLAKE2B_ROUND(3);
    BLAKE2B_ROUND(4);
    BLAKE2B_ROUND(5);
    BLAKE2B_ROUND(6);
    BLAKE2B_ROUND(7);
    BLAKE2B_ROUND(8);
    BLAKE2B_ROUND(9);
    BLAKE2B_ROUND(10);
    BLAKE2B_ROUND(11);
#undef BLAKE2B_ROUND
    for (int i = 0; i < 8; i++) {
        state->h[i] ^= v[i] ^ v[i + 8];
    }
}

#define ID_BYTES 16

static void blake2b_init(Blake2b *state) {
    memcpy(state->h, blake2b_iv, sizeof state->h);
    state->h[0] ^= 0x01010000ULL ^ ID_BYTES; /* depth 1, fanout 1, no key, 16-byte digest */
    state->t[0] = state->t[1] = 0;
    state->filled = 0;
}

static void blake2b_count(Blake2b *state, size_t bytes) {
    state->t[0] += bytes;
    if (state->t[0] < bytes) {
        state->t[1]++;
    }
}

/* A full block is compressed only once more input follows: the last block is compressed last. */
static void blake2b_update(Blake2b *state, const char *data, size_t size) {
    const unsigned char *in = (const unsigned char *)data;
    while (size > 0) {
        if (state->filled == sizeof state->block) {
            blake2b_count(state, sizeof state->block);
            blake2b_compress(state, 0);
            state->filled = 0;
        }
        size_t take = sizeof state->block - state->filled;
        if (take > size) {
            take = size;
        }
        memcpy(state->block + state->filled, in, take);
        state->filled += take;
        in += take;
        size -= take;
    }
}

/* The 16-byte digest as 32 lowercase hex digits (hashlib's hexdigest). */
static void blake2b_hex(Blake2b *state, char hex[2 * ID_BYTES]) {
    static const char digits[] = "0123456789abcdef";
    blake2b_count(state, state->filled);
    memset(state->block + state->filled, 0, sizeof state->block - state->filled);
    blake2b_compress(state, 1);
    for (int i = 0; i < ID_BYTES; i++) {
        unsigned char byte = (unsigned char)(state->h[i / 8] >> (8 * (i % 8)));
        hex[2 * i] = digits[byte >> 4];
        hex[2 * i + 1] = digits[byte & 15];
    }
}

static PyObject *blake2b_128(PyObject *module, PyObject *data) {
    (void)module;
    if (!PyBytes_Check(data)) {
        PyErr_SetString(PyExc_TypeError, "blake2b_128() takes bytes");
        return NULL;
    }
    Blake2b state;
    char hex[2 * ID_BYTES];
    blake2b_init(&state);
    blake2b_update(&state, PyBytes_AsString(data), (size_t)PyBytes_Size(data));
    blake2b_hex(&state, hex);
    return PyUnicode_FromStringAndSize(hex, sizeof hex);
}

/* --- What parse's _STATIC says of a record's repeating part, remembered in C --------------------
 *
 * lean_identity needs one fact of the repeating part (command, opcode, response, log type, user
 * type): parse's `_STATIC` holds, per part, None (not clean: the full parse explains it) or an
 * entry whose `required` names the user name or the key handle, or nothing. A part is a function
 * of its five texts, so its verdict is kept here under those texts, for as long as the same
 * `statics` dict is passed (a new dict starts over), and read with no Python object made.
 */

typedef enum { VERDICT_UNKNOWN, VERDICT_UNCLEAN, VERDICT_FREE, VERDICT_NEEDS_USER, VERDICT_NEEDS_KEY } Verdict;

static const int static_fields[5] = {4, 5, 7, 8, 10}; /* command, opcode, response, log type, user type */

#define VERDICT_SLOTS 256 /* a power of two; CloudHSM has a few dozen parts in use */
#define VERDICT_KEY_MAX 248

typedef struct {
    uint64_t hash;
    Py_ssize_t size; /* 0: empty slot */
    Verdict verdict;
    char key[VERDICT_KEY_MAX];
} VerdictSlot;

static VerdictSlot verdicts[VERDICT_SLOTS];
static Py_ssize_t verdicts_used = 0;
static PyObject *verdicts_owner = NULL; /* the statics dict they were read from (a reference) */

/* The five texts, each as a length byte (255: absent) and its bytes; 0 if over VERDICT_KEY_MAX. */
static Py_ssize_t verdict_key(const char *text, const Span *spans, char key[VERDICT_KEY_MAX]) {
    Py_ssize_t size = 0;
    for (int i = 0; i < 5; i++) {
        const Span *span = &spans[static_fields[i]];
        Py_ssize_t length = span->start < 0 ? 0 : span->end - span->start;
        if (length >= 255 || size + 1 + length > VERDICT_KEY_MAX) {
            return 0;
        }
        key[size++] = (char)(span->start < 0 ? 255 : length);
        memcpy(key + size, text + (span->start < 0 ? 0 : span->start), (size_t)length);
        size += length;
    }
    return size;
}

static uint64_t fnv1a(const char *data, Py_ssize_t size) {
    uint64_t hash = 0xcbf29ce484222325ULL;
    for (Py_ssize_t i = 0; i < size; i++) {
        hash = (hash ^ (unsigned char)data[i]) * 0x100000001b3ULL;
    }
    return hash;
}

static VerdictSlot *verdict_slot(const char *key, Py_ssize_t size, uint64_t hash) {
    for (Py_ssize_t probe = 0; probe < VERDICT_SLOTS; probe++) {
        VerdictSlot *slot = &verdicts[(hash + (uint64_t)probe) & (VERDICT_SLOTS - 1)];
        if (slot->size == 0 || (slot->hash == hash && slot->size == size && memcmp(slot->key, key, (size_t)size) == 0)) {
            return slot;
        }
    }
    return NULL;
}

static void verdicts_follow(PyObject *statics) {
    if (statics == verdicts_owner) {
        return;
    }
    memset(verdicts, 0, sizeof verdicts);
    verdicts_used = 0;
    PyObject *previous = verdicts_owner;
    Py_INCREF(statics);
    verdicts_owner = statics;
    Py_XDECREF(previous);
}

/* The verdict of an entry of `statics` (None, or an object with a `required` tuple). */
static Verdict entry_verdict(PyObject *entry) {
    if (entry == Py_None) {
        return VERDICT_UNCLEAN;
    }
    PyObject *required = PyObject_GetAttrString(entry, "required");
    if (required == NULL) {
        return VERDICT_UNKNOWN;
    }
    Verdict verdict = VERDICT_FREE;
    if (!PyTuple_Check(required)) {
        PyErr_SetString(PyExc_TypeError, "statics entry: `required` is not a tuple");
        verdict = VERDICT_UNKNOWN;
    } else if (PyTuple_Size(required) > 0) {
        PyObject *first = PyTuple_GetItem(required, 0);
        int user = first != NULL && PyUnicode_Check(first) && PyUnicode_CompareWithASCIIString(first, "user_name") == 0;
        verdict = user ? VERDICT_NEEDS_USER : VERDICT_NEEDS_KEY;
    }
    Py_DECREF(required);
    return verdict;
}

/* The verdict of the record's part: from the slots, else from `statics` (then remembered).
 * VERDICT_UNKNOWN with no exception set: `statics` has not seen the part yet. */
static Verdict part_verdict(PyObject *statics, const char *text, const Span *spans) {
    char key[VERDICT_KEY_MAX];
    Py_ssize_t size = verdict_key(text, spans, key);
    uint64_t hash = size ? fnv1a(key, size) : 0;
    VerdictSlot *slot = size ? verdict_slot(key, size, hash) : NULL;
    if (slot != NULL && slot->size != 0) {
        return slot->verdict;
    }
    PyObject *tuple = PyTuple_New(5);
    if (tuple == NULL) {
        return VERDICT_UNKNOWN;
    }
    for (Py_ssize_t i = 0; i < 5; i++) {
        const Span *span = &spans[static_fields[i]];
        PyObject *item = span->start < 0 ? Py_NewRef(Py_None)
                                         : PyUnicode_FromStringAndSize(text + span->start, span->end - span->start);
        if (item == NULL) {
            Py_DECREF(tuple);
            return VERDICT_UNKNOWN;
        }
        PyTuple_SetItem(tuple, i, item);
    }
    PyObject *entry = PyDict_GetItemWithError(statics, tuple); /* borrowed */
    Py_DECREF(tuple);
    if (entry == NULL) {
        return VERDICT_UNKNOWN;
    }
    Verdict verdict = entry_verdict(entry);
    if (verdict != VERDICT_UNKNOWN && slot != NULL && verdicts_used < VERDICT_SLOTS * 3 / 4) {
        slot->hash = hash;
        slot->size = size;
        slot->verdict = verdict;
        memcpy(slot->key, key, (size_t)size);
        verdicts_used++;
    }
    return verdict;
}

/* --- lean: lean_identity's time and id, for the records it is sure of --------------------------
 *
 * records.parse.lean_identity in C: the match above, then the checks and the id of `_fast_core`
 * (the repeating part known clean in `statics`, parse's `_STATIC`; a required user name or key
 * handle there; the year-10000 bound), the normalised content hashed as records/identity.py does.
 */

#define USECS_LIMIT 253402300800000000ULL /* 10000-01-01T00:00:00Z: records.parse._USECS_LIMIT */

typedef enum { LEAN_SURE, LEAN_UNCLEAN, LEAN_UNSURE, LEAN_ERROR } LeanOutcome;

typedef struct {
    const char *cluster;
    Py_ssize_t cluster_size;
    const char *hsm;
    Py_ssize_t hsm_size;
} Origin;

typedef struct {
    const char *text; /* the message's UTF-8 (ASCII) */
    Py_ssize_t size;
    unsigned long long usecs;
    unsigned long long sequence_no;
    unsigned long long reboot_counter;
    char id[2 * ID_BYTES];
} Lean;

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

/* The origin ids as UTF-8; 0 when either has none (the Python path decides). */
static int origin_of(PyObject *cluster_id, PyObject *hsm_id, Origin *origin) {
    return origin_text(cluster_id, &origin->cluster, &origin->cluster_size) &&
           origin_text(hsm_id, &origin->hsm, &origin->hsm_size);
}

static void hash_text(Blake2b *state, const char *text, size_t size) { blake2b_update(state, text, size); }

#define HASH(state, s) hash_text((state), (s), sizeof(s) - 1)

static void hash_span(Blake2b *state, const char *text, const Span *span) {
    blake2b_update(state, text + span->start, (size_t)(span->end - span->start));
}

static void hash_number(Blake2b *state, unsigned long long value) {
    char digits[20];
    blake2b_update(state, digits, (size_t)put_decimal(digits, value));
}

/* records/identity.py's content: `cluster|hsm|reboot|sequence|usecs|` then the normalised record. */
static void lean_id(const Origin *origin, const char *text, const Span *spans, unsigned long long usecs,
                    unsigned long long sequence_no, unsigned long long reboot_counter, char id[2 * ID_BYTES]) {
    Blake2b state;
    blake2b_init(&state);
    blake2b_update(&state, origin->cluster, (size_t)origin->cluster_size);
    HASH(&state, "|");
    blake2b_update(&state, origin->hsm, (size_t)origin->hsm_size);
    HASH(&state, "|");
    hash_number(&state, reboot_counter);
    HASH(&state, "|");
    hash_number(&state, sequence_no);
    HASH(&state, "|");
    hash_number(&state, usecs);
    static const char *const labels[9] = {
        "|time=",        ", usecs:",         "\nsequence_no=", "\nreboot_counter=", "\ncommand_type=",
        "\nopcode=",     "\nsession_handle=", "\nresponse=",    "\nlog_type=",
    };
    for (int i = 0; i < 9; i++) { /* groups 1-9 in the record's order, each after its label */
        hash_text(&state, labels[i], strlen(labels[i]));
        hash_span(&state, text, &spans[i]);
    }
    if (spans[9].start >= 0) {
        HASH(&state, "\nuser_name=");
        hash_span(&state, text, &spans[9]);
        HASH(&state, "\nuser_type=");
        hash_span(&state, text, &spans[10]);
    } else if (spans[11].start >= 0) {
        HASH(&state, "\nkey_handle=");
        hash_span(&state, text, &spans[11]);
        HASH(&state, "\npublic_key_handle=");
        hash_span(&state, text, &spans[12]);
    }
    blake2b_hex(&state, id);
}

static LeanOutcome lean_record(PyObject *message, const Origin *origin, PyObject *statics, Lean *out) {
    Span spans[GROUPS];
    Outcome outcome = match_message(message, &out->text, &out->size, spans);
    if (outcome == NOT_ASCII) {
        return LEAN_UNSURE;
    }
    if (outcome == NO_MATCH) {
        return LEAN_UNCLEAN;
    }
    Verdict verdict = part_verdict(statics, out->text, spans);
    switch (verdict) {
    case VERDICT_UNKNOWN:
        return PyErr_Occurred() ? LEAN_ERROR : LEAN_UNSURE; /* not seen: Python converts, remembers */
    case VERDICT_UNCLEAN:
        return LEAN_UNCLEAN;
    case VERDICT_NEEDS_USER:
        if (spans[9].start < 0) {
            return LEAN_UNCLEAN;
        }
        break;
    case VERDICT_NEEDS_KEY:
        if (spans[11].start < 0) {
            return LEAN_UNCLEAN;
        }
        break;
    case VERDICT_FREE:
        break;
    }
    if (!span_number(out->text, &spans[1], 0, 10, 19, &out->usecs) ||
        !span_number(out->text, &spans[2], 2, 16, 16, &out->sequence_no) ||
        !span_number(out->text, &spans[3], 2, 16, 16, &out->reboot_counter)) {
        return LEAN_UNSURE;
    }
    if (out->usecs >= USECS_LIMIT) {
        return LEAN_UNCLEAN;
    }
    lean_id(origin, out->text, spans, out->usecs, out->sequence_no, out->reboot_counter, out->id);
    return LEAN_SURE;
}

static PyObject *lean(PyObject *module, PyObject *args) {
    (void)module;
    PyObject *message, *cluster_id, *hsm_id, *statics;
    if (!PyArg_ParseTuple(args, "UOOO!:lean", &message, &cluster_id, &hsm_id, &PyDict_Type, &statics)) {
        return NULL;
    }
    Origin origin;
    if (!origin_of(cluster_id, hsm_id, &origin)) {
        Py_RETURN_NOTIMPLEMENTED;
    }
    verdicts_follow(statics);
    Lean found;
    switch (lean_record(message, &origin, statics, &found)) {
    case LEAN_ERROR:
        return NULL;
    case LEAN_UNSURE:
        Py_RETURN_NOTIMPLEMENTED;
    case LEAN_UNCLEAN:
        Py_RETURN_NONE;
    case LEAN_SURE:
        break;
    }
    return Py_BuildValue("(Ks#)", found.usecs, found.id, (Py_ssize_t)sizeof found.id);
}

/* --- lean_lines: a stream's run of clean records -> their lean HEC lines, in one call ----------
 *
 * The Lambdas' inner loop: for entries[start:], each a CloudWatch log event with a `message`,
 * while lean_record is sure of the record, write its line as EventEncoder.text_line does,
 * `{"time":<s.usecs>` + before_text + the text as a JSON string + before_id + the id as a JSON
 * string + `}}`, and a newline. It stops at the first record it is not sure of, which the caller
 * takes through the Python path before calling again past it, so the lines keep their order.
 *
 * On the way it follows the stream's order as the subscription Lambda's SequenceGaps metric does
 * (aws/document_lines.py): given the last (reboot counter, sequence number) seen, or None, it
 * counts the records missing between consecutive records of one boot. Returns (the lines, where
 * it stopped, the last reboot counter, the last sequence number, the gaps counted).
 */

typedef struct {
    int known;
    unsigned long long reboot;
    unsigned long long sequence;
    unsigned long long gaps; /* since the last flush into `total` */
    PyObject *total;         /* a Python int: gaps can sum past 64 bits on hostile input */
} Order;

/* The last position handed in: ints in 0..2^64-1, or None (the caller, records.parse.lean_lines,
 * passes None for anything else, which compares as None would). 0 on error. */
static int order_start(Order *order, PyObject *reboot, PyObject *sequence) {
    order->known = 0;
    order->gaps = 0;
    order->total = PyLong_FromLong(0);
    if (order->total == NULL) {
        return 0;
    }
    if (reboot == Py_None || sequence == Py_None) {
        return 1;
    }
    order->reboot = PyLong_AsUnsignedLongLong(reboot);
    if (PyErr_Occurred()) {
        return 0;
    }
    order->sequence = PyLong_AsUnsignedLongLong(sequence);
    if (PyErr_Occurred()) {
        return 0;
    }
    order->known = 1;
    return 1;
}

static int order_flush(Order *order) {
    if (order->gaps == 0) {
        return 1;
    }
    PyObject *gaps = PyLong_FromUnsignedLongLong(order->gaps);
    if (gaps == NULL) {
        return 0;
    }
    PyObject *sum = PyNumber_Add(order->total, gaps);
    Py_DECREF(gaps);
    if (sum == NULL) {
        return 0;
    }
    Py_DECREF(order->total);
    order->total = sum;
    order->gaps = 0;
    return 1;
}

static int order_follow(Order *order, unsigned long long reboot, unsigned long long sequence) {
    if (order->known && reboot == order->reboot && sequence > order->sequence && sequence - order->sequence > 1) {
        unsigned long long missing = sequence - order->sequence - 1;
        if (order->gaps > (unsigned long long)-1 - missing && !order_flush(order)) {
            return 0;
        }
        order->gaps += missing;
    }
    order->known = 1;
    order->reboot = reboot;
    order->sequence = sequence;
    return 1;
}

typedef struct {
    char *data;
    Py_ssize_t size;
    Py_ssize_t capacity;
} Buffer;

static int reserve(Buffer *b, Py_ssize_t more) {
    if (b->capacity - b->size >= more) {
        return 1;
    }
    Py_ssize_t capacity = b->capacity ? b->capacity : 4096;
    while (capacity - b->size < more) {
        if (capacity > PY_SSIZE_T_MAX / 2) {
            PyErr_NoMemory();
            return 0;
        }
        capacity *= 2;
    }
    char *data = PyMem_Realloc(b->data, (size_t)capacity);
    if (data == NULL) {
        PyErr_NoMemory();
        return 0;
    }
    b->data = data;
    b->capacity = capacity;
    return 1;
}

static void append(Buffer *b, const char *data, Py_ssize_t size) {
    memcpy(b->data + b->size, data, (size_t)size);
    b->size += size;
}

#define APPEND(b, s) append((b), (s), (Py_ssize_t)(sizeof(s) - 1))

/* `seconds.micros` of usecs, as b"%d.%06d" % divmod(usecs, 1_000_000) writes it. */
static void append_time(Buffer *b, unsigned long long usecs) {
    char *at = b->data + b->size;
    at += put_decimal(at, usecs / 1000000ULL);
    *at++ = '.';
    unsigned long long micros = usecs % 1000000ULL;
    for (int i = 5; i >= 0; i--) {
        at[i] = (char)('0' + micros % 10);
        micros /= 10;
    }
    b->size = at + 6 - b->data;
}

/* ASCII text as a JSON string, byte for byte what msgspec writes: `"` and `\` escaped, \b \f \n
 * \r \t short, other controls as \u00xx (lowercase hex), DEL and the rest as they are. Runs of
 * plain bytes are found eight at a time and copied whole. */
static void append_json_ascii(Buffer *b, const char *text, Py_ssize_t size) {
    static const char hex[] = "0123456789abcdef";
    char *at = b->data + b->size;
    *at++ = '"';
    Py_ssize_t i = 0;
    while (i < size) {
        Py_ssize_t run = i;
        while (run + 8 <= size) {
            uint64_t word = load_word(text + run);
            if (below_or_high(word, 0x20) | has_byte(word, '"') | has_byte(word, '\\')) {
                break;
            }
            run += 8;
        }
        while (run < size) {
            unsigned char ch = (unsigned char)text[run];
            if (ch < 0x20 || ch == '"' || ch == '\\') {
                break;
            }
            run++;
        }
        memcpy(at, text + i, (size_t)(run - i));
        at += run - i;
        if (run == size) {
            break;
        }
        unsigned char ch = (unsigned char)text[run];
        i = run + 1;
        *at++ = '\\';
        switch (ch) {
        case '"':
            *at++ = '"';
            break;
        case '\\':
            *at++ = '\\';
            break;
        case '\b':
            *at++ = 'b';
            break;
        case '\f':
            *at++ = 'f';
            break;
        case '\n':
            *at++ = 'n';
            break;
        case '\r':
            *at++ = 'r';
            break;
        case '\t':
            *at++ = 't';
            break;
        default:
            *at++ = 'u';
            *at++ = '0';
            *at++ = '0';
            *at++ = hex[ch >> 4];
            *at++ = hex[ch & 15];
        }
    }
    *at++ = '"';
    b->size = at - b->data;
}

static PyObject *lean_lines(PyObject *module, PyObject *args) {
    (void)module;
    PyObject *entries, *cluster_id, *hsm_id, *statics, *reboot, *sequence;
    Py_ssize_t start;
    const char *before_text, *before_id;
    Py_ssize_t before_text_size, before_id_size;
    if (!PyArg_ParseTuple(args, "O!nOOO!y#y#OO:lean_lines", &PyList_Type, &entries, &start, &cluster_id, &hsm_id,
                          &PyDict_Type, &statics, &before_text, &before_text_size, &before_id, &before_id_size,
                          &reboot, &sequence)) {
        return NULL;
    }
    Py_ssize_t count = PyList_Size(entries);
    if (start < 0 || start > count) {
        PyErr_SetString(PyExc_IndexError, "lean_lines: start out of range");
        return NULL;
    }
    Order order;
    if (!order_start(&order, reboot, sequence)) {
        Py_XDECREF(order.total);
        return NULL;
    }
    Origin origin;
    Py_ssize_t at = start;
    Buffer out = {NULL, 0, 0};
    if (!origin_of(cluster_id, hsm_id, &origin)) {
        count = start; /* ids with no UTF-8 form: the Python path takes every record */
    } else {
        verdicts_follow(statics);
    }
    static PyObject *message_name = NULL;
    if (message_name == NULL && (message_name = PyUnicode_InternFromString("message")) == NULL) {
        Py_DECREF(order.total);
        return NULL;
    }
    for (; at < count && at < PyList_Size(entries); at++) { /* a __getattr__ could shorten it */
        PyObject *entry = PyList_GetItem(entries, at);
        if (entry == NULL) {
            PyErr_Clear();
            break;
        }
        Py_INCREF(entry); /* held while its attribute is read, whatever that runs */
        PyObject *message = PyObject_GetAttr(entry, message_name);
        Py_DECREF(entry);
        if (message == NULL) {
            PyErr_Clear(); /* not a log event: the Python path says what it is */
            break;
        }
        Lean found;
        LeanOutcome outcome = PyUnicode_Check(message) ? lean_record(message, &origin, statics, &found) : LEAN_UNSURE;
        if (outcome == LEAN_SURE) {
            /* the text as JSON is at most 6 bytes a character; the time at most 27 */
            Py_ssize_t most = 8 + 27 + before_text_size + 2 + 6 * found.size + before_id_size + 2 + 2 * ID_BYTES + 3;
            if (!reserve(&out, most) || !order_follow(&order, found.reboot_counter, found.sequence_no)) {
                outcome = LEAN_ERROR;
            } else {
                APPEND(&out, "{\"time\":");
                append_time(&out, found.usecs);
                append(&out, before_text, before_text_size);
                append_json_ascii(&out, found.text, found.size);
                append(&out, before_id, before_id_size);
                APPEND(&out, "\"");
                append(&out, found.id, sizeof found.id);
                APPEND(&out, "\"}}\n");
            }
        }
        Py_DECREF(message); /* found.text lived in it: used above, not after */
        if (outcome == LEAN_ERROR) {
            PyMem_Free(out.data);
            Py_DECREF(order.total);
            return NULL;
        }
        if (outcome != LEAN_SURE) {
            break;
        }
    }
    PyObject *lines = PyBytes_FromStringAndSize(out.data ? out.data : "", out.size);
    PyMem_Free(out.data);
    if (lines == NULL || !order_flush(&order)) {
        Py_XDECREF(lines);
        Py_DECREF(order.total);
        return NULL;
    }
    PyObject *result;
    if (order.known) {
        result = Py_BuildValue("(NnKKN)", lines, at, order.reboot, order.sequence, order.total);
    } else {
        result = Py_BuildValue("(NnOON)", lines, at, Py_None, Py_None, order.total);
    }
    return result;
}

static PyMethodDef methods[] = {
    {"scan", scan, METH_O,
     "scan(message) -> the 13 groups of the parser's fast-path regex, None (no match), or\n"
     "NotImplemented (not ASCII: run the regex)."},
    {"lean", lean, METH_VARARGS,
     "lean(message, cluster_id, hsm_id, statics) -> (usecs, event_id), None, or NotImplemented\n"
     "(the Python path decides): records.parse.lean_identity for clean records."},
    {"lean_lines", lean_lines, METH_VARARGS,
     "lean_lines(entries, start, cluster_id, hsm_id, statics, before_text, before_id, reboot,\n"
     "sequence) -> (lines, stop, reboot, sequence, gaps): the lean HEC lines of entries[start:stop],\n"
     "each ending in a newline, stopping at the first record `lean` is not sure of."},
    {"blake2b_128", blake2b_128, METH_O, "blake2b_128(data) -> hashlib.blake2b(data, digest_size=16).hexdigest()"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef definition = {
    PyModuleDef_HEAD_INIT, "hsmaudit.records._scan", "The parser's fast path in C (ASCII records).",
    -1, methods, NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__scan(void) { return PyModule_Create(&definition); }
