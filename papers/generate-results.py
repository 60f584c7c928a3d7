#!/usr/bin/env python3
"""Writes the paper's abstract and Section 4 (Results) from three study runs:
`papers/results/run-1`, `run-2`, `run-3` (of each study folder its `summary.json`, never its
Markdown), `papers/results/compare.json` (the output of `barrierlab compare run-1 run-2
run-3 --json`, run inside `papers/results`) and the C probe's run in `papers/reference`;
Sections 4.10 and 4.11 come from CSV files (`generate_results_from_csv.py`: the
before/after experiment's `data.csv` and run 1's `study.csv`).

Every number from a `summary.json` cell is marked with the cell it came from; every
"slower / faster / no difference" from one run is marked with the interval that allows
it; every verdict across the runs is marked with its `compare.json` entry; every "crosses
/ does not cross" with the crossover cell. `cargo test --release --test docs paper` checks
each marker against the data, and that the paper's abstract and Section 4 are this
script's output byte for byte, so a sentence the data contradicts fails.

Usage (from the repository root):

    python3 papers/generate-results.py /tmp/results.md

writes the abstract, then Section 4, each followed by a line `<!-- cut -->`; they replace
the paper's `## Abstract` section and its `## 4. Results` .. `## 5.` part."""
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.dont_write_bytecode = True  # no __pycache__ beside the paper
import generate_results_from_csv as from_csv  # noqa: E402  (beside this script)

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'results')
# The C reference probe's run on the day and the hardware of the three runs
# (`papers/reference/run-probe.sh`, output of `probe.c`).
PROBE = 'probe-2026-12-06.md'


def probe_medians():
    """KEY -> median (ns) of the probe's table (`key min median max unit what`)."""
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'reference', PROBE)
    out = {}
    for line in open(path):
        f = line.split()
        if len(f) >= 5 and f[4].startswith('ns/') and not line.startswith('#'):
            try:
                out[f[0]] = float(f[2])
            except ValueError:
                pass
    return out


def ref(key):
    """The probe's median of KEY, quoted with its marker."""
    return f'`{PROBE_NS[key]:.2f} ns`<!-- ref: c-probe {key} -->'
RUNS = (1, 2, 3)


def fmt(v):
    """A number as the report prints it (study::format::fmt)."""
    a = abs(v)
    if a == 0:
        return '0'
    if a >= 100:
        return f'{v:.0f}'
    if a >= 10:
        return f'{v:.1f}'
    if a >= 1:
        return f'{v:.2f}'
    return f'{v:.3f}'


def render(c):
    """A summary.json cell as the report prints it (study::summary::Cell::render)."""
    k = c['kind']
    if k == 'text':
        return c['text'].replace('|', '/').replace('\n', ' ')
    if k == 'number':
        return fmt(c['value'])
    if k == 'count':
        v = c['value']
        return f'{v:.0f}' if v == int(v) else f'{v:.1f}'
    if k == 'percent':
        return f"{c['value'] * 100:.1f}%"
    if k == 'estimate':
        return f"{fmt(c['estimate'])} [{fmt(c['lo'])}–{fmt(c['hi'])}]"
    if k == 'ratio':
        return f"{fmt(c['estimate'])}× [{fmt(c['lo'])}–{fmt(c['hi'])}]"
    return '–'


class Run:
    """One run's summary.json: its tables in file order."""

    def __init__(self, n):
        self.n = n
        self.summary = json.load(open(os.path.join(ROOT, f'run-{n}', 'summary.json')))
        self.meta = self.summary['meta']
        self.tables = self.summary['tables']

    def table(self, heading, nth=1):
        found = [t for t in self.tables if t['heading'] == heading]
        return found[nth - 1] if len(found) >= nth else None

    def nth_with(self, heading, column):
        """Which table (from 1) under `heading` has `column`: a point's heading heads its
        end-to-end tables (one, or three in reports written since they were split) and its
        granule table."""
        found = [t for t in self.tables if t['heading'] == heading]
        return next(i + 1 for i, t in enumerate(found) if column in t['header'])

    def headings(self):
        return [t['heading'] for t in self.tables]

    def cell(self, heading, row, col, nth=1):
        """The raw cell, or None."""
        t = self.table(heading, nth)
        if t is None:
            return None
        k = int(col[1:]) - 1 if col.startswith('#') else t['header'].index(col)
        rows = [r for r in t['rows'] if render(r[0]) == row]
        return rows[0][k] if len(rows) == 1 else None

    def where(self, kind, heading, row, col, nth=1):
        at = kind if self.n == 1 else f'{kind}@{self.n}'
        hd = heading if nth == 1 else f'{heading} #{nth}'
        return f'<!-- {at}: {hd} / {row} / {col} -->'

    def q(self, heading, row, col, nth=1, short=False):
        """A quoted cell with its marker (`short`: the estimate without its interval)."""
        c = self.cell(heading, row, col, nth)
        if c is None or c['kind'] == 'missing':
            return '–'
        text = render(c)
        if short:
            text = text.split(' [')[0]
        return f'`{text}`' + self.where('report', heading, row, col, nth)

    def claim(self, heading, row, col, words, nth=1):
        """A verdict word from the cell's interval (against 1 for a ratio, else 0)."""
        c = self.cell(heading, row, col, nth)
        if c is None or c['kind'] not in ('ratio', 'estimate'):
            return None
        null = 1.0 if c['kind'] == 'ratio' else 0.0
        if c['lo'] > null:
            return words[0] + self.where('diff', heading, row, col, nth)
        if c['hi'] < null:
            return words[1] + self.where('diff', heading, row, col, nth)
        return words[2] + self.where('same', heading, row, col, nth)

    def includes_zero(self, heading, row, col):
        c = self.cell(heading, row, col)
        return c is not None and c['kind'] == 'estimate' and c['lo'] <= 0 <= c['hi']

    def crosses(self, tracker):
        c = self.cell(CROSS, tracker, 'crossover (stores/page)')
        return c is not None and c['kind'] == 'estimate'

    def cross_marker(self, tracker):
        at = '' if self.n == 1 else f'@{self.n}'
        kind = 'crosses' if self.crosses(tracker) else 'no-cross'
        return f'<!-- {kind}{at}: {tracker} -->'


R = [Run(n) for n in RUNS]
PROBE_NS = probe_medians()
A = R[0]
CMP = json.load(open(os.path.join(ROOT, 'compare.json')))
VERDICTS = CMP['verdicts']
MICRO = 'Cost per store, per dirtied page, per cycle'
CROSS = 'Crossover with the card table'
PIN = 'One CPU'
E2E_COLS = ('wall ÷ none', 'CPU ÷ none')


def names(ts):
    """`a`, `b` and `c`."""
    q = [f'`{t}`' for t in ts]
    return q[0] if len(q) == 1 else ', '.join(q[:-1]) + ' and ' + q[-1]


def statements(tracker=None):
    """The cross-run verdict entries (of one tracker), by statement."""
    out = {}
    for p in VERDICTS['points']:
        if tracker is None or p['tracker'] == tracker:
            key = 'not judged' if p['statement'].startswith('not judged') else p['statement']
            out.setdefault(key, []).append(p)
    return out


def held(point, tracker, metric):
    """The cross-run statement with its marker; not-judged statements unmarked, short."""
    found = [p for p in VERDICTS['points']
             if (p['point'], p['tracker'], p['metric']) == (point, tracker, metric)]
    if len(found) != 1:
        return '–'
    s = found[0]['statement']
    if s.startswith('not judged'):
        return 'not judged (health)'
    return f'{s}<!-- held: {point} / {tracker} / {metric} -->'


def trackers(heading, nth=1, skip=('none',)):
    t = A.table(heading, nth)
    return [render(r[0]) for r in t['rows'] if render(r[0]) not in skip]


def e2e_points():
    """(heading, compare.json point) per end-to-end point, by workload then heap size."""
    hs = [h for h in A.headings() if h.endswith('times the minimum)') and A.table(h)['header'][1] == 'n']
    hs = sorted(set(hs), key=lambda h: (h.split(',')[0], int(h.split(', ')[2].split(' MiB')[0])))
    out = []
    for h in hs:
        wl = h.split(',')[0]
        same = [x for x in hs if x.split(',')[0] == wl]
        out.append((h, f'{wl} x1 heap #{same.index(h) + 1}'))
    return out


def runs_section(W):
    W('### 4.0 The runs\n\n')
    W('Three default studies of one binary, each started with `barrierlab study --no-progress '
      '--out DIR` while nothing else ran on the machine. Each run drew its own seed, so the '
      'invocations ran in a different random order in each.\n\n')
    W('| run | started (UTC) | seed | load before, after | CPU steal | binary (FNV-1a 64) |\n'
      '|---|---|---|---|---|---|\n')
    for r in R:
        m = r.meta
        W(f"| {r.n} | {r.q('Machine', 'date', '#2')} | {m['seed']} | "
          f"{r.q('Machine', 'load average', '#2')} | {r.q('Machine', 'CPU steal during the run', '#2')} | "
          f"{r.q('Machine', 'binary (FNV-1a 64)', '#2')} |\n")
    end1 = R[0].meta['elapsed_s'] / 60
    W(f"\nRun 1 took {end1:.0f} minutes; runs 2 and 3 {R[1].meta['elapsed_s'] / 60:.0f} and "
      f"{R[2].meta['elapsed_s'] / 60:.0f} (`elapsed_s` in each `meta.json`). The binary was built from "
      "commit `85ec996`, which run 1's `meta.json` names; runs 2 and 3 name later commits, because the "
      "study then asked git for the checkout's commit when it started rather than for the binary's "
      "(fixed since: the commit is built into the binary); the binary's hash, equal in all three, "
      "shows what ran. `papers/results/README.md` says how the folders were made.\n\n")


# The first writes set beside the C probe: (what, tracker, the probe's key).
FIRST_WRITES = (
    ('async write-protect', 'uffd-wp-async[disarm]', 'uffdasync_fault'),
    ('`mprotect`', 'mprotect', 'mprotect_fault_unprotect'),
    ('SIGBUS delivery', 'uffd-wp-sigbus', 'uffdwp_sigbus_fault'),
    ('the served fault', 'uffd-wp[thread]', 'uffdwp_fault_roundtrip_thread'),
)


def first_write(r, t):
    """A first write's cost, or the report's word that it is under the noise."""
    c = r.cell(MICRO, t, '#5')
    if c is not None and render(c) == 'under noise':
        return r.q(MICRO, t, '#5')
    return r.q(MICRO, t, '#4', short=True)


def micro_section(W):
    W('### 4.1 Cost per store, per dirtied page, per cycle\n\n')
    W("Medians over rounds with 95% bootstrap intervals, minus `none`'s, over a 64 MiB region, twice "
      'the last-level cache, in each run. The C reference (`papers/reference/probe.c`) ran on the '
      f'same machine the same day: `papers/reference/{PROBE}`.\n\n')
    W('| tracker | per store (ns), run 1 | run 2 | run 3 | first write per dirtied page (ns), run 1 | run 2 | run 3 |\n'
      '|---|---|---|---|---|---|---|\n')
    for t in trackers(MICRO):
        W(f'| {t} | ' + ' | '.join(r.q(MICRO, t, '#2') for r in R) + ' | '
          + ' | '.join(first_write(r, t) for r in R) + ' |\n')
    W('\n')
    zero = [t for t in trackers(MICRO) if all(r.includes_zero(MICRO, t, '#2') for r in R)]
    some = [t for t in trackers(MICRO) if t not in zero]
    if zero:
        marks = ''.join(r.where('same', MICRO, t, '#2') for t in zero for r in R)
        W(f"In all three runs the per-store interval of {names(zero)} includes 0: "
          f"these trackers add nothing measurable to a store{marks}. ")
    for t in some:
        W(f"`{t}` costs " + ', '.join(r.q(MICRO, t, '#2') for r in R) + ' ns per store in runs 1, 2 and 3'
          + (' (its interval includes 0 in some run).' if any(r.includes_zero(MICRO, t, '#2') for r in R) else '.')
          + ' ')
    W("\n\nOne run's first-write costs beside the C reference: async write-protect "
      f"{A.q(MICRO, 'uffd-wp-async[disarm]', '#4', short=True)} ns (C: {ref('uffdasync_fault')}), "
      f"`mprotect` {A.q(MICRO, 'mprotect', '#4', short=True)} ns (C: {ref('mprotect_fault_unprotect')}), "
      f"SIGBUS delivery {A.q(MICRO, 'uffd-wp-sigbus', '#4', short=True)} ns (C: {ref('uffdwp_sigbus_fault')}), and a fault served by a thread "
      f"sleeping in `poll(2)` {A.q(MICRO, 'uffd-wp[thread]', '#4', short=True)} ns (C: {ref('uffdwp_fault_roundtrip_thread')}, "
      "the handler on the other vCPU). Over the three runs the study's figure is "
      + '; '.join(f"{min(v)/PROBE_NS[k]:.2f} to {max(v)/PROBE_NS[k]:.2f} times the probe's for {what}"
                  for what, k, v in ((w, k, [r.cell(MICRO, t, '#4')['estimate'] for r in R])
                                     for w, t, k in FIRST_WRITES))
      + " (each run's cells above; the probe's rows in its file).\n\n")
    W('**The wake-up is the served fault\'s cost.** Pinned to one CPU, the served round trip falls to '
      + ', '.join(r.q(PIN, 'uffd-wp[thread]', 'pinned (ns)') for r in R)
      + f" ns in runs 1, 2 and 3 (C, same CPU: {ref('uffdwp_fault_roundtrip_thread_samecpu')}): "
      "on this VM most of a served fault is waking a thread on the other vCPU and being woken back, "
      "not the kernel's work.\n\n")


def crossover_section(W):
    W('### 4.2 The crossover\n\n')
    W('The number of stores per dirtied page above which a tracker costs less per store than the card '
      'table (sequential pages, every page dirtied, arm and harvest counted), with its interval over '
      'rounds, in each run.\n\n')
    W('| tracker | run 1 | run 2 | run 3 |\n|---|---|---|---|\n')
    ts = [render(row[0]) for row in A.table(CROSS)['rows']]
    for t in ts:
        W(f'| {t} | ' + ' | '.join(r.q(CROSS, t, 'crossover (stores/page)') for r in R) + ' |\n')
    W('\n![Cost per store against stores per dirtied page, run 1](results/run-1/crossover.svg)\n\n')
    always = [t for t in ts if all(r.crosses(t) for r in R)]
    never = [t for t in ts if not any(r.crosses(t) for r in R)]
    mixed = [t for t in ts if t not in always and t not in never]
    if always:
        marks = ''.join(r.cross_marker(t) for t in always for r in R)
        W(f"In all three runs {names(always)} cross within the sweep{marks}. ")
    if never:
        marks = ''.join(r.cross_marker(t) for t in never for r in R)
        verb = 'does' if len(never) == 1 else 'do'
        W(f"{names(never)} {verb} not cross below 16,384 stores per page in any run, more "
          f"stores than a 4 KiB page has words{marks}. ")
    for t in mixed:
        k = sum(r.crosses(t) for r in R)
        W(f'`{t}` crosses in {k} of the 3 runs' + ''.join(r.cross_marker(t) for r in R) + '. ')
    W('The write watch is cheaper than the card table from the first point of the sweep although its '
      f"store costs more ({A.q(MICRO, 'write-watch', '#2')} ns against {A.q(MICRO, 'card-table', '#2')} in "
      f"run 1): per page, its arm costs {A.q(MICRO, 'write-watch', 'arm (ns/page)')} ns and its harvest "
      f"{A.q(MICRO, 'write-watch', 'harvest + disarm (ns/page)')} ns, the card table's "
      f"{A.q(MICRO, 'card-table', 'arm (ns/page)')} and {A.q(MICRO, 'card-table', 'harvest + disarm (ns/page)')} "
      '(a byte per page against eight).\n\n')


def e2e_section(W):
    W('### 4.3 End to end\n\n')
    W("Per workload at 2× (and for four workloads 3×) its stop-the-world minimum heap, one mutator: "
      "each run's wall time over `none`'s (ratio of medians, 95% interval), and the verdict across "
      "the three runs from `barrierlab compare run-1 run-2 run-3` (`papers/results/compare.md`): "
      "*slower* or *faster* only where every run's interval lies beyond 1 by 5%, *no difference "
      "stated* otherwise, *not judged* where a run's point failed the health rule (the report's "
      "*health* column: the barrier ran more than 20% fewer cycles than the card table, or its "
      "mutators waited for cycles more than 10% of the run). The verdict on CPU time follows.\n\n")
    for h, point in e2e_points():
        W(f'**{h}**\n\n')
        W('| tracker | wall ÷ none, run 1 | run 2 | run 3 | wall, across runs | CPU, across runs |\n'
          '|---|---|---|---|---|---|\n')
        W(f"| none | " + ' | '.join(r.q(h, 'none', 'wall ms', short=True) + ' ms' for r in R) + ' | baseline | baseline |\n')
        for t in trackers(h, skip=('none', 'bdwgc-stw', 'bdwgc-incremental')):
            W(f'| {t} | ' + ' | '.join(r.q(h, t, 'wall ÷ none') for r in R)
              + f" | {held(point, t, 'wall_ms')} | {held(point, t, 'cpu_total_ms')} |\n")
        W('\n')
        peers = [t for t in trackers(h, skip=()) if t.startswith('bdwgc')]
        if peers:
            W('bdwgc on the same GCBench, in its own process at the same heap size (the report lists how '
              'it ran: `bdwgc-stw` without virtual dirty bits, `bdwgc-incremental` generational with '
              '`mprotect` dirty bits), over barrierlab\'s `none`:\n\n'
              '| peer | wall ÷ none, run 1 | run 2 | run 3 | invocations (n), run 1 | run 2 | run 3 |\n'
              '|---|---|---|---|---|---|---|\n')
            for t in peers:
                W(f'| {t} | ' + ' | '.join(r.q(h, t, 'wall ÷ none') for r in R) + ' | '
                  + ' | '.join(r.q(h, t, 'n') for r in R) + ' |\n')
            W('\n')
    W('![Pause-time CDF, run 1](results/run-1/pauses.svg)\n\n![Minimum mutator utilisation, run 1](results/run-1/mmu.svg)\n\n')


def held_section(W):
    W('### 4.4 What held across the three runs\n\n')
    n = VERDICTS
    W(f"Of {n['judged']} (point, tracker, metric) verdicts judged in every run, {n['stated']} were "
      f"a difference stated in every run, {n['reversed']} reversed, and {n['judged'] - n['stated']} "
      f"had no difference stated; judged run by run alone, {n['same_in_every_run']} of {n['judged']} "
      "got the same verdict in all three. The differences that held:\n\n")
    for p in VERDICTS['points']:
        if p['statement'] in ('slower', 'faster'):
            what = 'wall time' if p['metric'] == 'wall_ms' else 'CPU time'
            W(f"- {p['point']}: `{p['tracker']}` {p['statement']}<!-- held: {p['point']} / {p['tracker']} / {p['metric']} --> than `none` in {what}\n")
    faster = statements().get('faster', [])
    W(f"\n{len(faster)} verdicts said a barrier was faster than `none` in all three runs. "
      + card_table_sentence() + '\n\n')


def card_table_sentence():
    st = statements('card-table')
    said = {k: len(v) for k, v in st.items()}
    parts = [f'{n} {k}' for k, n in sorted(said.items())]
    return f"The card table's {sum(said.values())} verdicts: {', '.join(parts)}."


def granule_section(W):
    W('### 4.5 The granule apart from the mechanism\n\n')
    W('The write watch marks a byte per 4 KiB page on the store path: it has the card table\'s '
      'mechanism and the page trackers\' granule. Its wall time over the card table\'s, per run:\n\n')
    W('| point | run 1 | run 2 | run 3 | stores per dirtied granule, card table (run 1) | write watch (run 1) |\n'
      '|---|---|---|---|---|---|\n')
    for h, _ in e2e_points():
        g = A.nth_with(h, 'granule')
        W(f'| {h.split(" heap")[0]} | ' + ' | '.join(r.q(h, 'write-watch', 'wall ÷ card-table', nth=r.nth_with(h, 'granule')) for r in R)
          + f" | {A.q(h, 'card-table', 'stores per dirtied granule', nth=g)} | {A.q(h, 'write-watch', 'stores per dirtied granule', nth=g)} |\n")
    W('\n')


def gcold_section(W):
    G = 'GCOld: card marking against page protection by mutation rate'
    W('### 4.6 GCOld by mutation rate\n\n')
    W('GCOld (`src/workload/gcold.rs`, ported from Sun Microsystems Laboratories\' benchmark) at '
      'twice its minimum heap, at 100 and 10,000 pointer stores into old trees per step: each '
      "barrier's wall time over the card table's, per run.\n\n")
    t = A.table(G)
    cols = [c for c in t['header'][2:] if c != 'none ÷ card-table']
    W('| mutations per step | barrier | run 1 | run 2 | run 3 |\n|---|---|---|---|---|\n')
    for row in t['rows']:
        rate = render(row[0])
        for c in cols:
            W(f"| {rate} | {c.split(' ÷')[0]} | " + ' | '.join(r.q(G, rate, c) for r in R) + ' |\n')
    W('\n')


def barrier_only_section(W):
    W('### 4.7 Barrier cost with the collection held fixed\n\n')
    W('No collection runs; the tracker is armed 25 ms and disarmed 25 ms, over and over, so that every '
      "barrier sees the same schedule. *predicted ÷ measured*: the micro's per-store and per-first-write "
      'costs times the counted stores and first writes (and TLB shootdowns), over the measured extra '
      'time; the report judges it only where the barrier was measured slower than `none`.\n\n')
    hs = [t['heading'] for t in A.tables if t['header'][:2] == ['barrier', 'n']]
    W('| workload | barrier | ÷ none, run 1 | run 2 | run 3 | predicted ÷ measured, run 1 | run 2 | run 3 |\n'
      '|---|---|---|---|---|---|---|---|\n')
    for h in hs:
        for t in trackers(h):
            W(f"| {h.split(',')[0]} | {t} | " + ' | '.join(r.q(h, t, '÷ none') for r in R) + ' | '
              + ' | '.join(r.q(h, t, 'predicted ÷ measured') for r in R) + ' |\n')
    W('\n')
    within, outside, unjudged = [], [], []
    for h in hs:
        for t in trackers(h):
            cells = [r.cell(h, t, 'predicted ÷ measured') for r in R]
            vals = [c['value'] for c in cells if c is not None and c['kind'] == 'number']
            what = f"`{t}` on {h.split(',')[0]}"
            if len(vals) < 3:
                unjudged.append(what)
            elif all(0.75 <= v <= 1.25 for v in vals):
                within.append(what)
            else:
                outside.append(what)
    W(f"The prediction was within 25% of the measurement in all three runs for {len(within)} (workload, "
      f"barrier) pairs ({', '.join(within) or 'none'}); outside it in some run for {len(outside)} "
      f"({', '.join(outside) or 'none'}); {len(unjudged)} were not measured slower than `none` in every run, "
      "so there was nothing to predict in some run.\n\n")


def curves_section(W):
    W('### 4.8 Heap-size curves\n\n')
    W("Wall time against heap size for each workload that ran at two heap multiples, run 1 (each "
      "run's report has the table, with CPU time, under *Heap-size curves*; two multiples are "
      "the fewest that make a curve, and the default study's minimum heaps left no third, see "
      "Section 3):\n\n")
    for h in dict.fromkeys(A.headings()):
        if h.endswith('by heap multiple'):
            wl = h.split(',')[0]
            W(f'![Wall and CPU time of {wl} against heap size, run 1](results/run-1/curves-{wl}-x1.svg)\n\n')
    W('\n')


def huge_section(W):
    W('### 4.9 Huge pages\n\n')
    W("Each barrier again at each workload's largest heap, on a heap advised `MADV_HUGEPAGE`: "
      "wall time on huge pages over wall time on 4 KiB pages, per run, and how much of the heap "
      "huge pages backed at the end of run 1. A page tracker's first write into a protected huge "
      "page splits it (measured on a bare region by `tests/barrier/huge_pages.rs`), so what huge "
      "pages it keeps is its own.\n\n")
    hs = [t['heading'] for t in A.tables if t['header'][:2] == ['barrier', 'wall ms, 4 KiB pages']]
    W('| workload | barrier | huge ÷ 4 KiB, run 1 | run 2 | run 3 | huge pages at the end, run 1 (MiB of heap) |\n'
      '|---|---|---|---|---|---|\n')
    stated = []
    for h in hs:
        for t in trackers(h, skip=()):
            W(f"| {h.split(',')[0]} | {t} | " + ' | '.join(r.q(h, t, 'huge ÷ 4 KiB') for r in R)
              + f" | {A.q(h, t, 'huge pages at the end (MiB of heap)')} |\n")
            words = [r.claim(h, t, 'huge ÷ 4 KiB', ('slower', 'faster', 'no difference measured')) for r in R]
            if all(w and not w.startswith('no difference') for w in words) and len({w.split('<')[0] for w in words}) == 1:
                stated.append(f"`{t}` on {h.split(',')[0]} was " + ', '.join(words) + ' in runs 1, 2 and 3')
    W('\n')
    if stated:
        W('The same difference in all three runs: ' + '; '.join(stated) + '. ')
    else:
        W('No barrier ran faster or slower on huge pages in all three runs: in every row, some run\'s '
          'interval includes 1 or the runs disagree in direction. ')
    W('A ratio is not drawn for `none` or a store-path barrier whose run ended with no huge page '
      '(it measured nothing).\n\n')


def abstract_end():
    """The abstract's end-to-end sentence, from compare.json."""
    bt = 'binary-trees-l64 x1 heap #1'
    slower = [p for p in statements().get('slower', []) if p['point'] == bt and p['metric'] == 'wall_ms']
    faster = statements().get('faster', [])
    card = statements('card-table')
    card_said = [p for k in ('slower', 'faster') for p in card.get(k, [])]
    text = ('no barrier was faster than stop-the-world at any point in all three runs; '
            if not faster else f'{len(faster)} verdicts said a barrier was faster in all three runs; ')
    if slower:
        each = [f"`{p['tracker']}` slower<!-- held: {p['point']} / {p['tracker']} / wall_ms -->" for p in slower]
        each[0] = each[0].replace(' slower', ' was slower', 1)
        listed = each[0] if len(each) == 1 else ', '.join(each[:-1]) + ' and ' + each[-1]
        text += listed + ' than it in wall time on binary trees at 2× its minimum heap in all three runs; '
    text += ('the card table was never stated slower or faster than it. ' if not card_said
             else f'the card table was stated different from it {len(card_said)} times. ')
    text += (f"Of {VERDICTS['judged']} verdicts judged in every run, {VERDICTS['stated']} held as a "
             f"difference in all three runs and {VERDICTS['reversed']} reversed; "
             f"{len(statements().get('not judged', []))} more were not judged, because a run's point "
             "failed the health rule (on GCBench and GCOld, mostly: the mutators waited for cycles).")
    return text


def main(path):
    with open(path, 'w') as out:
        W = out.write
        W('## Abstract\n\n')
        W("A mostly-concurrent collector needs to know which parts of the heap the mutators wrote while "
          "it was marking. A software card table records this on every reference store; page protection "
          "records it once per page. Linux offers four ways to get page-granular dirty bits: userfaultfd "
          "write-protect with the faults served by a thread, the same fault raised as SIGBUS on the "
          "writer, asynchronous write-protect read back with the `PAGEMAP_SCAN` ioctl, and `mprotect` + "
          "SIGSEGV. We put all of them, a card table, a page-granular software write watch and a "
          "stop-the-world baseline behind one interface on one mostly-concurrent mark-sweep heap, and "
          "measure, with every invocation in a fresh process and a 95% bootstrap interval on every "
          "ratio, what each costs per store, per dirtied page and per program, in three independent "
          "runs on a 2-vCPU KVM guest running Linux 6.18. A first write to a protected page costs "
          f"{A.q(MICRO, 'uffd-wp-async[disarm]', '#4', short=True)} ns with async write-protect, "
          f"{A.q(MICRO, 'uffd-wp-sigbus', '#4', short=True)} ns with SIGBUS delivery, "
          f"{A.q(MICRO, 'mprotect', '#4', short=True)} ns with `mprotect` and "
          f"{A.q(MICRO, 'uffd-wp[thread]', '#4', short=True)} ns when a sleeping thread serves it "
          f"(run 1); the card table adds {A.q(MICRO, 'card-table', '#2')} ns to a store. End to end, on "
          "five workloads with 64 MiB of live data at 2× and 3× their minimum heaps, "
          + abstract_end() + "\n\n")
        W('<!-- cut -->\n')
        W('## 4. Results\n\n')
        W('All numbers below are copied from the `summary.json` of three default study runs, '
          '`papers/results/run-1`, `run-2` and `run-3` (each with its `report.md`, `study.csv`, '
          '`meta.json` and figures), and from their comparison, `papers/results/compare.json`; each '
          'is marked in this file\'s source with the cell it comes from, and `tests/docs/paper` '
          'checks it. `papers/generate-results.py` writes this section.\n\n')
        runs_section(W)
        micro_section(W)
        crossover_section(W)
        e2e_section(W)
        held_section(W)
        granule_section(W)
        gcold_section(W)
        barrier_only_section(W)
        curves_section(W)
        huge_section(W)
        from_csv.before_after_section(W, ROOT)
        from_csv.hand_out_section(W, ROOT, A, MICRO, e2e_points())
        W('<!-- cut -->\n')


if __name__ == '__main__':
    if len(sys.argv) != 2 or sys.argv[1].startswith('-'):
        # A mistyped option would otherwise become the output file's name.
        sys.exit('usage: python3 papers/generate-results.py OUT.md\n\n' + __doc__)
    main(sys.argv[1])
