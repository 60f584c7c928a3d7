/*
 * GCBench in C over the Boehm-Demers-Weiser collector (bdwgc), as a C program uses
 * it: the reference that `barrierlab gcbench --peer bdwgc` is checked against.
 *
 * The benchmark is Ellis and Kovac's GCBench as modified by Boehm, with the work of
 * barrierlab's own (src/workload/gcbench.rs) and of its bdwgc peer
 * (src/peer/bdwgc.rs), step for step:
 *   - a stretch tree of depth 18, built bottom-up and dropped;
 *   - a long-lived tree of depth 16, built top-down, and an array of 500,000 doubles
 *     (pointer-free, GC_MALLOC_ATOMIC), elements 1 .. 249,999 set to 1/i, both kept to
 *     the end;
 *   - for depth 4, 6, ..., 16: 2 * treesize(18) / treesize(depth) trees built
 *     top-down, then as many bottom-up, each dropped at once;
 *   - the long-lived tree is counted and array[1000] checked at the end.
 * A node is two pointers and two ints, 24 bytes, from GC_MALLOC (bdwgc gives it a
 * 32-byte cell). `-q` runs barrierlab's quick parameters (depths 14/12, 50,000
 * doubles, trees 4..12).
 *
 * The heap, as the peer sets it up: with `-m MIB`, GC_set_max_heap_size(MIB) before
 * GC_INIT and GC_expand_hp up to MIB after it; without `-m`, bdwgc's own initial heap
 * and growth. `-i` calls GC_enable_incremental() after GC_INIT. The clock
 * (CLOCK_MONOTONIC, and CLOCK_PROCESS_CPUTIME_ID for the CPU time) runs around the
 * workload only, from the stretch tree to the checks, as the peer's does.
 *
 * Pauses are timed as the peer times them, from bdwgc's collection events: from
 * GC_EVENT_PRE_STOP_WORLD to GC_EVENT_POST_START_WORLD, or, in a build without threads
 * (where those do not fire), from GC_EVENT_START to GC_EVENT_END; `stw` is their sum.
 * `full` counts the calls of the start callback, which bdwgc makes at the start of every
 * full collection (in incremental mode, the partial ones do not call it).
 *
 * Output: one line of key=value fields. `allocs` counts the allocation calls, and
 * `alloc_bytes` is bdwgc's own count of the bytes it handed out during the workload
 * (GC_get_total_bytes after minus before): a second channel to check that another
 * program did the same work.
 *
 * Build and run: see README.md beside this file.
 */
#include <gc.h>
#include <gc/gc_mark.h> /* GC_set_start_callback */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

typedef struct Node {
    struct Node *left;
    struct Node *right;
    int i, j; /* the classic payload, never read */
} Node;

struct params {
    int stretch_depth;
    int long_lived_depth;
    long array_len;
    int min_depth;
    int max_depth;
};

static const struct params CLASSIC = {18, 16, 500000, 4, 16};
static const struct params QUICK = {14, 12, 50000, 4, 12};

/* Declared by gc.h only for programs that define GC_THREADS (this one makes no
 * threads); weak, so that a build of bdwgc without threads, which lacks it, links. */
extern int GC_get_parallel(void) __attribute__((weak));

/* Allocation calls made by the workload (the `allocs` field). */
static unsigned long allocs;

static Node *new_node(void) {
    Node *n = (Node *)GC_MALLOC(sizeof(Node));
    if (n == NULL) {
        fprintf(stderr, "gcbench: out of memory (GC_MALLOC of a node)\n");
        exit(1);
    }
    allocs++;
    return n;
}

static double now_ms(clockid_t clock) {
    struct timespec ts;
    clock_gettime(clock, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

/* Pause brackets: [0] world stopped, [1] whole collections (see the top comment). */
static struct bracket {
    double opened, total;
    unsigned long count;
} brackets[2];

/* Full collections started (see the top comment). */
static unsigned long full_collections;

/* Runs inside the collector with its lock held, as the next one: counts, nothing else. */
static void on_full_collection(void) { full_collections++; }

/* Runs inside the collector with its lock held: reads the clock, nothing else. */
static void on_collection_event(GC_EventType e) {
    switch (e) {
    case GC_EVENT_PRE_STOP_WORLD:
        brackets[0].opened = now_ms(CLOCK_MONOTONIC);
        break;
    case GC_EVENT_POST_START_WORLD:
        brackets[0].total += now_ms(CLOCK_MONOTONIC) - brackets[0].opened;
        brackets[0].count++;
        break;
    case GC_EVENT_START:
        brackets[1].opened = now_ms(CLOCK_MONOTONIC);
        break;
    case GC_EVENT_END:
        brackets[1].total += now_ms(CLOCK_MONOTONIC) - brackets[1].opened;
        brackets[1].count++;
        break;
    default:
        break;
    }
}

static long tree_size(int depth) { return (1L << (depth + 1)) - 1; }

/* Gives `node` two children, recursively, to `depth` (top-down). */
static void populate(int depth, Node *node) {
    if (depth <= 0)
        return;
    node->left = new_node();
    node->right = new_node();
    populate(depth - 1, node->left);
    populate(depth - 1, node->right);
}

/* Builds a tree of `depth` bottom-up. */
static Node *make_tree(int depth) {
    Node *left, *right, *node;
    if (depth <= 0)
        return new_node();
    left = make_tree(depth - 1);
    right = make_tree(depth - 1);
    node = new_node();
    node->left = left;
    node->right = right;
    return node;
}

static long count(const Node *node) {
    long n = 1;
    if (node->left)
        n += count(node->left);
    if (node->right)
        n += count(node->right);
    return n;
}

static void run(const struct params *p) {
    Node *long_lived;
    double *array;
    long i, check;
    int depth;

    make_tree(p->stretch_depth);

    long_lived = new_node();
    populate(p->long_lived_depth, long_lived);
    array = (double *)GC_MALLOC_ATOMIC(sizeof(double) * p->array_len);
    if (array == NULL) {
        fprintf(stderr, "gcbench: out of memory (GC_MALLOC_ATOMIC of the array)\n");
        exit(1);
    }
    allocs++;
    for (i = 1; i < p->array_len / 2; i++)
        array[i] = 1.0 / i;

    for (depth = p->min_depth; depth <= p->max_depth; depth += 2) {
        long iters = 2 * tree_size(p->stretch_depth) / tree_size(depth);
        for (i = 0; i < iters; i++) {
            Node *temp = new_node();
            populate(depth, temp);
        }
        for (i = 0; i < iters; i++)
            make_tree(depth);
    }

    if (count(long_lived) != tree_size(p->long_lived_depth)) {
        fprintf(stderr, "gcbench: the long-lived tree lost nodes\n");
        exit(1);
    }
    check = p->array_len / 2 - 1 < 1000 ? p->array_len / 2 - 1 : 1000;
    if (array[check] != 1.0 / check) {
        fprintf(stderr, "gcbench: the array changed\n");
        exit(1);
    }
}


static const char *vdb(void) {
    if (!GC_is_incremental_mode())
        return "none";
    return (GC_incremental_protection_needs() & GC_PROTECTS_POINTER_HEAP) ? "mprotect"
                                                                          : "soft-dirty";
}

static void usage(void) {
    fprintf(stderr, "usage: gcbench [-m HEAP_MIB] [-i] [-q]\n"
                    "  -m  cap the heap at HEAP_MIB and expand it to that up front\n"
                    "  -i  incremental (generational) mode: GC_enable_incremental()\n"
                    "  -q  the quick parameters instead of the classic ones\n");
    exit(2);
}

int main(int argc, char **argv) {
    const struct params *p = &CLASSIC;
    size_t heap_bytes = 0;
    int incremental = 0, c;
    unsigned version;
    size_t bytes0;
    GC_word gc_no0;
    double t0, cpu0, total, cpu;
    const struct bracket *pause;

    while ((c = getopt(argc, argv, "m:iq")) != -1) {
        switch (c) {
        case 'm':
            heap_bytes = (size_t)strtoul(optarg, NULL, 10) << 20;
            if (heap_bytes == 0)
                usage();
            break;
        case 'i':
            incremental = 1;
            break;
        case 'q':
            p = &QUICK;
            break;
        default:
            usage();
        }
    }
    if (optind != argc)
        usage();

    if (heap_bytes)
        GC_set_max_heap_size(heap_bytes);
    GC_INIT();
    if (incremental)
        GC_enable_incremental();
    if (heap_bytes && heap_bytes > GC_get_heap_size() &&
        !GC_expand_hp(heap_bytes - GC_get_heap_size())) {
        fprintf(stderr, "gcbench: GC_expand_hp refused to grow the heap to %zu bytes\n",
                heap_bytes);
        return 1;
    }

    GC_set_on_collection_event(on_collection_event);
    GC_set_start_callback(on_full_collection);
    gc_no0 = GC_get_gc_no();
    bytes0 = GC_get_total_bytes();
    t0 = now_ms(CLOCK_MONOTONIC);
    cpu0 = now_ms(CLOCK_PROCESS_CPUTIME_ID);
    run(p);
    total = now_ms(CLOCK_MONOTONIC) - t0;
    cpu = now_ms(CLOCK_PROCESS_CPUTIME_ID) - cpu0;
    GC_set_on_collection_event(0);
    GC_set_start_callback(0);
    pause = brackets[0].count ? &brackets[0] : &brackets[1];

    version = GC_get_version();
    printf("gcbench-c version=%u.%u.%u mode=%s heap=", version >> 16, (version >> 8) & 0xff,
           version & 0xff, GC_is_incremental_mode() ? "incremental" : "stw");
    if (heap_bytes)
        printf("%zuMiB", heap_bytes >> 20);
    else
        printf("default");
    printf(" total=%.1fms cpu=%.1fms stw=%.1fms cycles=%lu full=%lu pauses=%lu pause=%s "
           "heap_final=%.1fMiB allocs=%lu alloc_bytes=%zu vdb=%s protection_needs=%d "
           "time_limit=",
           total, cpu, pause->total, (unsigned long)(GC_get_gc_no() - gc_no0), full_collections,
           pause->count,
           pause == &brackets[0] ? "world-stop" : "collection",
           GC_get_heap_size() / 1048576.0, allocs, GC_get_total_bytes() - bytes0, vdb(),
           GC_incremental_protection_needs());
    if (GC_get_time_limit() == GC_TIME_UNLIMITED)
        printf("unlimited");
    else
        printf("%lums", GC_get_time_limit());
    printf(" full_freq=%d markers=%d free_space_divisor=%lu\n", GC_get_full_freq(), GC_get_parallel ? GC_get_parallel() + 1 : 1,
           (unsigned long)GC_get_free_space_divisor());
    return 0;
}
