"""The pcap fast path's skip decision for a whole batch of records at once, with numpy.

``fastpath._run_pcap`` decides packet by packet; here one tight loop only walks the record
headers to find where each record starts (that chain is sequential), and numpy then gathers the
few header bytes the decision needs at those offsets for every record of the batch (tens of
thousands) and computes the decision for all of them together: IPv4 without options or
fragmentation carrying TCP without SYN/FIN/RST whose address+port key is in the engine's
``skip_index`` (as it was when the batch started), or UDP that is not DNS. Every other record
goes to the slow path, in capture order, exactly as in the packet-by-packet loop.

Why it stays exact although the index changes while the batch is fed to the engine:

- a flow that becomes ``done`` during the batch is not in the snapshot: its packets take the
  slow path, which gives the same result (only slower);
- a flow that leaves the index during the batch (closed by FIN/RST, expired, evicted: the
  engine counts these in ``skip_removed``) stops being skipped from that packet on: its later
  packets in the batch take the slow path;
- the only thing skipping a packet changes is its flow's ``last_ts``, and the engine reads
  ``last_ts`` only in its idle-flow scan. So the skipped packets' times are written back before
  any packet that may start a scan, and at the end of the batch, each flow getting the time of
  its last skipped packet unless a later packet of the same flow took the slow path (it set
  the time itself). A packet whose flow key cannot be read here (a VLAN tag, IP options, a
  fragment, another link layer...) might belong to any flow: the times are written back before
  it too.
"""

from __future__ import annotations

import heapq
import mmap
import struct
from collections.abc import Callable
from typing import Any

import numpy as np

from ..engine import DNS_PORTS, Engine
from .capture_file import MAX_SNAP, RawFrame
from .decode import DLT_EN10MB, VLAN_TPIDS

BATCH_BYTES = 2 << 20  # bytes of records per batch (a few thousand to tens of thousands)
_MIX = np.uint64(0x9E3779B97F4A7C15)  # spreads the 12-byte key into one 64-bit sort key
_DNS = np.array(sorted(DNS_PORTS), dtype=np.uint32)
# ethertypes the decoder reads as IP: IPv4, IPv6, then (Ethernet only) VLAN tags in front of them
_IP_ETHERTYPES = np.array([0x0800, 0x86DD, *sorted(VLAN_TPIDS)], dtype=np.uint32)
_IP_VERSIONS = np.array([4, 6], dtype=np.uint8)


class Batcher:
    """Batch reader for one pcap file whose link type puts IPv4 at a fixed offset."""

    def __init__(self, endian: str, unit: float, linktype: int, layout: tuple[int, int],
                 engine: Engine, slow: Callable[[RawFrame], None]) -> None:
        self.endian = endian
        self.unit = unit
        self.linktype = linktype
        self.etype_off, self.l3 = layout
        self.engine = engine
        self.slow = slow
        self.caplen_at = struct.Struct(endian + "I").unpack_from
        self.header_at = struct.Struct(endian + "IIII").unpack_from
        # bytes a record needs in the buffer for every gather below (the TCP flags byte is last)
        self.reach = 16 + self.l3 + 34
        self.min_tcp = self.l3 + 40
        self.ip_ethertypes = _IP_ETHERTYPES if linktype == DLT_EN10MB else _IP_ETHERTYPES[:2]

    def run(self, buf: bytes | mmap.mmap, pos: int, size: int, number: int,
            base: int, state: Any) -> tuple[int, int]:
        """Process the complete records from ``pos`` (up to about BATCH_BYTES) and return the
        new (pos, number). Stops early, without error, at a record it cannot take (near the end
        of the buffer, a corrupt length): the caller's packet loop handles that one."""
        safe = size - self.reach
        stop = min(safe, pos + BATCH_BYTES)
        caplen_at = self.caplen_at
        offsets: list[int] = []
        add = offsets.append
        p = pos
        while p <= stop:
            c = caplen_at(buf, p + 8)[0]
            end = p + 16 + c
            if c > MAX_SNAP or end > size:
                break
            add(p)
            p = end
        if len(offsets) < 64:
            return pos, number  # not worth a batch: the packet loop takes these
        self._decide_and_feed(buf, offsets, p, number, base, state)
        return p, number + len(offsets)

    def _decide_and_feed(self, buf: bytes | mmap.mmap, offsets: list[int], last_end: int,
                         number: int, base: int, state: Any) -> None:
        e = self.endian
        o = np.array(offsets, dtype=np.int64)
        n = len(o)
        blen = len(buf)
        # Views of the buffer with a value at every byte offset (stride 1), so one fancy index
        # gathers a field of every record at once.
        u4 = np.ndarray((blen - 3,), dtype=e + "u4", buffer=buf, strides=(1,))
        b1 = np.ndarray((blen,), dtype=np.uint8, buffer=buf)
        n8 = np.ndarray((blen - 7,), dtype=">u8", buffer=buf, strides=(1,))
        n4 = np.ndarray((blen - 3,), dtype=">u4", buffer=buf, strides=(1,))
        sec = u4[o]
        caplen = u4[o + 8]
        d = o + (16 + self.l3)
        if self.etype_off >= 0:
            # the ethertype, not the version nibble, decides how the decoder reads the header
            etype = n4[o + (16 + self.etype_off)] >> 16
            tag_ok = (etype == 0x0800) & (b1[d] == 0x45)
        else:
            tag_ok = b1[d] == 0x45
        head = n8[d]  # version/IHL, TOS, total length, id, fragment field
        frag_ok = (head & 0x3FFF) == 0
        proto = b1[d + 9]
        ports = n4[d + 20]
        ipv4 = tag_ok & frag_ok
        keyed = ipv4 & (proto == 6) & (caplen >= self.min_tcp)
        limit = self.engine.next_sweep - 1.0
        cand = (keyed & ((b1[d + 33] & 7) == 0) & (b1[d + 32] >= 0x50)
                & (((head >> 32) & 0xFFFF) >= 40) & (sec < limit))
        udp_skip = (ipv4 & (proto == 17) & (caplen >= self.l3 + 28)
                    & ~np.isin(ports >> 16, _DNS) & ~np.isin(ports & 0xFFFF, _DNS))
        # a packet that may be IP but whose flow key is not read here may touch any flow (see
        # the module doc); ARP and other link-layer traffic cannot
        if self.etype_off >= 0:
            maybe_ip = np.isin(etype, self.ip_ethertypes)
        else:
            maybe_ip = np.isin(b1[d] >> 4, _IP_VERSIONS)
        unknown = maybe_ip & ~(ipv4 & ((proto != 6) | keyed))

        kidx = np.flatnonzero(keyed)
        addrs = n8[d[kidx] + 12]
        kports = ports[kidx]
        h = addrs * _MIX + kports
        uniq, first, inv = np.unique(h, return_index=True, return_inverse=True)
        # a 64-bit collision between two keys (never seen, but possible): those packets go slow
        same = (addrs == addrs[first][inv]) & (kports == kports[first][inv])
        ids = np.full(n, -1, dtype=np.int64)
        ids[kidx] = np.where(same, inv, -1)
        index = self.engine.skip_index
        assert index is not None
        keys = [a.to_bytes(8, "big") + b.to_bytes(4, "big")
                for a, b in zip(addrs[first].tolist(), kports[first].tolist(), strict=True)]
        flows = [index.get(k) for k in keys]
        in_index = np.array([f is not None for f in flows] + [False], dtype=bool)
        skip_tcp = cand & in_index[ids]  # ids -1 -> the False sentinel
        del u4, b1, n8, n4  # release the buffer exports: the caller may unmap it

        slow_at = np.flatnonzero(~(skip_tcp | udp_skip)).tolist()
        if not slow_at:
            self._write_times(skip_tcp, ids, flows, 0, n, {}, sec, o, buf)
            state.bytes_read = base + last_end
            return
        order: np.ndarray | None = None  # positions grouped by key id (built on first need)
        starts: np.ndarray | None = None
        unknown_l = unknown.tolist()
        ids_l = ids.tolist()
        engine, slow, unit, linktype = self.engine, self.slow, self.unit, self.linktype
        header_at = self.header_at
        touched: dict[int, int] = {}  # id(flow) -> last slow position of a packet of that flow
        dead = [False] * len(flows)
        replaced: list[Any] = []  # flows no longer in ``flows``: kept alive, their id() is a key
        removed = engine.skip_removed
        indexed = len(index)
        key_ids: dict[bytes, int] | None = None
        written = 0  # skipped packets before this position have their times written back
        later: list[int] = []  # positions turned slow because their flow left the index
        k = 0
        total = len(slow_at)
        while True:
            if later and (k >= total or later[0] < slow_at[k]):
                j = heapq.heappop(later)
            elif k < total:
                j = slow_at[k]
                k += 1
            else:
                break
            if skip_tcp[j]:
                continue  # its flow became done earlier in the batch
            p = offsets[j]
            s, frac, cap, wire = header_at(buf, p)
            ts = s + frac * unit
            if ts >= engine.next_sweep or unknown_l[j]:
                if written < j:
                    self._write_times(skip_tcp, ids, flows, written, j, touched, sec, o, buf)
                    written = j
            else:
                u = ids_l[j]
                if u >= 0 and flows[u] is not None:
                    touched[id(flows[u])] = j
            state.bytes_read = base + p + 16 + cap
            slow(RawFrame(number + j + 1, ts, linktype, buf[p + 16:p + 16 + cap], wire))
            if engine.skip_removed != removed:
                # usually the packet's own flow closed (FIN/RST): check its two keys first
                u = ids_l[j]
                own = flows[u] if u >= 0 else None
                scan: Any = range(len(flows))
                if (engine.skip_removed == removed + 1 and own is not None and not dead[u]
                        and own.wire_keys is not None and index.get(keys[u]) is not own):
                    if key_ids is None:
                        key_ids = {key: i for i, key in enumerate(keys)}
                    scan = [v for v in (key_ids.get(k) for k in own.wire_keys) if v is not None]
                removed = engine.skip_removed
                for u in scan:
                    flow = flows[u]
                    if flow is None or dead[u] or index.get(keys[u]) is flow:
                        continue
                    dead[u] = True
                    if order is None:
                        order = np.argsort(ids, kind="stable")
                        starts = np.searchsorted(ids[order], np.arange(len(flows) + 1))
                    assert starts is not None
                    group = order[starts[u]:starts[u + 1]]
                    after = group[(group > j) & skip_tcp[group]]
                    if len(after):
                        skip_tcp[after] = False
                        for q in after.tolist():
                            heapq.heappush(later, q)
            if len(index) != indexed:
                indexed = len(index)
                # the packet's own flow may just have become done: skip its later packets
                u = ids_l[j]
                flow = index.get(keys[u]) if u >= 0 else None
                if flow is not None and flow is not flows[u] and flow.wire_keys is not None:
                    if key_ids is None:
                        key_ids = {key: i for i, key in enumerate(keys)}
                    if order is None:
                        order = np.argsort(ids, kind="stable")
                        starts = np.searchsorted(ids[order], np.arange(len(flows) + 1))
                    assert starts is not None
                    for key in flow.wire_keys:
                        v = key_ids.get(key)
                        if v is None:
                            continue
                        group = order[starts[v]:starts[v + 1]]
                        if flows[v] is not None:
                            # a closed flow's unwritten times must not land on the new one
                            replaced.append(flows[v])
                            skip_tcp[group[group <= j]] = False
                        flows[v] = flow
                        dead[v] = False
                        skip_tcp[group[(group > j) & cand[group]]] = True
        if written < n:
            self._write_times(skip_tcp, ids, flows, written, n, touched, sec, o, buf)
        state.bytes_read = base + last_end

    def _write_times(self, skip_tcp: np.ndarray, ids: np.ndarray, flows: list[Any], lo: int,
                     hi: int, touched: dict[int, int], sec: np.ndarray, o: np.ndarray,
                     buf: bytes | mmap.mmap) -> None:
        """Give each flow the time of its last skipped packet in [lo, hi), unless a later packet
        of that flow went through the slow path (which set the time itself)."""
        pos = np.flatnonzero(skip_tcp[lo:hi]) + lo
        if not len(pos):
            return
        last = np.full(len(flows), -1, dtype=np.int64)
        np.maximum.at(last, ids[pos], pos)
        best: dict[int, tuple[int, Any]] = {}
        lasts = last.tolist()
        for u in np.flatnonzero(last >= 0).tolist():
            flow = flows[u]
            j = lasts[u]
            key = id(flow)
            if j > touched.get(key, -1) and j > best.get(key, (-1, None))[0]:
                best[key] = (j, flow)
        header_at, unit = self.header_at, self.unit
        for j, flow in best.values():
            s, frac, _cap, _wire = header_at(buf, int(o[j]))
            flow.last_ts = s + frac * unit
