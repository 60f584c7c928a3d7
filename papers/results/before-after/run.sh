#!/bin/sh
# The collector's schedule before and after the byte pacer and the pre-dirtied allocation
# frontier (commit 3a1097c), on the same work: the points of the study of 67bd14f where the
# old trigger thrashed (issue 18). OLD and NEW are two builds of `barrierlab`: OLD from
# 0597d56 (3a1097c's parent), NEW from the commit named in this folder's README. Each
# (point, barrier) runs INVOCATIONS times, old and new in turn, every run in a fresh
# process; one CSV line per run on standard output.
#
#     git worktree add /tmp/old 0597d56 && cargo build --release --manifest-path /tmp/old/Cargo.toml
#     papers/results/before-after/run.sh /tmp/old/target/release/barrierlab target/release/barrierlab > data.csv
set -eu
OLD=$1
NEW=$2
INVOCATIONS=${INVOCATIONS:-3}

# workload heap-MiB barriers (the old study's points: LRU x1 at 4 MiB, binary trees x1 at
# 10 MiB; both with the workload's own parameters, scaled to allocate ten heaps)
POINTS="lru:4:none,card-table,uffd-wp-async,mprotect,uffd-wp-sigbus,uffd-wp
binary-trees:10:none,card-table,uffd-wp-async,mprotect,uffd-wp-sigbus,uffd-wp"

field() { printf '%s\n' "$2" | tr ' ' '\n' | sed -n "s/^$1=//p" | tr -d 'ms'; }

echo "binary,workload,heap_mib,barrier,invocation,total_ms,cycles,fallbacks,stw_ms"
for i in $(seq 1 "$INVOCATIONS"); do
  printf '%s\n' "$POINTS" | while IFS=: read -r wl heap barriers; do
    for b in $(printf '%s' "$barriers" | tr ',' ' '); do
      for which in old new; do
        if [ "$which" = old ]; then bin=$OLD; else bin=$NEW; fi
        line=$("$bin" run --workload "$wl" --heap-mib "$heap" --barrier "$b" --scaled 2>/dev/null | tail -n 1)
        echo "$which,$wl,$heap,$b,$i,$(field total "$line"),$(field cycles "$line"),$(field fallbacks "$line"),$(field stw "$line")"
      done
    done
  done
done
