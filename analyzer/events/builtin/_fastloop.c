/* The fast path's pcap record loop in C (analyzer.events.builtin._fastloop).
 *
 * scan() walks classic pcap records in a buffer and skips, exactly as
 * analyzer.events.builtin.fastpath.skippable() decides, every packet the slow path would do nothing
 * with but note its time on a done flow (TCP: the flow's last_ts is set here) or nothing at
 * all (UDP that is not DNS). It stops at the first record it does not skip -- one that must
 * take the slow path, or whose header or body is not wholly in the buffer, or whose length is
 * corrupt -- and returns its offset: the Python loop handles that record (refill, damage
 * report, slow path) and calls scan() again. Python code is the reference; this file only
 * removes the interpreter from the per-packet loop (a dozen byte compares and one dict lookup).
 *
 * Every read is bounds-checked against the buffer: the record header only when 16 bytes are
 * left, the body only when the whole record (caplen <= max_snap) is in the buffer, and every
 * header field only at offsets below caplen.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>


static PyObject *last_ts_name;  /* interned "last_ts" */

static inline uint32_t rd32(const unsigned char *b, int big)
{
    if (big)
        return ((uint32_t)b[0] << 24) | ((uint32_t)b[1] << 16) | ((uint32_t)b[2] << 8) | b[3];
    return ((uint32_t)b[3] << 24) | ((uint32_t)b[2] << 16) | ((uint32_t)b[1] << 8) | b[0];
}

/* IPv6 next headers the decoder reads on: TCP, UDP, the fragment header and the extension
 * headers of decode.IPV6_EXT_HEADERS */
static inline int ipv6_kept(unsigned nxt)
{
    return nxt == 6 || nxt == 17 || nxt == 44 || nxt == 0 || nxt == 43 || nxt == 60 || nxt == 51;
}

/* flow.last_ts = ts; 1, or -1 on a Python error (set) */
static int set_last_ts(PyObject *flow, double ts)
{
    PyObject *t = PyFloat_FromDouble(ts);
    if (t == NULL)
        return -1;
    int rc = PyObject_SetAttr(flow, last_ts_name, t);
    Py_DECREF(t);
    return rc < 0 ? -1 : 1;
}

/* ------------------------------------------------------------------------------------------
 * FlowIndex: the engine's skip_index and live_index (raw address+port bytes -> flow) as a hash
 * table scan() reads without building a bytes object or hashing it with siphash per packet.
 * For Python it is a small mapping (get, [], del, in, len, clear) with bytes keys of at most
 * KEY_MAX bytes; values are any object (None included). Open addressing, linear probing,
 * tombstones; the hash is a multiply-xorshift over 32-bit words, seeded per process from
 * os.urandom (a capture cannot be built to collide keys without knowing the seed).
 */
#define KEY_MAX 36

struct entry {
    unsigned char key[KEY_MAX];
    unsigned char len;
    unsigned char state;     /* 0 empty, 1 used, 2 deleted */
    unsigned char dirty;     /* scan() owes value.last_ts = ts */
    uint64_t hash;
    uint64_t seq;            /* scan()'s packet number of that last_ts */
    double ts;
    PyObject *value;         /* strong reference when used */
};

typedef struct {
    PyObject_HEAD
    struct entry *table;
    Py_ssize_t cap;          /* a power of two, or 0 */
    Py_ssize_t used;
    Py_ssize_t filled;       /* used + deleted */
} FlowIndex;

static PyTypeObject FlowIndexType;
static uint64_t hash_seed;

static inline uint64_t key_hash(const unsigned char *k, Py_ssize_t n)
{
    uint64_t h = hash_seed ^ ((uint64_t)n * 0x9E3779B97F4A7C15ULL);
    Py_ssize_t i = 0;
    for (; i + 4 <= n; i += 4) {
        uint32_t w;
        memcpy(&w, k + i, 4);
        h = (h ^ w) * 0xFF51AFD7ED558CCDULL;
        h ^= h >> 29;
    }
    for (; i < n; i++) {
        h = (h ^ k[i]) * 0xC4CEB9FE1A85EC53ULL;
        h ^= h >> 29;
    }
    h ^= h >> 32;
    return h;
}

/* The used entry holding key, or NULL. */
static inline struct entry *fi_find(FlowIndex *fi, const unsigned char *k, Py_ssize_t n,
                                    uint64_t h)
{
    if (fi->cap == 0)
        return NULL;
    size_t mask = (size_t)fi->cap - 1;
    for (size_t i = (size_t)h & mask;; i = (i + 1) & mask) {
        struct entry *e = &fi->table[i];
        if (e->state == 0)
            return NULL;
        if (e->state == 1 && e->hash == h && e->len == n && memcmp(e->key, k, (size_t)n) == 0)
            return e;
    }
}

static int fi_resize(FlowIndex *fi, Py_ssize_t cap)
{
    struct entry *old = fi->table;
    Py_ssize_t old_cap = fi->cap;
    struct entry *table = PyMem_Calloc((size_t)cap, sizeof(struct entry));
    if (table == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    size_t mask = (size_t)cap - 1;
    for (Py_ssize_t j = 0; j < old_cap; j++) {
        if (old[j].state != 1)
            continue;
        size_t i = (size_t)old[j].hash & mask;
        while (table[i].state != 0)
            i = (i + 1) & mask;
        table[i] = old[j];
        table[i].dirty = 0;
    }
    fi->table = table;
    fi->cap = cap;
    fi->filled = fi->used;
    PyMem_Free(old);
    return 0;
}

/* bytes key -> (pointer, length); -1 with TypeError when it cannot be a key. */
static int as_key(PyObject *key, const unsigned char **k, Py_ssize_t *n)
{
    if (!PyBytes_Check(key) || PyBytes_GET_SIZE(key) > KEY_MAX) {
        PyErr_SetString(PyExc_TypeError, "FlowIndex keys are bytes of at most 36 bytes");
        return -1;
    }
    *k = (const unsigned char *)PyBytes_AS_STRING(key);
    *n = PyBytes_GET_SIZE(key);
    return 0;
}

static int fi_set(FlowIndex *fi, PyObject *key, PyObject *value)
{
    const unsigned char *k;
    Py_ssize_t n;
    if (as_key(key, &k, &n) < 0)
        return -1;
    uint64_t h = key_hash(k, n);
    struct entry *e = fi_find(fi, k, n, h);
    if (value == NULL) {  /* del */
        if (e == NULL) {
            PyErr_SetObject(PyExc_KeyError, key);
            return -1;
        }
        PyObject *old = e->value;
        e->value = NULL;
        e->state = 2;
        fi->used--;
        Py_DECREF(old);
        return 0;
    }
    if (e != NULL) {
        PyObject *old = e->value;
        Py_INCREF(value);
        e->value = value;
        Py_DECREF(old);
        return 0;
    }
    if ((fi->filled + 1) * 4 > fi->cap * 3) {
        Py_ssize_t cap = 64;
        while (cap < (fi->used + 1) * 4)
            cap *= 2;
        if (fi_resize(fi, cap) < 0)
            return -1;
    }
    size_t mask = (size_t)fi->cap - 1;
    size_t i = (size_t)h & mask;
    while (fi->table[i].state == 1)
        i = (i + 1) & mask;
    e = &fi->table[i];
    if (e->state == 0)
        fi->filled++;
    memcpy(e->key, k, (size_t)n);
    e->len = (unsigned char)n;
    e->state = 1;
    e->dirty = 0;
    e->hash = h;
    Py_INCREF(value);
    e->value = value;
    fi->used++;
    return 0;
}

static void fi_clear_all(FlowIndex *fi)
{
    struct entry *table = fi->table;
    Py_ssize_t cap = fi->cap;
    fi->table = NULL;
    fi->cap = fi->used = fi->filled = 0;
    for (Py_ssize_t i = 0; i < cap; i++)
        if (table[i].state == 1)
            Py_DECREF(table[i].value);
    PyMem_Free(table);
}

static void fi_dealloc(FlowIndex *fi)
{
    fi_clear_all(fi);
    Py_TYPE(fi)->tp_free((PyObject *)fi);
}

static Py_ssize_t fi_len(FlowIndex *fi)
{
    return fi->used;
}

/* the entry of key, or NULL: not there, or not a possible key (no error set) */
static struct entry *fi_lookup(FlowIndex *fi, PyObject *key)
{
    if (!PyBytes_Check(key) || PyBytes_GET_SIZE(key) > KEY_MAX)
        return NULL;
    const unsigned char *k = (const unsigned char *)PyBytes_AS_STRING(key);
    Py_ssize_t n = PyBytes_GET_SIZE(key);
    return fi_find(fi, k, n, key_hash(k, n));
}

static PyObject *fi_subscript(FlowIndex *fi, PyObject *key)
{
    struct entry *e = fi_lookup(fi, key);
    if (e == NULL) {
        PyErr_SetObject(PyExc_KeyError, key);
        return NULL;
    }
    Py_INCREF(e->value);
    return e->value;
}

static int fi_ass_subscript(FlowIndex *fi, PyObject *key, PyObject *value)
{
    return fi_set(fi, key, value);
}

static int fi_contains(FlowIndex *fi, PyObject *key)
{
    return fi_lookup(fi, key) != NULL;
}

static PyObject *fi_get(FlowIndex *fi, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs < 1 || nargs > 2) {
        PyErr_SetString(PyExc_TypeError, "get(key, default=None)");
        return NULL;
    }
    struct entry *e = fi_lookup(fi, args[0]);
    PyObject *out = e != NULL ? e->value : (nargs == 2 ? args[1] : Py_None);
    Py_INCREF(out);
    return out;
}

static PyObject *fi_clear(FlowIndex *fi, PyObject *Py_UNUSED(ignored))
{
    fi_clear_all(fi);
    Py_RETURN_NONE;
}

static PyObject *fi_items(FlowIndex *fi, PyObject *Py_UNUSED(ignored))
{
    PyObject *out = PyList_New(0);
    if (out == NULL)
        return NULL;
    for (Py_ssize_t i = 0; i < fi->cap; i++) {
        struct entry *e = &fi->table[i];
        if (e->state != 1)
            continue;
        PyObject *pair = Py_BuildValue("(y#O)", (const char *)e->key, (Py_ssize_t)e->len, e->value);
        if (pair == NULL || PyList_Append(out, pair) < 0) {
            Py_XDECREF(pair);
            Py_DECREF(out);
            return NULL;
        }
        Py_DECREF(pair);
    }
    return out;
}

static PyMappingMethods fi_as_mapping = {
    (lenfunc)fi_len, (binaryfunc)fi_subscript, (objobjargproc)fi_ass_subscript,
};
static PySequenceMethods fi_as_sequence = {
    .sq_contains = (objobjproc)fi_contains,
};
static PyMethodDef fi_methods[] = {
    {"get", (PyCFunction)(void (*)(void))fi_get, METH_FASTCALL, "get(key, default=None)"},
    {"clear", (PyCFunction)fi_clear, METH_NOARGS, "Remove every key."},
    {"items", (PyCFunction)fi_items, METH_NOARGS, "A list of (key, value) pairs."},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject FlowIndexType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "analyzer.source._fastloop.FlowIndex",
    .tp_basicsize = sizeof(FlowIndex),
    .tp_dealloc = (destructor)fi_dealloc,
    .tp_as_mapping = &fi_as_mapping,
    .tp_as_sequence = &fi_as_sequence,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "Raw flow keys (bytes) -> flows, for the engine's skip and live indexes.",
    .tp_methods = fi_methods,
    .tp_new = PyType_GenericNew,
};

/* scan()'s pending last_ts writes: the entries it skipped packets of, written back (in packet
 * order, so a flow with two keys gets its last packet's time) before it returns. */
#define PENDING 64
struct pending {
    struct entry *e[PENDING];
    int n;
    uint64_t seq;
};

/* Write every pending last_ts; 0, or -1 on a Python error (set). */
static int flush(struct pending *pd)
{
    /* insertion sort by packet number: at most PENDING entries */
    for (int i = 1; i < pd->n; i++) {
        struct entry *x = pd->e[i];
        int j = i - 1;
        while (j >= 0 && pd->e[j]->seq > x->seq) {
            pd->e[j + 1] = pd->e[j];
            j--;
        }
        pd->e[j + 1] = x;
    }
    int rc = 0;
    for (int i = 0; i < pd->n; i++) {
        struct entry *e = pd->e[i];
        e->dirty = 0;
        if (rc == 0 && set_last_ts(e->value, e->ts) < 0)
            rc = -1;
    }
    pd->n = 0;
    return rc;
}

/* value.last_ts = ts, deferred; 1, or -1 on a Python error (set). */
static inline int note_ts(struct pending *pd, struct entry *e, double ts)
{
    e->ts = ts;
    e->seq = pd->seq;
    if (!e->dirty) {
        if (pd->n == PENDING && flush(pd) < 0)
            return -1;
        e->dirty = 1;
        pd->e[pd->n++] = e;
    }
    return 1;
}

/* A TCP packet with no payload and no SYN whose key is not in the done index:
 * fastpath._empty_segment(). The live index maps a key to its open flow, or to None when two
 * open flows share it (then the slow path decides). */
static int empty_segment(struct entry *e, struct pending *pd, double ts, unsigned flags)
{
    if (e == NULL)
        return 1;
    if (e->value == Py_None || (flags & 0x05))
        return 0;  /* two open flows share the key, or a FIN/RST the open flow must see */
    return note_ts(pd, e, ts);
}

/* 1: skipped (a flow's last_ts updated, or nothing to do); 0: take the slow path;
 * -1: a Python error (set). Mirrors skippable() line by line. */
static int decide(const unsigned char *p, Py_ssize_t caplen, Py_ssize_t etype_off, Py_ssize_t l3,
                  double ts, double next_sweep, FlowIndex *index, const long *dns_ports,
                  Py_ssize_t n_dns, struct pending *pd, FlowIndex *live)
{
    unsigned flags = 0;  /* TCP flags */
    int bare = 0;  /* a TCP packet without payload (SYN already refused) */
    if (caplen < l3 + 28)
        return 0;
    const unsigned char *d = p + l3;
    unsigned vhl = d[0];
    unsigned version = vhl >> 4;
    const unsigned char *key;
    Py_ssize_t key_len;
    if (etype_off >= 0) {
        /* the ethertype, not the version nibble, decides how the decoder reads the header */
        unsigned etype = ((unsigned)p[etype_off] << 8) | p[etype_off + 1];
        if (etype == 0x0800)
            version = 4;
        else if (etype == 0x86DD)
            version = 6;
        else  /* VLAN tags are the decoder's; any other ethertype (ARP, LLDP...) it drops */
            return !(etype == 0x8100 || etype == 0x88A8 || etype == 0x9100 || etype == 0x9200);
    }
    else if (version != 4 && version != 6)
        return 1;  /* raw IP link type, not IP: the decoder drops it */
    if (version == 4) {
        if (vhl != 0x45)
            return 0;
        if ((d[6] & 0x3F) || d[7])
            return 0;
        unsigned proto = d[9];
        if (proto == 6) {
            unsigned total = ((unsigned)d[2] << 8) | d[3];
            flags = d[33];
            if (caplen < l3 + 40 || total < 40 || d[32] < 0x50 || (flags & 0x02) || ts >= next_sweep)
                return 0;
            key = d + 12;
            key_len = 12;
            bare = total == 20 + (unsigned)(d[32] >> 4) * 4;
        }
        else if (proto == 17) {
            long sport = ((long)d[20] << 8) | d[21];
            long dport = ((long)d[22] << 8) | d[23];
            for (Py_ssize_t i = 0; i < n_dns; i++)
                if (dns_ports[i] == sport || dns_ports[i] == dport)
                    return 0;
            return 1;
        }
        else
            return 1;  /* ICMP and other protocols: the decoder drops them */
    }
    else if (!ipv6_kept(d[6]))
        return 1;  /* ICMPv6 and other protocols: the decoder drops them */
    else if (d[6] == 6) {
        unsigned plen = ((unsigned)d[4] << 8) | d[5];
        flags = d[53];
        if (caplen < l3 + 60 || (plen > 0 && plen < 20) || d[52] < 0x50 || (flags & 0x02)
            || ts >= next_sweep)
            return 0;
        key = d + 8;
        key_len = 36;
        bare = plen == (unsigned)(d[52] >> 4) * 4;
    }
    else
        return 0;

    uint64_t h = key_hash(key, key_len);
    struct entry *e = fi_find(index, key, key_len, h);
    if (e == NULL)
        return bare ? empty_segment(fi_find(live, key, key_len, h), pd, ts, flags) : 0;
    if (flags & 0x05)
        return 0;  /* FIN or RST: the engine closes the done flow */
    return note_ts(pd, e, ts);
}

PyDoc_STRVAR(scan_doc,
"scan(buf, pos, size, big_endian, unit, etype_off, l3, index, next_sweep, dns_ports, max_snap,\n"
"     live_index)\n"
"-> (pos, skipped, slow)\n\n"
"Skip pcap records from offset pos while fastpath.skippable() would skip them; return the\n"
"offset of the first record not skipped (or size), the number of records skipped, and True\n"
"when that record is whole and valid and must take the slow path (False: refill or damage).");

static PyObject *scan(PyObject *self, PyObject *args)
{
    Py_buffer view;
    Py_ssize_t pos, size, etype_off, l3, max_snap;
    int big;
    double unit, next_sweep;
    PyObject *ports;
    FlowIndex *index, *live;
    if (!PyArg_ParseTuple(args, "y*nnpdnnO!dO!nO!", &view, &pos, &size, &big, &unit, &etype_off,
                          &l3, &FlowIndexType, &index, &next_sweep, &PyTuple_Type, &ports,
                          &max_snap, &FlowIndexType, &live))
        return NULL;

    PyObject *result = NULL;
    struct pending pd;
    pd.n = 0;
    pd.seq = 0;
    long dns_ports[8];
    Py_ssize_t n_dns = PyTuple_GET_SIZE(ports);
    if (n_dns > 8 || pos < 0 || size > view.len || etype_off < -1 || l3 < 0 || l3 > 64
        || etype_off + 2 > l3 + 28) {
        PyErr_SetString(PyExc_ValueError, "scan: bad arguments");
        goto out;
    }
    for (Py_ssize_t i = 0; i < n_dns; i++) {
        dns_ports[i] = PyLong_AsLong(PyTuple_GET_ITEM(ports, i));
        if (dns_ports[i] == -1 && PyErr_Occurred())
            goto out;
    }

    const unsigned char *buf = (const unsigned char *)view.buf;
    Py_ssize_t skipped = 0;
    int slow = 0;  /* stopped at a whole, valid record that takes the slow path */
    while (pos <= size - 16) {
        const unsigned char *h = buf + pos;
        uint32_t sec = rd32(h, big), frac = rd32(h + 4, big), caplen = rd32(h + 8, big);
        if ((uint64_t)caplen > (uint64_t)max_snap || (uint64_t)caplen > (uint64_t)(size - pos - 16))
            break;  /* corrupt or incomplete: Python refills or reports it */
        /* as Python computes sec + frac * unit (no fused multiply-add: see setup flags) */
        double ts = (double)sec + (double)frac * unit;
        int r = decide(h + 16, (Py_ssize_t)caplen, etype_off, l3, ts, next_sweep, index,
                       dns_ports, n_dns, &pd, live);
        if (r < 0)
            goto out;
        if (r == 0) {
            slow = 1;
            break;
        }
        pos += 16 + (Py_ssize_t)caplen;
        skipped++;
        pd.seq++;
    }
    if (flush(&pd) == 0)
        result = Py_BuildValue("nnO", pos, skipped, slow ? Py_True : Py_False);
out:
    for (int i = 0; i < pd.n; i++)  /* after an error: the rest is not written */
        pd.e[i]->dirty = 0;
    PyBuffer_Release(&view);
    return result;
}

/* ------------------------------------------------------------------------------------------
 * MappedWindow: one mmap window of a capture file, for the fast path's record loop. Python's
 * own mmap holds the GIL while it maps, faults pages in (MAP_POPULATE) and unmaps; here the
 * pages are faulted in, and the window is unmapped, on threads of the extension's own that
 * never take the GIL, so the main thread scans meanwhile (faulting in and unmapping a 2 GB
 * capture's windows took about 0.18 s of the main thread). A Python helper thread would not do:
 * it needs the GIL to start and to report back, and scan() holds the GIL for a whole window.
 *
 * To Python it is a read-only buffer with len(), w[i] and w[a:b] (bytes), like the mmap it
 * replaces; wait() returns once the pages are in, close() hands the unmapping to a thread
 * (refused while a buffer export is alive, as mmap.close() refuses).
 */
typedef struct {
    PyObject_HEAD
    unsigned char *data;     /* NULL once closed */
    Py_ssize_t len;
    Py_ssize_t exports;
    pthread_t thread;        /* faulting the pages in */
    pid_t owner;             /* a forked child has the object but not the thread */
    int running;
} MappedWindow;

static PyTypeObject MappedWindowType;

/* madvise(MADV_POPULATE_READ) (Linux 5.14) maps the pages in one call; on a kernel without it
 * (EINVAL), one read per page (fault-around maps several pages a fault). Any other error
 * (EFAULT: the file shrank) is left for the scan to meet, as it would without this. */
static void *window_populate(void *arg)
{
    MappedWindow *w = (MappedWindow *)arg;
    int done = 0;
#if defined(MADV_POPULATE_READ)
    done = madvise(w->data, (size_t)w->len, MADV_POPULATE_READ) == 0 || errno != EINVAL;
#endif
    if (!done) {
        const volatile unsigned char *b = w->data;
        unsigned char sink = 0;
        for (Py_ssize_t i = 0; i < w->len; i += 4096)
            sink ^= b[i];
        (void)sink;
    }
    return NULL;
}

struct unmap_job {
    void *data;
    size_t len;
};

static void *window_unmap(void *arg)
{
    struct unmap_job *job = (struct unmap_job *)arg;
    munmap(job->data, job->len);
    free(job);
    return NULL;
}

static void window_join(MappedWindow *w)
{
    if (w->running && w->owner == getpid()) {
        Py_BEGIN_ALLOW_THREADS
        pthread_join(w->thread, NULL);
        Py_END_ALLOW_THREADS
    }
    w->running = 0;
}

static PyObject *window_new(PyTypeObject *type, PyObject *args, PyObject *kwds)
{
    int fd;
    long long offset;
    Py_ssize_t length;
    if (!PyArg_ParseTuple(args, "iLn:MappedWindow", &fd, &offset, &length))
        return NULL;
    if (length <= 0 || offset < 0) {
        PyErr_SetString(PyExc_ValueError, "MappedWindow: length must be > 0 and offset >= 0");
        return NULL;
    }
    MappedWindow *w = (MappedWindow *)type->tp_alloc(type, 0);
    if (w == NULL)
        return NULL;
    void *data;
    Py_BEGIN_ALLOW_THREADS
    data = mmap(NULL, (size_t)length, PROT_READ, MAP_SHARED, fd, (off_t)offset);
    Py_END_ALLOW_THREADS
    if (data == MAP_FAILED) {
        Py_DECREF(w);
        return PyErr_SetFromErrno(PyExc_OSError);
    }
    w->data = (unsigned char *)data;
    w->len = length;
    w->owner = getpid();
#ifdef MADV_SEQUENTIAL
    madvise(data, (size_t)length, MADV_SEQUENTIAL);
#endif
    if (pthread_create(&w->thread, NULL, window_populate, w) == 0)
        w->running = 1;
    /* no thread: nothing is lost, the scan faults the pages in itself */
    return (PyObject *)w;
}

static PyObject *window_wait(MappedWindow *w, PyObject *Py_UNUSED(ignored))
{
    window_join(w);
    Py_RETURN_NONE;
}

static PyObject *window_close(MappedWindow *w, PyObject *Py_UNUSED(ignored))
{
    if (w->exports > 0) {
        PyErr_SetString(PyExc_BufferError, "cannot close a window with a buffer in use");
        return NULL;
    }
    window_join(w);  /* the populate thread reads the pages */
    if (w->data != NULL) {
        struct unmap_job *job = malloc(sizeof *job);
        pthread_t t;
        pthread_attr_t attr;
        int started = 0;
        if (job != NULL && pthread_attr_init(&attr) == 0) {
            job->data = w->data;
            job->len = (size_t)w->len;
            pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
            started = pthread_create(&t, &attr, window_unmap, job) == 0;
            pthread_attr_destroy(&attr);
        }
        if (!started) {
            free(job);
            munmap(w->data, (size_t)w->len);
        }
        w->data = NULL;
    }
    Py_RETURN_NONE;
}

static void window_dealloc(MappedWindow *w)
{
    window_join(w);
    if (w->data != NULL)
        munmap(w->data, (size_t)w->len);
    Py_TYPE(w)->tp_free((PyObject *)w);
}

static int window_getbuffer(MappedWindow *w, Py_buffer *view, int flags)
{
    if (w->data == NULL) {
        PyErr_SetString(PyExc_ValueError, "window closed");
        return -1;
    }
    if (PyBuffer_FillInfo(view, (PyObject *)w, w->data, w->len, 1, flags) < 0)
        return -1;
    w->exports++;
    return 0;
}

static void window_releasebuffer(MappedWindow *w, Py_buffer *view)
{
    w->exports--;
}

static Py_ssize_t window_length(MappedWindow *w)
{
    return w->data == NULL ? 0 : w->len;
}

static PyObject *window_subscript(MappedWindow *w, PyObject *item)
{
    if (w->data == NULL) {
        PyErr_SetString(PyExc_ValueError, "window closed");
        return NULL;
    }
    if (PyIndex_Check(item)) {
        Py_ssize_t i = PyNumber_AsSsize_t(item, PyExc_IndexError);
        if (i == -1 && PyErr_Occurred())
            return NULL;
        if (i < 0)
            i += w->len;
        if (i < 0 || i >= w->len) {
            PyErr_SetString(PyExc_IndexError, "window index out of range");
            return NULL;
        }
        return PyLong_FromLong(w->data[i]);
    }
    if (PySlice_Check(item)) {
        Py_ssize_t start, stop, step;
        if (PySlice_Unpack(item, &start, &stop, &step) < 0)
            return NULL;
        Py_ssize_t n = PySlice_AdjustIndices(w->len, &start, &stop, step);
        if (step == 1)
            return PyBytes_FromStringAndSize((const char *)w->data + start, n);
        PyObject *out = PyBytes_FromStringAndSize(NULL, n);
        if (out == NULL)
            return NULL;
        char *o = PyBytes_AS_STRING(out);
        for (Py_ssize_t k = 0, i = start; k < n; k++, i += step)
            o[k] = (char)w->data[i];
        return out;
    }
    PyErr_SetString(PyExc_TypeError, "window indices must be integers or slices");
    return NULL;
}

static PyMappingMethods window_as_mapping = {
    .mp_length = (lenfunc)window_length,
    .mp_subscript = (binaryfunc)window_subscript,
};

static PyBufferProcs window_as_buffer = {
    .bf_getbuffer = (getbufferproc)window_getbuffer,
    .bf_releasebuffer = (releasebufferproc)window_releasebuffer,
};

static PyMethodDef window_methods[] = {
    {"wait", (PyCFunction)window_wait, METH_NOARGS, "Return once the pages are in."},
    {"close", (PyCFunction)window_close, METH_NOARGS,
     "Unmap the window (on a thread of its own)."},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject MappedWindowType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "analyzer.events.builtin._fastloop.MappedWindow",
    .tp_basicsize = sizeof(MappedWindow),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "MappedWindow(fd, offset, length): a read-only mmap window whose pages are "
              "faulted in, and which is unmapped, on threads that never take the GIL.",
    .tp_new = window_new,
    .tp_dealloc = (destructor)window_dealloc,
    .tp_methods = window_methods,
    .tp_as_mapping = &window_as_mapping,
    .tp_as_buffer = &window_as_buffer,
};

static PyMethodDef methods[] = {
    {"scan", scan, METH_VARARGS, scan_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_fastloop",
    "The fast path's pcap record loop (see analyzer.events.builtin.fastpath).", -1, methods,
    NULL, NULL, NULL, NULL,
};

/* hash_seed from os.urandom(8) */
static int seed_hash(void)
{
    PyObject *os = PyImport_ImportModule("os");
    if (os == NULL)
        return -1;
    PyObject *b = PyObject_CallMethod(os, "urandom", "n", (Py_ssize_t)8);
    Py_DECREF(os);
    if (b == NULL)
        return -1;
    if (!PyBytes_Check(b) || PyBytes_GET_SIZE(b) != 8) {
        Py_DECREF(b);
        PyErr_SetString(PyExc_RuntimeError, "os.urandom(8) gave no 8 bytes");
        return -1;
    }
    memcpy(&hash_seed, PyBytes_AS_STRING(b), 8);
    Py_DECREF(b);
    return 0;
}

PyMODINIT_FUNC PyInit__fastloop(void)
{
    if (last_ts_name == NULL) {
        last_ts_name = PyUnicode_InternFromString("last_ts");
        if (last_ts_name == NULL)
            return NULL;
    }
    if (hash_seed == 0 && seed_hash() < 0)
        return NULL;
    if (PyType_Ready(&FlowIndexType) < 0 || PyType_Ready(&MappedWindowType) < 0)
        return NULL;
    PyObject *m = PyModule_Create(&module);
    if (m == NULL)
        return NULL;
    Py_INCREF(&FlowIndexType);
    if (PyModule_AddObject(m, "FlowIndex", (PyObject *)&FlowIndexType) < 0) {
        Py_DECREF(&FlowIndexType);
        Py_DECREF(m);
        return NULL;
    }
    Py_INCREF(&MappedWindowType);
    if (PyModule_AddObject(m, "MappedWindow", (PyObject *)&MappedWindowType) < 0) {
        Py_DECREF(&MappedWindowType);
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
