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

#define CACHE 4  /* recent (key, flow) pairs remembered by one scan() call */

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

/* A TCP packet with no payload and no SYN whose key is not in the done index:
 * fastpath._empty_segment(). The live index maps a key to its open flow, or to None when two
 * open flows share it (then the slow path decides). Not cached: the cache holds done flows. */
static int empty_segment(const unsigned char *key, Py_ssize_t key_len, PyObject *live,
                         double ts, unsigned flags)
{
    PyObject *k = PyBytes_FromStringAndSize((const char *)key, key_len);
    if (k == NULL)
        return -1;
    PyObject *flow = PyDict_GetItemWithError(live, k);  /* borrowed */
    Py_DECREF(k);
    if (flow == NULL)
        return PyErr_Occurred() ? -1 : 1;
    if (flow == Py_None || (flags & 0x05))
        return 0;  /* two open flows share the key, or a FIN/RST the open flow must see */
    return set_last_ts(flow, ts);
}

/* 1: skipped (a flow's last_ts updated, or nothing to do); 0: take the slow path;
 * -1: a Python error (set). Mirrors skippable() line by line. */
static int decide(const unsigned char *p, Py_ssize_t caplen, Py_ssize_t etype_off, Py_ssize_t l3,
                  double ts, double next_sweep, PyObject *index, const long *dns_ports,
                  Py_ssize_t n_dns, PyObject **cache, PyObject *live)
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

    /* Bulk data comes in runs of one connection, both directions interleaved (data, ACK):
     * remember the last CACHE keys looked up in this call (the index cannot change during a
     * call: setting a slot of a dataclass runs no Python code). cache[2i] is a key (bytes),
     * cache[2i+1] its flow, both strong references; slot 0 is the most recent. */
    PyObject *flow = NULL;
    for (int i = 0; i < CACHE; i++) {
        PyObject *ck = cache[2 * i];
        if (ck != NULL && PyBytes_GET_SIZE(ck) == key_len
            && memcmp(PyBytes_AS_STRING(ck), key, (size_t)key_len) == 0) {
            flow = cache[2 * i + 1];
            break;
        }
    }
    if (flow == NULL) {
        PyObject *k = PyBytes_FromStringAndSize((const char *)key, key_len);
        if (k == NULL)
            return -1;
        flow = PyDict_GetItemWithError(index, k);  /* borrowed */
        if (flow == NULL) {
            Py_DECREF(k);
            if (PyErr_Occurred())
                return -1;
            return bare ? empty_segment(key, key_len, live, ts, flags) : 0;
        }
        Py_INCREF(flow);
        Py_XDECREF(cache[2 * CACHE - 2]);
        Py_XDECREF(cache[2 * CACHE - 1]);
        memmove(cache + 2, cache, sizeof(PyObject *) * 2 * (CACHE - 1));
        cache[0] = k;
        cache[1] = flow;
    }
    if (flags & 0x05)
        return 0;  /* FIN or RST: the engine closes the done flow */
    return set_last_ts(flow, ts);
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
    PyObject *index, *ports, *live;
    if (!PyArg_ParseTuple(args, "y*nnpdnnO!dO!nO!", &view, &pos, &size, &big, &unit, &etype_off,
                          &l3, &PyDict_Type, &index, &next_sweep, &PyTuple_Type, &ports,
                          &max_snap, &PyDict_Type, &live))
        return NULL;

    PyObject *result = NULL;
    PyObject *cache[2 * CACHE] = {NULL};
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
                       dns_ports, n_dns, cache, live);
        if (r < 0)
            goto out;
        if (r == 0) {
            slow = 1;
            break;
        }
        pos += 16 + (Py_ssize_t)caplen;
        skipped++;
    }
    result = Py_BuildValue("nnO", pos, skipped, slow ? Py_True : Py_False);
out:
    for (int i = 0; i < 2 * CACHE; i++)
        Py_XDECREF(cache[i]);
    PyBuffer_Release(&view);
    return result;
}

static PyMethodDef methods[] = {
    {"scan", scan, METH_VARARGS, scan_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_fastloop",
    "The fast path's pcap record loop (see analyzer.events.builtin.fastpath).", -1, methods,
    NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__fastloop(void)
{
    if (last_ts_name == NULL) {
        last_ts_name = PyUnicode_InternFromString("last_ts");
        if (last_ts_name == NULL)
            return NULL;
    }
    return PyModule_Create(&module);
}
