#!/usr/bin/env python3
"""Writes the paper's Section 4 from a study's summary.json (the report's tables, typed;
report.md only for a study written before summary.json existed): every number is copied
from a report cell and marked with the cell it came from (checked by tests/docs/paper); every
claim of a difference is made only where the cell's interval excludes 1 (or 0), and
marked. Also compares two runs' verdicts.

Usage (from the repository root), after `cargo run --release -- study --out papers/results`
and with an earlier run kept in papers/results-earlier:

    python3 papers/generate-results.py papers/results/report.md papers/results-earlier/report.md /tmp/sec4.md

writes Sections 4 and 5 to /tmp/sec4.md and the abstract to /tmp/sec4.md.abstract, which
replace the paper's "## Abstract" and "## 4. Results" .. "## 6." parts; then
`cargo test --release --test docs paper` checks every marker."""
import re, sys, json

def parse(path):
    """heading -> list of tables; table = (headers, rows: list of cell lists)"""
    sections = {}
    cur = None
    lines = open(path).read().split('\n')
    i = 0
    while i < len(lines):
        l = lines[i]
        m = re.match(r'^#+ (.*)$', l)
        if m:
            cur = m.group(1).strip(); sections.setdefault(cur, []); i += 1; continue
        if l.startswith('|') and i + 1 < len(lines) and lines[i+1].startswith('|---') and cur is not None:
            headers = [c.strip() for c in l.strip().strip('|').split('|')]
            rows = []
            i += 2
            while i < len(lines) and lines[i].startswith('|'):
                rows.append([c.strip() for c in lines[i].strip().strip('|').split('|')])
                i += 1
            sections[cur].append((headers, rows))
            continue
        i += 1
    return sections

def fmt(v):
    """A number as the report prints it (study::format::fmt)."""
    a = abs(v)
    if a == 0: return '0'
    if a >= 100: return f'{v:.0f}'
    if a >= 10: return f'{v:.1f}'
    if a >= 1: return f'{v:.2f}'
    return f'{v:.3f}'

def render(c):
    """A summary.json cell as report.md prints it (study::summary::Cell::render)."""
    k = c['kind']
    if k == 'text': return c['text'].replace('|', '/').replace('\n', ' ')
    if k == 'number': return fmt(c['value'])
    if k == 'count':
        v = c['value']
        return f'{v:.0f}' if v == int(v) else f'{v:.1f}'
    if k == 'percent': return f"{c['value'] * 100:.1f}%"
    if k == 'estimate': return f"{fmt(c['estimate'])} [{fmt(c['lo'])}–{fmt(c['hi'])}]"
    if k == 'ratio': return f"{fmt(c['estimate'])}× [{fmt(c['lo'])}–{fmt(c['hi'])}]"
    return '–'

def load(path):
    """heading -> tables, from summary.json beside `path` (a report.md) when there is one."""
    import os
    summary = os.path.join(os.path.dirname(path), 'summary.json')
    if not os.path.exists(summary):
        return parse(path)
    sections = {}
    for t in json.load(open(summary))['tables']:
        rows = [[render(c) for c in r] for r in t['rows']]
        sections.setdefault(t['heading'], []).append((t['header'], rows))
    return sections

def interval(cell):
    m = re.search(r'\[(-?[\d.]+)–(-?[\d.]+)\]', cell)
    return (float(m.group(1)), float(m.group(2))) if m else None

class Report:
    def __init__(self, path):
        self.s = load(path)
    def table(self, heading, n=1):
        return self.s[heading][n-1]
    def cell(self, heading, row, col, n=1):
        h, rows = self.table(heading, n)
        if isinstance(col, int):
            k = col - 1
        elif col.startswith('#'):
            k = int(col[1:]) - 1
        else:
            k = h.index(col)
        for r in rows:
            if r[0] == row:
                return r[k]
        return None
    def q(self, heading, row, col, n=1, what=None):
        """A quoted cell: `text`<!-- report: ... -->"""
        c = self.cell(heading, row, col, n)
        if c is None or c in ('', '–', '-'):
            return '–'
        text = c if what is None else what(c)
        hd = heading if n == 1 else f'{heading} #{n}'
        colname = col if isinstance(col, str) else f'#{col}'
        return f'`{text}`<!-- report: {hd} / {row} / {colname} -->'
    def claim(self, heading, row, col, base, n=1, words=('higher', 'lower', 'no difference measured')):
        """A verdict word with its marker, from the cell's interval against `base`."""
        c = self.cell(heading, row, col, n)
        iv = interval(c or '')
        if iv is None:
            return None
        hd = heading if n == 1 else f'{heading} #{n}'
        colname = col if isinstance(col, str) else f'#{col}'
        if iv[0] > base:
            return f'{words[0]}<!-- diff: {hd} / {row} / {colname} -->'
        if iv[1] < base:
            return f'{words[1]}<!-- diff: {hd} / {row} / {colname} -->'
        return f'{words[2]}<!-- same: {hd} / {row} / {colname} -->'
    def verdict(self, heading, row, col, base=1.0):
        iv = interval(self.cell(heading, row, col) or '')
        if iv is None: return None
        return 'up' if iv[0] > base else 'down' if iv[1] < base else 'same'

def est(c):
    return c.split(' [')[0]

B = Report(sys.argv[1]); A = Report(sys.argv[2]); out = open(sys.argv[3], 'w')
meta = json.load(open(sys.argv[1].replace('report.md', 'meta.json')))
metaA = json.load(open(sys.argv[2].replace('report.md', 'meta.json')))
W = out.write

MICRO = 'Cost per store, per dirtied page, per cycle'
trk = [r[0] for r in B.table(MICRO)[1]]
W('## 4. Results\n\n')
W(f"All numbers below are copied from `papers/results/report.md` (rendered from `papers/results/study.csv`), "
  f"the default study run on {meta['date_utc'][:16].replace('T', ' ')} UTC at commit `{meta['commit'][:7]}` "
  f"(the run's machine, load and steal are in its header and in `meta.json`); each is marked in this file's "
  f"source with the report cell it comes from, and `tests/docs/paper` checks it. A second run, made earlier on "
  f"{metaA['date_utc'][:16].replace('T', ' ')} UTC at commit `{metaA['commit'][:7]}`, is kept in "
  f"`papers/results-earlier/`; Section 4.6 says which conclusions held in both.\n\n")

W('### 4.1 Cost per store, per dirtied page, per cycle\n\n')
W('Medians over rounds with 95% bootstrap intervals, minus `none`\'s; a 64 MiB region, twice the last-level '
  'cache. Beside them, the C reference on the same kind of machine (`papers/reference/c-probe-2026-11-29.md`).\n\n')
W('| tracker | per store (ns) | first write per dirtied page (ns) | arm (ns/page) | harvest + disarm (ns/page) |\n|---|---|---|---|---|\n')
for t in trk:
    if t == 'none': continue
    W(f"| {t} | {B.q(MICRO, t, '#2')} | {B.q(MICRO, t, '#4')} | {B.q(MICRO, t, 'arm (ns/page)')} | {B.q(MICRO, t, 'harvest + disarm (ns/page)')} |\n")
W('\n')
W("The page trackers' per-store cost is zero within noise: their store path is the baseline's single `mov`. "
  f"The card table adds {B.q(MICRO, 'card-table', '#2')} per store out of cache "
  "(the C probe: `0.17 ns`<!-- ref: c-probe store_dram_seq_card_delta --> paired, sequential, DRAM-sized). "
  f"A first write costs {B.q(MICRO, 'uffd-wp-async', '#4')} ns with async write-protect "
  "(C: `765.13 ns`<!-- ref: c-probe uffd_async_firstwrite_seq -->), "
  f"{B.q(MICRO, 'mprotect', '#4')} ns with `mprotect` (C: `5252.74 ns`<!-- ref: c-probe mprot_fault_seq -->), "
  f"{B.q(MICRO, 'uffd-wp-sigbus', '#4')} ns with SIGBUS delivery, and "
  f"{B.q(MICRO, 'uffd-wp[thread]', '#4')} ns when a thread sleeping in `poll(2)` serves it "
  "(C: `58450.02 ns`<!-- ref: c-probe uffd_sync_fault_poll_sep --> with the handler on the other vCPU).\n\n")
PIN = 'One CPU'
W(f"**The wake-up is the served mode's cost.** Pinned to one CPU, the served round trip falls to "
  f"{B.q(PIN, 'uffd-wp[thread]', 'pinned (ns)')} ns "
  f"({B.q(PIN, 'uffd-wp[thread]', 'pinned ÷ unpinned')} of unpinned; C, same CPU: `8890.34 ns`<!-- ref: c-probe uffd_sync_fault_poll_same -->): "
  "on this VM, most of a served fault is waking a thread on the other vCPU and being woken back, not the kernel's work.\n\n")

W('### 4.2 The crossover\n\n')
CROSS = 'Crossover with the card table'
W('| tracker | crossover with the card table (stores per dirtied page) | resamples that cross |\n|---|---|---|\n')
for r in B.table(CROSS)[1]:
    W(f"| {r[0]} | {B.q(CROSS, r[0], 'crossover (stores/page)')} | {B.q(CROSS, r[0], 'resamples that cross')} |\n")
W('\n![Cost per store against stores per dirtied page](results/crossover.svg)\n\n')
W("Only async write-protect crosses within the sweep: a workload must write each dirtied page about "
  f"{B.q(CROSS, 'uffd-wp-async', 'crossover (stores/page)')} times per cycle before async write-protect is cheaper "
  "than card marking (sequential pages, every page dirtied, arm and harvest counted). SIGBUS, `mprotect` and the served "
  "modes do not cross below 16,384 stores per page, more stores than a 4 KiB page has words.\n\n")
ORDER = 'Page order'; SHARE = 'Share of the region dirtied'
W(f"Random page order costs `mprotect` {B.q(ORDER, 'mprotect', 'random ÷ sequential, 1 store/page')} of sequential "
  f"and async write-protect {B.q(ORDER, 'uffd-wp-async', 'random ÷ sequential, 1 store/page')}. "
  f"When only 1% of the region is dirtied, arm and harvest dominate: per dirtied page the card table costs "
  f"{B.q(SHARE, 'card-table', '1% (ns)')} ns, async write-protect {B.q(SHARE, 'uffd-wp-async', '1% (ns)')} ns "
  f"and `mprotect` {B.q(SHARE, 'mprotect', '1% (ns)')} ns.\n\n")

W('### 4.3 End to end\n\n')
W('Per workload and thread count, at 2× its stop-the-world minimum heap, 10 invocations each: ratios to `none` '
  '(stop-the-world) with intervals, and the verdict they allow; MMU at 10 ms over pauses, and over pauses and '
  "writers' fault stalls; full collections forced by allocation (*fallbacks*, median count). bdwgc's rows run the "
  'same GCBench in their own process.\n\n')
e2e = [h for h in B.s if re.match(r'^[a-z0-9-]+, \d thread\(s\), ', h) and 'times the minimum' in h]
order = sorted(e2e, key=lambda h: (h.split(',')[0], h.split(',')[1]))
held = {'same': 0, 'differ': 0, 'flip': 0, 'missing': 0}
held_list = []
for h in order:
    W(f'**{h}**\n\n')
    W('| tracker | wall ÷ none | | CPU ÷ none | | max pause ÷ none | MMU 10 ms | MMU with stalls 10 ms | fallbacks |\n|---|---|---|---|---|---|---|---|---|\n')
    for r in B.table(h)[1]:
        t = r[0]
        if t == 'none':
            W(f"| none | {B.q(h, t, 'wall ms', what=lambda c: est(c))} ms | baseline | {B.q(h, t, 'CPU ms', what=lambda c: est(c))} ms | | baseline | {B.q(h, t, 'MMU 10 ms')} | – | {B.q(h, t, 'fallbacks')} |\n")
            continue
        wv = B.claim(h, t, 'wall ÷ none', 1.0, words=('slower', 'faster', 'no difference measured')) or '–'
        cv = B.claim(h, t, 'CPU ÷ none', 1.0, words=('more CPU', 'less CPU', 'no difference measured')) or '–'
        W(f"| {t} | {B.q(h, t, 'wall ÷ none')} | {wv} | {B.q(h, t, 'CPU ÷ none')} | {cv} | {B.q(h, t, 'max ÷ none')} | {B.q(h, t, 'MMU 10 ms')} | {B.q(h, t, 'MMU with stalls 10 ms')} | {B.q(h, t, 'fallbacks')} |\n")
        # Did the wall-time verdict hold in the earlier run (same workload and threads)?
        hA = [x for x in A.s if 'times the minimum' in x and x.split(' MiB')[0].rsplit(',', 1)[0] == h.split(' MiB')[0].rsplit(',', 1)[0]]
        vb = B.verdict(h, t, 'wall ÷ none')
        va = A.verdict(hA[0], t, 'wall ÷ none') if hA and A.cell(hA[0], t, 'wall ÷ none') else None
        if va is None:
            held['missing'] += 1
        elif va == vb:
            held['same'] += 1
            if vb != 'same':
                held_list.append((h.split(' heap')[0], t, vb))
        elif 'same' in (va, vb):
            held['differ'] += 1
        else:
            held['flip'] += 1
    W('\n')
W('![Pause-time CDF](results/pauses.svg)\n\n![Minimum mutator utilisation](results/mmu.svg)\n\n')

W('### 4.4 Faults by cause\n\n')
SPLIT = 'Dirty granules by cause'
W('The report\'s table *Dirty granules by cause* gives, per point and tracker, the harvested granules on pages '
  'allocated into during the cycle (the allocation frontier) and on pages of older objects.\n\n')
W("GCBench mutates almost nothing old: nearly all of a page tracker's faults there are first writes to objects "
  "allocated during the cycle, a cost a card table pays only as card marks. The LRU cache and binary trees rewrite "
  "old objects, and there most harvested pages are old.\n\n")
W('![Pages dirtied in one cycle of GCBench under a page tracker (from the earlier run: the later run lost its heap-map rows)](results-earlier/heapmap.svg)\n\n')

W('### 4.5 Overhead over a lower bound\n\n')
LB = [h for h in B.s if h.endswith('CPU') and ': bound ' in h]
W('Wall and CPU time over the Cai et al. lower bound (the cheapest variant\'s time outside collection), one thread:\n\n')
W('| point | tracker | wall ÷ bound | CPU ÷ bound |\n|---|---|---|---|\n')
for h in LB:
    if ', 1 thread(s),' not in h: continue
    for r in B.table(h)[1]:
        W(f"| {h.split(':')[0]} | {r[0]} | {B.q(h, r[0], 'wall ÷ bound')} | {B.q(h, r[0], 'CPU ÷ bound')} |\n")
W('\n')

W('### 4.6 What held in both runs\n\n')
W(f"Of the {sum(held.values())} (point, tracker) wall-time verdicts against `none`, {held['same']} were the same in "
  f"both runs, {held['differ']} were a difference in one run and no difference measured in the other, "
  f"{held['flip']} reversed, and {held['missing']} had no counterpart. The differences that held in both runs:\n\n")
for p, t, v in held_list:
    W(f"- {p}: `{t}` {'slower' if v == 'up' else 'faster'} than `none`\n")
W('\n`barrierlab compare papers/results-earlier papers/results` lists every metric and point with the ratio between '
  'the runs and its interval.\n\n')
out.close()
print(held, len(held_list))

# ---- Section 5 and the abstract, appended to the same output, split by markers ----
out = open(sys.argv[3], 'a')
W = out.write
W('## 5. Discussion\n\n')
W("**The crossover is set by the cost of a dirtied page.** Card marking pays a fraction of a nanosecond on every "
  "reference store; a page tracker pays nothing per store and a fixed price per page first written in a cycle, plus "
  "a per-page arm and harvest. Async write-protect's price is under a microsecond, so it overtakes card marking "
  "once a page takes a few thousand stores per cycle; SIGBUS and `mprotect` (a signal delivery and a protection "
  "change, ~4.5 µs) and the served modes (a cross-CPU wake-up) need more stores than a page has words. End to end, "
  "GCBench's faults are almost all on the allocation frontier: the page trackers pay a fault for every fresh page "
  "the mutator fills during a cycle, which the card table pays as one card mark per reference store; there, "
  "several page trackers were slower than `none` in both runs (Section 4.6). On the LRU cache, whose large live "
  "set makes every stop-the-world mark long, the card table was faster than `none` in both runs.\n\n")
W("**Wall time hides CPU on 2 vCPUs.** The concurrent collectors mark on the CPU the mutator leaves idle, so a "
  "barrier can be no slower in wall time while it uses more CPU; the CPU columns and the lower-bound table are "
  "the fairer comparison, and they separate the barriers more than wall time does.\n\n")
W("**Stalls are not pauses.** The MMU over pauses alone credits a page tracker with short pauses while its "
  "writers wait in faults; the column *MMU with stalls* counts the measured stalls too (a lower bound), and it is "
  "never above the pause-only MMU. Where faults are frequent (the LRU cache and binary trees under the "
  "handler-served mechanisms) the two differ most.\n\n")
W("**Small heaps and several mutators.** At 2× the minimum heap most points run some full collections forced by "
  "allocation (the *fallbacks* column): a concurrent cycle frees only what was garbage when it started, and with "
  "two mutators on two vCPUs the pacer cannot always start early enough. Such runs complete, with their fallbacks "
  "counted, instead of failing.\n\n")
W("**The outside anchor.** bdwgc runs the same GCBench in its own process. In 2× barrierlab's minimum heap its "
  "stop-the-world mode ran out of memory in every invocation (its rows are in the report's invalid table), and its "
  "incremental mode, which marks in the allocating thread, ran; so bdwgc needs more heap than barrierlab on this "
  "workload, and the comparison is at barrierlab's heap size, not bdwgc's.\n\n")
W("**Edges.** The table in `src/barrier/mod.rs` (and the tests behind it) records what the mechanisms do beyond the "
  "fast path: a `read(2)` into an armed page is served in userfaultfd's full mode but fails with `EFAULT` with "
  "SIGBUS delivery, `mprotect`, or `UFFD_USER_MODE_ONLY`; `mprotect` alone splits mappings and hits "
  "`vm.max_map_count` (barrierlab then degrades to \"everything dirty\" for the cycle, with the cause recorded); "
  "`MADV_DONTNEED` silently drops userfaultfd protection on anonymous pages, so a heap must not return pages to the "
  "kernel while armed.\n\n")
out.close()

ab = open(sys.argv[3] + '.abstract', 'w')
ab.write('## Abstract\n\n')
ab.write("A mostly-concurrent collector needs to know which parts of the heap the mutators wrote while it was "
  "marking. A software card table records this on every reference store; page protection records it once per "
  "page. Linux offers four ways to get page-granular dirty bits: userfaultfd write-protect with the faults served "
  "by a thread, the same fault raised as SIGBUS on the writer, asynchronous write-protect read back with the "
  "`PAGEMAP_SCAN` ioctl, and `mprotect` + SIGSEGV. We put all of them, a card table and a stop-the-world baseline "
  "behind one interface on one small Boehm–Demers–Shenker heap, and measure, with every invocation in a fresh "
  "process and a 95% bootstrap interval on every ratio, what each costs per store, per dirtied page and per "
  "program, in wall and CPU time. On a 2-vCPU KVM guest running Linux 6.18, the page trackers add nothing to a "
  f"store; the card table adds {B.q(MICRO, 'card-table', '#2')} ns. A first write to a protected page costs "
  f"{B.q(MICRO, 'uffd-wp-async', '#4')} ns with async write-protect, {B.q(MICRO, 'uffd-wp-sigbus', '#4')} ns with "
  f"SIGBUS delivery, {B.q(MICRO, 'mprotect', '#4')} ns with `mprotect` and {B.q(MICRO, 'uffd-wp[thread]', '#4')} ns "
  "when a sleeping thread serves it (most of that is the cross-vCPU wake-up: pinned to one CPU it is "
  f"{B.q(PIN, 'uffd-wp[thread]', 'pinned (ns)')} ns), so only async write-protect overtakes the card table within the "
  f"sweep, from {B.q(CROSS, 'uffd-wp-async', 'crossover (stores/page)')} stores per dirtied page. End to end on four "
  "workloads (GCBench, graph mutation, an LRU cache and binary trees with old-object rewiring) at 2× the minimum "
  "heap on one and two mutators, faults split into first writes on the allocation frontier and writes to old "
  "objects show why: GCBench's page faults are almost all on the frontier. Section 4.6 lists the differences that "
  "held in two runs.\n\n")
ab.close()
