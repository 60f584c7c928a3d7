"""The parts of the paper's Section 4 that `generate-results.py` writes from CSV files
rather than from `summary.json`: the before/after of the byte pacer
(`papers/results/before-after/data.csv`) and what the frontier hand-out saved (run 1's
`study.csv`). Imported by `generate-results.py`; not run on its own."""
import csv
import os
import statistics

ORDER = ['none', 'card-table', 'uffd-wp-async', 'mprotect', 'uffd-wp-sigbus', 'uffd-wp']


def before_after_section(W, root):
    """The collector's schedule before and after the byte pacer, from the stored CSV."""
    runs = {}
    for r in csv.DictReader(open(os.path.join(root, 'before-after', 'data.csv'))):
        runs.setdefault((r['workload'], int(r['heap_mib']), r['barrier'], r['binary']), []).append(r)
    W('### 4.10 The collector\'s schedule before and after the byte pacer\n\n')
    W('The end-to-end comparison of the study this paper first reported (commit `67bd14f`) '
      'measured the collector\'s trigger more than the barriers. The same work run by the '
      'collector before the byte pacer and the pre-dirtied allocation frontier (commit '
      '`0597d56`, *old*) and by this one (*new*), in turn, each run in a fresh process '
      '(`papers/results/before-after/`, with the script and its CSV): the old study\'s '
      'LRU point (4 MiB) and binary-trees point (10 MiB), the workloads\' own parameters, '
      'scaled to allocate ten heaps. Per barrier, the range of cycles and fallbacks over '
      'the runs and the median wall and stop-the-world times:\n\n')
    W('| point | barrier | runs | cycles, old → new | fallbacks, old → new | wall ms, old → new | STW ms, old → new |\n'
      '|---|---|---|---|---|---|---|\n')
    points = sorted({k[:2] for k in runs}, key=lambda k: (k[0] != 'lru', k[1]))
    spread = {}
    for wl, heap in points:
        for b in ORDER:
            old, new = runs.get((wl, heap, b, 'old')), runs.get((wl, heap, b, 'new'))
            if not old or not new:
                continue
            span = lambda rs, f: (min(float(x[f]) for x in rs), max(float(x[f]) for x in rs))
            med = lambda rs, f: statistics.median(float(x[f]) for x in rs)
            text = lambda lo_hi: f'{lo_hi[0]:.0f}' if lo_hi[0] == lo_hi[1] else f'{lo_hi[0]:.0f}–{lo_hi[1]:.0f}'
            W(f"| {wl}, {heap} MiB | {b} | {len(old)} | {text(span(old, 'cycles'))} → {text(span(new, 'cycles'))} "
              f"| {text(span(old, 'fallbacks'))} → {text(span(new, 'fallbacks'))} "
              f"| {med(old, 'total_ms'):.0f} → {med(new, 'total_ms'):.0f} | {med(old, 'stw_ms'):.0f} → {med(new, 'stw_ms'):.0f} |\n")
            for which, rs in (('old', old), ('new', new)):
                lo, hi = spread.get((wl, heap, which), (float('inf'), 0))
                c = span(rs, 'cycles')
                spread[(wl, heap, which)] = (min(lo, c[0]), max(hi, c[1]))
    W('\n')
    for wl, heap in points:
        o, n = spread[(wl, heap, 'old')], spread[(wl, heap, 'new')]
        W(f'On {wl} at {heap} MiB the barriers ran {o[0]:.0f} to {o[1]:.0f} cycles for the same work '
          f'before ({o[1] / o[0]:.0f} times apart), and {n[0]:.0f} to {n[1]:.0f} after ({n[1] / n[0]:.2f} times). ')
    falls = [float(r['fallbacks']) for k, rs in runs.items() if k[3] == 'new' for r in rs]
    W('After, no run fell back to a full collection. ' if max(falls) == 0
      else f'After, a run fell back to a full collection at most {max(falls):.0f} times. ')
    W("The old trigger started a cycle when the larger of the live bytes plus those allocated "
      "since, and the pages in use, reached 60% of the heap, for every barrier and for `none`; "
      "the byte pacer starts one from the bytes allocated since the last cycle.\n\n")


def hand_out_section(W, root, A, MICRO, e2e_points):
    """What handing the allocation frontier out unprotected saved the page trackers, from
    run 1's study.csv (the rows behind its report)."""
    rows = {}
    for r in csv.DictReader(open(os.path.join(root, 'run-1', 'study.csv'))):
        if r['section'] == 'macro' and r['metric'] in ('faults', 'handed_out', 'wall_ms'):
            key = (r['workload'], float(r['heap_mib']), r['tracker'], r['metric'])
            rows.setdefault(key, []).append(float(r['value']))
    med = lambda *k: statistics.median(rows[k]) if k in rows else float('nan')
    W('### 4.11 What the frontier hand-out saved\n\n')
    W('While a cycle is armed, a page tracker hands each page the allocator takes out '
      'unprotected and records it as written, so that a new object\'s first write takes no '
      'fault (Section 2). Per point of run 1 (medians over its invocations, from its '
      '`study.csv`): the faults each tracker took, the pages it handed out instead, and those '
      'pages at the micro\'s price of a first write (run 1\'s *first write per dirtied page*) '
      'as a share of the run\'s wall time: an estimate of what the same run would have spent '
      'in first-write faults without the hand-out (a page handed out in several cycles counts '
      'once per cycle, as its faults would), leaving out the hand-outs\' own protection '
      'changes (one per 64 pages) and what a slower mutator would change in the schedule.\n\n')
    W('| point | tracker | faults | pages handed out | at the first-write price, share of the wall time |\n'
      '|---|---|---|---|---|\n')
    shares = {}
    for h, _ in e2e_points:
        wl, heap = h.split(',')[0], float(h.split(', ')[2].split(' MiB')[0])
        for t in ('mprotect', 'uffd-wp-sigbus', 'uffd-wp[thread]'):
            cost = A.cell(MICRO, t, '#4')['estimate']
            handed, faults, wall = med(wl, heap, t, 'handed_out'), med(wl, heap, t, 'faults'), med(wl, heap, t, 'wall_ms')
            share = handed * cost / 1e6 / wall
            shares.setdefault(wl, []).append(share)
            W(f'| {wl}, {heap:.0f} MiB | {t} | {faults:.0f} | {handed:.0f} | {share * 100:.0f}% |\n')
    W('\n')
    big = max(shares, key=lambda w: max(shares[w]))
    W(f"The hand-out matters most where the mutator allocates into fresh pages while a cycle "
      f"runs: on {big} its pages at the first-write price come to "
      f"{min(shares[big]) * 100:.0f}% to {max(shares[big]) * 100:.0f}% of the run's wall time. "
      "The async tracker hands nothing out (the kernel records its first writes itself), and "
      "the store-path barriers have no fault to save.\n\n")
