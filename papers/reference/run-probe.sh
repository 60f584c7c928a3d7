#!/bin/sh
# Builds the C reference probe (probe.c) and runs it once, writing probe-<date>.md beside
# it: the commands, the compiler, the date, the load average before and after, and the
# probe's output. Arguments go to the probe (e.g. -q for a quick check, or section names).
# OUT_MD names the file written (default probe-<UTC date>.md).
#
#     papers/reference/run-probe.sh
set -eu
cd "$(dirname "$0")"

day=$(date -u +%Y-%m-%d)
out=${OUT_MD:-probe-$day.md}
tmp=$(mktemp)
trap 'rm -f "$tmp"' EXIT

# -B: always compile, so that the command that built this binary is the one recorded.
build=$(make -B probe 2>&1)
printf '%s\n' "$build"
cc_word=$(printf '%s\n' "$build" | grep -- ' -o probe ' | tail -n 1 | cut -d ' ' -f 1)
cc_path=$(command -v "$cc_word" || echo "$cc_word")
cc_version=$("$cc_word" --version | head -n 1)
source_sha=$(sha256sum probe.c | cut -d ' ' -f 1)

args=
for a in "$@"; do args="$args $a"; done

started=$(date -u '+%Y-%m-%d %H:%M:%S UTC')
load_before=$(uptime)
./probe "$@" >"$tmp"
load_after=$(uptime)
finished=$(date -u '+%Y-%m-%d %H:%M:%S UTC')

{
	echo "# The C reference probe: one run ($day)"
	echo
	echo "Written by \`run-probe.sh\`, which built \`probe.c\` (in this directory) and ran it once."
	echo "Rerun it with \`papers/reference/run-probe.sh\` (as root, for userfaultfd); your"
	echo "machine will differ. The machine here is shared with other work: the load averages"
	echo "below are the whole machine's. The probes one thread runs by itself count its CPU"
	echo "time, which leaves out waiting for a CPU; the pipe ping-pong and the uffd service-thread"
	echo "round trips count wall time, and on a loaded machine include waiting for the other"
	echo "thread to get a CPU (the cross-CPU figures most of all)."
	echo
	echo "- command: \`papers/reference/run-probe.sh$args\`, which runs, in \`papers/reference\`:"
	printf '%s\n' "$build" | sed 's/^/  - build: `/; s/$/`/'
	echo "  - run: \`./probe$args\`"
	echo "- compiler: \`$cc_word\` = \`$(readlink -f "$cc_path")\`: $cc_version"
	echo "- probe.c sha256: \`$source_sha\`"
	echo "- started: $started; finished: $finished"
	echo "- load before: \`$(echo "$load_before" | sed 's/^ *//')\`"
	echo "- load after: \`$(echo "$load_after" | sed 's/^ *//')\`"
	echo
	echo '```'
	cat "$tmp"
	echo '```'
} >"$out"
echo "wrote $out"
