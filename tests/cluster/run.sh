#!/usr/bin/env bash
#
# End-to-end test of cluster mode on one machine: a coordinator host and three worker
# hosts (plus an intruder host), each its own network namespace, joined by a bridge that
# lives in a namespace of its own (10.200.0.0/24). Every process also runs in a private
# mount namespace where the other hosts' directories and the repo's data/ are hidden
# under empty read-only tmpfs mounts, so a worker cannot read the inputs (they must be
# streamed from the coordinator) nor another worker's map output (it must be fetched
# over the network), and the coordinator cannot read the workers' files.
#
# Scenarios (each a fresh job: --no-journal, R=10, a shared token in a token file):
#   wc           word count over the 8 books with 3 workers, output = mrsequential's
#   indexer      the same for the indexer (w3 also picks its data port with --data-addr)
#   lost-map     w1 alone runs all 8 maps and is killed with SIGKILL; a replacement on
#                the same host and w2, w3 finish; the lost maps are run again
#   wrong-token  a worker with another token (the intruder host) is refused and exits
#                at once; the job completes with the 3 good workers
#   plaintext    wc as above, every process with --insecure-plaintext (no TLS)
# The wc, indexer and plaintext jobs run under tcpdump on the bridge: with TLS no word of
# the inputs or outputs may appear in the capture; in plaintext they must (so that the
# check can fail).
# After each job: every process exited (workers with 0), no intermediate file is left on
# any host, the coordinator's host holds only its inputs, its token and out/mr-out-0..9,
# and the token appears in no log.
#
#   tests/cluster/run.sh                    all scenarios
#   tests/cluster/run.sh wc lost-map        only these scenarios
#   tests/cluster/run.sh --self-check       only the topology, connectivity, isolation and
#                                           cleanup checks (no mr binary needed)
#   tests/cluster/run.sh --keep ...         keep the temp dir (logs) even on success
#
# Environment: MR_TARGET (binaries, default target/release; built with cargo when
# missing), MR_CLUSTER_TIMEOUT (seconds per job, default 120), MR_CLUSTER_SELF_CHECK=1
# (same as --self-check), MR_CLUSTER_KEEP=1 (same as --keep), MR_CLUSTER_RUST_LOG
# (RUST_LOG for the processes; by default their own default, info).
#
# Needs root (namespaces, mounts); installs iproute2 and tcpdump with apt when missing.
# Prints PASS/FAIL per scenario and a final line; exits non-zero on any failure. Leaves
# no namespace, mount or process behind (the EXIT trap tears everything down and checks).
set -euo pipefail
cd "$(dirname "$0")"
ROOT=$(cd ../.. && pwd)

# The log texts this test depends on (keep in sync with the code).
LOG_COMPLETED='completed'                # coordinator, with task=map-N / task=reduce-N
LOG_RERUN='re-running the map'           # coordinator, a map re-run for lost output
LOG_AUTH_FAILED='authentication failed'  # coordinator, WARN with peer=IP:PORT
WORKER_TOKEN_WORD='token'                # worker's one-line message for a wrong token
TCPDUMP_READY='listening on'             # tcpdump's stderr once it captures

SELF_CHECK=${MR_CLUSTER_SELF_CHECK:-0}
KEEP=${MR_CLUSTER_KEEP:-0}
ALL_SCENARIOS=(wc indexer lost-map wrong-token plaintext sort)
SCENARIOS=()
for arg in "$@"; do
  case "$arg" in
    --self-check) SELF_CHECK=1 ;;
    --keep) KEEP=1 ;;
    -h | --help) sed -n '3,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "$0"; exit 0 ;;
    wc | indexer | lost-map | wrong-token | plaintext | sort) SCENARIOS+=("$arg") ;;
    *) echo "run.sh: unknown argument '$arg' (scenarios: ${ALL_SCENARIOS[*]}; --self-check, --keep)" >&2; exit 2 ;;
  esac
done
[ ${#SCENARIOS[@]} -gt 0 ] || SCENARIOS=("${ALL_SCENARIOS[@]}")

JOB_TIMEOUT=${MR_CLUSTER_TIMEOUT:-120}
# How long a worker may take to exit once the coordinator has; and the intruder in all.
EXIT_GRACE=20
INTRUDER_LIMIT=10
PORT=7777

die() { echo "run.sh: FAIL: $*" >&2; exit 1; }

#########################################################
# preconditions, loudly: never skip, never pass without running

[ "$(id -u)" -eq 0 ] ||
  die "must run as root: it creates network namespaces, a bridge and tmpfs mounts (try: sudo $0)"
if ! command -v ip >/dev/null; then
  echo "run.sh: installing iproute2 (for ip)"
  apt-get update -qq || die "apt-get update failed; install Debian's iproute2 package"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq iproute2 >/dev/null ||
    die "cannot install iproute2; install it by hand"
fi
if [ "$SELF_CHECK" != 1 ] && ! command -v tcpdump >/dev/null; then
  echo "run.sh: installing tcpdump (to check that the traffic is encrypted)"
  apt-get update -qq || die "apt-get update failed; install Debian's tcpdump package"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq tcpdump >/dev/null ||
    die "cannot install tcpdump; install it by hand"
fi
for tool in ip unshare mount timeout sed grep find sort cmp od; do
  command -v "$tool" >/dev/null || die "'$tool' is not installed"
done

#########################################################
# state and cleanup

ID="mrcl$$"            # unique per run: namespace names and the tmpfs source name
HOSTS=(coord w1 w2 w3 w4)
declare -A IP=([coord]=10.200.0.1 [w1]=10.200.0.11 [w2]=10.200.0.12 [w3]=10.200.0.13 [w4]=10.200.0.14)
NS_BRIDGE="$ID-br"
ns() { echo "$ID-$1"; }
COORD_ADDR="${IP[coord]}:$PORT"

NAMESPACES=()          # created so far, deleted by cleanup
PIDS=()                # background processes started (timeout wrappers)
TMP=""
failed_any=0

# Whether PID is a live process (a zombie is not).
alive() {
  local state
  state=$(sed 's/^.*) //' "/proc/$1/stat" 2>/dev/null | cut -d' ' -f1) || return 1
  [ -n "$state" ] && [ "$state" != Z ]
}

# Kills every process in our namespaces, then our own background processes, by pid.
# (stderr muted: bash would report each job killed by a signal.)
kill_all() {
  local n pid
  for n in "${NAMESPACES[@]}"; do
    for pid in $(ip netns pids "$n" 2>/dev/null); do
      kill -9 "$pid" 2>/dev/null || true
    done
  done
  for pid in "${PIDS[@]}"; do
    if alive "$pid"; then kill -9 "$pid" 2>/dev/null || true; fi
  done
  for pid in "${PIDS[@]}"; do
    wait "$pid" || true
  done
  PIDS=()
} 2>/dev/null

cleanup() {
  local rc=$? n i left=""
  trap - EXIT INT TERM
  set +e
  kill_all
  # Check that nothing is left: processes, namespaces, their mounts, our tmpfs mounts.
  for n in "${NAMESPACES[@]}"; do
    for i in $(seq 20); do
      [ -z "$(ip netns pids "$n" 2>/dev/null)" ] && break
      sleep 0.1
    done
    [ -z "$(ip netns pids "$n" 2>/dev/null)" ] || left+=" processes in $n:$(ip netns pids "$n" | tr '\n' ' ')"
  done
  for ((i = ${#NAMESPACES[@]} - 1; i >= 0; i--)); do
    ip netns delete "${NAMESPACES[i]}" 2>/dev/null || true
  done
  for n in "${NAMESPACES[@]}"; do
    if [ -e "/run/netns/$n" ] || ip netns list 2>/dev/null | grep "^$n\b" >/dev/null; then left+=" namespace:$n"; fi
  done
  if grep -qE "/run/netns/$ID-|(^| )$ID-hidden " /proc/self/mountinfo; then left+=" mounts"; fi
  if [ -n "$left" ]; then
    echo "run.sh: FAIL: cleanup left behind:$left" >&2
    rc=1
  fi
  if [ -n "$TMP" ] && [ -d "$TMP" ]; then
    if [ "$KEEP" != 1 ] && { [ "$rc" -eq 0 ] || [ -z "$(ls -A "$TMP/logs" 2>/dev/null)" ]; }; then
      rm -rf "$TMP"
    else
      rm -rf "$TMP/coord/in"   # the books are 3 MB; the logs are what matters
      echo "run.sh: logs kept in $TMP/logs"
    fi
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'echo "run.sh: interrupted" >&2; exit 130' INT
trap 'echo "run.sh: terminated" >&2; exit 143' TERM

#########################################################
# topology: one namespace per host, a bridge in its own namespace

# The first `ip netns add` doubles as the precondition check.
if ! err=$(ip netns add "$NS_BRIDGE" 2>&1); then
  die "cannot create a network namespace (ip netns add: $err); this test needs root with CAP_SYS_ADMIN and CAP_NET_ADMIN, not an unprivileged container"
fi
NAMESPACES+=("$NS_BRIDGE")
ip -n "$NS_BRIDGE" link set lo up
ip -n "$NS_BRIDGE" link add br0 type bridge
ip -n "$NS_BRIDGE" link set br0 up
for h in "${HOSTS[@]}"; do
  ip netns add "$(ns "$h")"
  NAMESPACES+=("$(ns "$h")")
  ip -n "$(ns "$h")" link set lo up
  # veth pair: "v-HOST" on the bridge, "eth0" in the host; neither touches the root namespace.
  ip -n "$NS_BRIDGE" link add "v-$h" type veth peer name eth0 netns "$(ns "$h")"
  ip -n "$NS_BRIDGE" link set "v-$h" master br0
  ip -n "$NS_BRIDGE" link set "v-$h" up
  ip -n "$(ns "$h")" addr add "${IP[$h]}/24" dev eth0
  ip -n "$(ns "$h")" link set eth0 up
done
echo "*** Topology: ${HOSTS[*]} in namespaces $ID-*, bridge in $NS_BRIDGE (10.200.0.0/24)"

#########################################################
# directories: one per host; only its own is visible to each host's processes

TMP=$(mktemp -d "${TMPDIR:-/tmp}/mr-cluster.XXXXXX")
LOGS=$TMP/logs
mkdir -p "$TMP/coord/in" "$LOGS" "$TMP/ref" "$TMP/results" "$TMP/cap"
BOOKS=("$ROOT"/data/pg-*.txt)
[ -f "${BOOKS[0]}" ] || die "no input books in $ROOT/data"
cp "${BOOKS[@]}" "$TMP/coord/in/"
INPUTS=()               # as the coordinator is given them, relative to coord/
for f in "${BOOKS[@]}"; do INPUTS+=("in/$(basename "$f")"); done

TOKEN=$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')
BAD_TOKEN=$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')
if [ ${#TOKEN} -ne 32 ] || [ "$TOKEN" = "$BAD_TOKEN" ]; then die "cannot make a token"; fi

# Fresh host dirs: coord/ keeps in/, gets its token; w1..w4 are emptied, get theirs
# (the intruder w4 gets a different token).
fresh_dirs() {
  local h
  find "$TMP/coord" -mindepth 1 -maxdepth 1 ! -name in -exec rm -rf {} +
  (umask 077 && echo "$TOKEN" >"$TMP/coord/token")
  for h in w1 w2 w3 w4; do
    rm -rf "${TMP:?}/$h"
    mkdir "$TMP/$h"
    if [ "$h" = w4 ]; then
      (umask 077 && echo "$BAD_TOKEN" >"$TMP/$h/token")
    else
      (umask 077 && echo "$TOKEN" >"$TMP/$h/token")
    fi
  done
}
fresh_dirs

# Sets ON_HOST to the command prefix that runs a command on host $1: in its network
# namespace, in a private mount namespace where every other directory of $TMP and the
# repo's data/ are covered by empty read-only tmpfs, with cwd its own dir. Each step
# execs, so the pid started is the command's pid (timeout -> ip -> unshare -> sh -> cmd).
ON_HOST=()
on_host() {
  local host=$1 d hide=()
  for d in "$TMP"/*/; do
    d=${d%/}
    [ "$d" = "$TMP/$host" ] || hide+=("$d")
  done
  if [ -d "$ROOT/data" ]; then hide+=("$ROOT/data"); fi
  # shellcheck disable=SC2016 # expanded by the inner sh
  ON_HOST=(ip netns exec "$(ns "$host")" unshare --mount --propagation private
    sh -c 'dir=$1; shift
           while [ "$1" != -- ]; do mount -t tmpfs -o ro,size=4k "$0-hidden" "$1" || exit 125; shift; done
           shift; cd "$dir" || exit 125; exec "$@"'
    "$ID" "$TMP/$host" "${hide[@]}" --)
}

#########################################################
# connectivity

# Succeeds when host $1 reaches host $2 (ping, else TCP through a perl listener).
reaches() {
  local from=$1 to=$2 i lpid ok=1
  if command -v ping >/dev/null; then
    for i in 1 2 3; do
      if ip netns exec "$(ns "$from")" ping -c1 -W1 "${IP[$to]}" >/dev/null 2>&1; then return 0; fi
    done
    return 1
  fi
  # shellcheck disable=SC2016 # perl's variables
  ip netns exec "$(ns "$to")" timeout 5 perl -MIO::Socket::INET -e '
    my $s = IO::Socket::INET->new(LocalAddr => $ARGV[0], LocalPort => 7000, Listen => 1, ReuseAddr => 1) or die "listen: $!";
    my $c = $s->accept or die; print $c "ok\n"; close $c;' "${IP[$to]}" &
  lpid=$!
  PIDS+=("$lpid")
  for i in $(seq 30); do
    # shellcheck disable=SC2016 # expanded by the inner bash
    if ip netns exec "$(ns "$from")" timeout 2 bash -c 'exec 3<>"/dev/tcp/$0/7000" && read -r l <&3 && [ "$l" = ok ]' "${IP[$to]}" 2>/dev/null; then
      ok=0
      break
    fi
    sleep 0.1
  done
  kill "$lpid" 2>/dev/null || true
  wait "$lpid" 2>/dev/null || true
  return "$ok"
}

if command -v ping >/dev/null || command -v perl >/dev/null; then
  how=$(command -v ping >/dev/null && echo "ping -c1 -W1" || echo "TCP (ping is not installed)")
  for pair in w1:coord w2:coord w3:coord w4:coord w1:w2 w2:w3 w3:w1 coord:w2; do
    reaches "${pair%:*}" "${pair#*:}" || die "host ${pair%:*} cannot reach ${pair#*:} (${IP[${pair#*:}]}) with $how"
  done
  echo "--- connectivity ($how): PASS"
else
  echo "--- connectivity: skipped (neither ping nor perl is installed); the jobs below test it"
fi
# The root namespace must not be on the test network.
if ip -o addr show 2>/dev/null | grep ' 10\.200\.0\.' >/dev/null; then
  die "the root namespace has an address in 10.200.0.0/24; the test network must stay isolated"
fi

#########################################################
# isolation: each host sees only its own directory

# Runs on host $1 a check that every path given after it is empty or missing, that its
# own dir holds its token and is writable, and that the hidden dirs are read-only.
# shellcheck disable=SC2016 # expanded by the inner sh
PROBE='fail=0
  for d in "$@"; do
    if [ -n "$(ls -A "$d" 2>/dev/null)" ]; then echo "visible from $PWD: $d"; fail=1; fi
  done
  [ -f token ] || { echo "own token missing in $PWD"; fail=1; }
  { touch probe && rm probe; } || { echo "$PWD is not writable"; fail=1; }
  if touch "$1/probe" 2>/dev/null; then echo "can write into hidden $1"; fail=1; fi
  exit $fail'
isolation_ok=1
for h in "${HOSTS[@]}"; do
  must_hide=()
  for o in "${HOSTS[@]}"; do [ "$o" = "$h" ] || must_hide+=("$TMP/$o"); done
  [ "$h" = coord ] || must_hide+=("$TMP/coord/in")
  must_hide+=("$LOGS" "$ROOT/data")
  on_host "$h"
  if ! out=$("${ON_HOST[@]}" sh -c "$PROBE" probe "${must_hide[@]}" 2>&1); then
    echo "--- isolation on $h: $out"
    isolation_ok=0
  fi
done
# The coordinator host sees its inputs.
on_host coord
n=$("${ON_HOST[@]}" sh -c 'ls in | wc -l' 2>&1) || n="error: $n"
if [ "$n" != "${#BOOKS[@]}" ]; then
  echo "--- isolation on coord: in/ shows $n files, not ${#BOOKS[@]}"
  isolation_ok=0
fi
# The hidden mounts stay inside each host's mount namespace, and `kill -9` of the pid we
# start hits the command itself (each step of ON_HOST execs).
on_host w1
timeout -k 2 30 "${ON_HOST[@]}" sleep 30 &
wrapper=$!
PIDS+=("$wrapper")
sleep 0.5
child=$(tr -d ' ' <"/proc/$wrapper/task/$wrapper/children" 2>/dev/null) || child=""
if [ -z "$child" ] || [ "$(readlink "/proc/$child/exe")" != "$(readlink -f "$(command -v sleep)")" ]; then
  echo "--- isolation: the process started on w1 is not the command itself (pid ${child:-none})"
  isolation_ok=0
fi
if grep -q " $ID-hidden " /proc/self/mountinfo; then
  echo "--- isolation: a host's hidden mounts leaked into the root mount namespace"
  isolation_ok=0
fi
if [ -n "$child" ] && ! grep -q " $ID-hidden " "/proc/$child/mountinfo"; then
  echo "--- isolation: the hidden mounts are missing on w1"
  isolation_ok=0
fi
rc=0
{ [ -z "$child" ] || kill -9 "$child"; wait "$wrapper" || rc=$?; } 2>/dev/null
if [ "$rc" -ne 137 ]; then
  echo "--- isolation: kill -9 of the command on w1 ended its timeout with $rc, not 137"
  isolation_ok=0
fi
[ "$isolation_ok" -eq 1 ] || die "the hosts are not isolated from each other (see above)"
echo "--- isolation (each host sees only its own dir; workers cannot see coord/in or data/): PASS"

if [ "$SELF_CHECK" = 1 ]; then
  echo '*** SELF-CHECK PASSED (topology, connectivity, isolation; cleanup is checked on exit)'
  exit 0
fi

#########################################################
# binaries and reference outputs

BIN=${MR_TARGET:-$ROOT/target/release}
NEEDED=(coordinator worker mrsequential libwc.so libindexer.so libsort.so gensort valsort)
missing() { local b; for b in "${NEEDED[@]}"; do [ -e "$BIN/$b" ] || return 0; done; return 1; }
if missing; then
  [ -z "${MR_TARGET:-}" ] || die "MR_TARGET=$MR_TARGET lacks one of: ${NEEDED[*]}"
  echo "*** Building (cargo build --release --workspace)"
  (cd "$ROOT" && cargo build --release --workspace --quiet) || die "build failed"
  missing && die "the build did not produce all of: ${NEEDED[*]} in $BIN"
fi
BIN=$(cd "$BIN" && pwd)

if [ -n "${MR_CLUSTER_RUST_LOG:-}" ]; then export RUST_LOG=$MR_CLUSTER_RUST_LOG; else unset RUST_LOG; fi
unset MR_TOKEN          # the token comes from the token files only

# Reference outputs, in the root namespace, with the input names the coordinator gets
# (the indexer's output names the documents).
for app in wc indexer; do
  (cd "$TMP/coord" && timeout "$JOB_TIMEOUT" "$BIN/mrsequential" --output "$TMP/ref/$app.out" "$BIN/lib$app.so" "${INPUTS[@]}") \
    >"$LOGS/ref-$app.log" 2>&1 || { cat "$LOGS/ref-$app.log"; die "mrsequential failed for $app"; }
  LC_ALL=C sort "$TMP/ref/$app.out" | grep . >"$TMP/ref/$app.sorted"
done
# Words that must not cross the network readably: 12 long words of the books (so they
# are in the inputs, the map output and the wc output), spread over the alphabet.
awk 'length($1) >= 9 && $1 ~ /^[A-Za-z]+$/ {print $1}' "$TMP/ref/wc.sorted" |
  awk 'NR % 97 == 0' | head -n 12 >"$TMP/ref/secret-words"
[ "$(wc -l <"$TMP/ref/secret-words")" -eq 12 ] || die "cannot pick 12 words of the books to look for"

#########################################################
# helpers for jobs

SCEN=""
SCEN_FAIL=0
SCEN_LOGS=()
fail() { echo "--- $SCEN: $*"; SCEN_FAIL=1; }
plain() { sed 's/\x1b\[[0-9;]*m//g' "$@"; }   # tracing without ANSI colours

# log_has FILE TEXT [TEXT2]: whether a line of FILE holds TEXT (and TEXT2). Never
# `... | grep -q` here: with pipefail, grep quitting early fails the writer (SIGPIPE).
log_has() {
  local n
  n=$({ plain "$1" | grep -F -- "$2" | grep -cF -- "${3:-$2}"; } 2>/dev/null) || true
  [ "${n:-0}" -gt 0 ]
}

# start NAME HOST LIMIT CMD...: runs CMD on HOST under `timeout LIMIT`, stdout and stderr
# to logs/SCEN-NAME.log; LAST_PID is the timeout's pid, whose only child is CMD.
LAST_PID=""
start() {
  local name=$1 host=$2 limit=$3
  shift 3
  on_host "$host"
  timeout -k 5 "$limit" "${ON_HOST[@]}" "$@" >"$LOGS/$SCEN-$name.log" 2>&1 &
  LAST_PID=$!
  PIDS+=("$LAST_PID")
  SCEN_LOGS+=("$LOGS/$SCEN-$name.log")
}

# Flags every process of the scenario gets (the plaintext scenario's --insecure-plaintext).
MODE=()
# The job's inputs (relative to coord/) and extra coordinator flags: the books by
# default; the sort scenario's records and --partition range. COORD_EXTRA: what else
# the scenario keeps in coord/.
JOB_INPUTS=("${INPUTS[@]}")
JOB_FLAGS=()
COORD_EXTRA=""

start_coordinator() {
  start coord coord "$JOB_TIMEOUT" "$BIN/coordinator" --addr "$COORD_ADDR" "${MODE[@]}" \
    --token-file "$TMP/coord/token" --output out --no-journal --reduce 10 "${JOB_FLAGS[@]}" "${JOB_INPUTS[@]}"
  COORD_PID=$LAST_PID
  COORD_LOG=$LOGS/$SCEN-coord.log
  local i
  for i in $(seq 100); do
    if ip netns exec "$(ns coord)" ss -Hltn "sport = :$PORT" 2>/dev/null | grep . >/dev/null; then return 0; fi
    alive "$COORD_PID" || { fail "the coordinator exited at start"; return 1; }
    sleep 0.1
  done
  fail "the coordinator is not listening on $COORD_ADDR after 10 s"
  return 1
}

# start_worker NAME HOST APP [WORKER FLAGS...]
start_worker() {
  local name=$1 host=$2 app=$3
  shift 3
  start "$name" "$host" "$JOB_TIMEOUT" "$BIN/worker" --coordinator "$COORD_ADDR" "${MODE[@]}" \
    --work-dir "$TMP/$host" --token-file "$TMP/$host/token" "$@" "$BIN/lib$app.so"
}

# Captures every packet on the bridge's ports (all the hosts' traffic) into
# cap/SCEN.pcap until stop_capture; returns once tcpdump says it is capturing.
CAP_PID=""
start_capture() {
  local i log=$LOGS/$SCEN-tcpdump.log
  CAP_FILE=$TMP/cap/$SCEN.pcap
  ip netns exec "$NS_BRIDGE" tcpdump -i any -U -s 0 -w "$CAP_FILE" >"$log" 2>&1 &
  CAP_PID=$!
  PIDS+=("$CAP_PID")
  for ((i = 0; i < 100; i++)); do
    log_has "$log" "$TCPDUMP_READY" && return 0
    alive "$CAP_PID" || break
    sleep 0.1
  done
  fail "tcpdump did not start capturing: $(tail -n 2 "$log")"
  return 1
}

stop_capture() {
  kill -INT "$CAP_PID" 2>/dev/null || true
  wait "$CAP_PID" 2>/dev/null || true
}

# How many of the secret words appear anywhere in the capture.
words_in_capture() {
  # (grep finding nothing fails the pipeline; wc still says 0)
  { grep -aoF -f "$TMP/ref/secret-words" "$CAP_FILE" | sort -u | wc -l; } 2>/dev/null || true
}

# check_capture encrypted|plaintext: with TLS none of the words may appear; in
# plaintext every one must (or the check itself is blind).
check_capture() {
  local n size
  n=$(words_in_capture)
  size=$(stat -c %s "$CAP_FILE" 2>/dev/null || echo 0)
  [ "$size" -gt 100000 ] || fail "the capture holds only $size bytes: tcpdump saw no job"
  if [ "$1" = encrypted ]; then
    [ "$n" -eq 0 ] || fail "$n of 12 words of the books appear in the capture of a TLS job"
    echo "    capture: $((size / 1024)) KiB on the bridge, 0 of 12 book words readable"
  else
    [ "$n" -eq 12 ] || fail "only $n of 12 words of the books appear in the plaintext capture: the check cannot see"
    echo "    capture: $((size / 1024)) KiB on the bridge, all 12 book words readable (plaintext)"
  fi
}

# wait_exit PID DEADLINE: waits until $SECONDS reaches DEADLINE for PID to end; RC is
# its status. Fails (RC empty) if it is still running.
RC=""
wait_exit() {
  local pid=$1
  RC=""
  while [ "$SECONDS" -lt "$2" ]; do
    alive "$pid" || break
    sleep 0.1
  done
  alive "$pid" && return 1
  RC=0
  wait "$pid" 2>/dev/null || RC=$?
}

# Distinct map (or reduce) tasks the coordinator logged as completed.
completed() {
  { plain "$COORD_LOG" | grep -F "$LOG_COMPLETED" | grep -oE "task=$1-[0-9]+" | sort -u | wc -l; } || true
}

# Waits for the coordinator (bounded by its timeout), then for each worker NAME=PID
# given, which must exit with 0 within EXIT_GRACE seconds.
finish_job() {
  local rc=0 w deadline
  wait "$COORD_PID" || rc=$?
  deadline=$((SECONDS + EXIT_GRACE))
  case $rc in
    0) ;;
    124 | 137) fail "the coordinator did not finish within $JOB_TIMEOUT s" ;;
    *) fail "the coordinator exited with status $rc" ;;
  esac
  for w in "$@"; do
    if ! wait_exit "${w#*=}" "$deadline"; then
      fail "worker ${w%%=*} still running $EXIT_GRACE s after the coordinator exited"
    elif [ "$RC" -ne 0 ]; then
      fail "worker ${w%%=*} exited with status $RC"
    fi
  done
}

check_output() {
  local app=$1 got=$TMP/results/$SCEN.sorted
  if ! compgen -G "$TMP/coord/out/mr-out-*" >/dev/null; then
    fail "no output in coord/out"
    return
  fi
  LC_ALL=C sort "$TMP"/coord/out/mr-out-* | grep . >"$got" || true
  if cmp -s "$got" "$TMP/ref/$app.sorted"; then
    echo "    output equals mrsequential's ($(wc -l <"$got") lines)"
  else
    fail "output differs from mrsequential's ($got vs $TMP/ref/$app.sorted):"
    diff "$got" "$TMP/ref/$app.sorted" | head -n 10 || true
  fi
}

# After every job, before anything is killed: no process left on any host.
check_no_processes() {
  local h pid left=""
  for h in "${HOSTS[@]}"; do
    for pid in $(ip netns pids "$(ns "$h")" 2>/dev/null); do
      left+=" $h:$pid($(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | cut -c1-80))"
    done
  done
  [ -z "$left" ] || fail "processes still running after the job:$left"
}

# After every job (once its processes are gone): no intermediate file on any host,
# coord/ holds only in/, its token and out/ with exactly mr-out-0..9; no token in logs;
# no authentication failure but the intruder's.
check_after_job() {
  local found want got
  found=$(cd "$TMP" && find w1 w2 w3 w4 \( -name 'mr-*-*' -o -name 'mr-*.data' -o -name 'mr-shuffle-*' \) -print | head -n 20) || true
  [ -z "$found" ] || fail "intermediate files left on the worker hosts: $(echo "$found" | tr '\n' ' ')"
  got=$(entries "$TMP/coord")
  want="in out ${COORD_EXTRA}token "
  [ "$got" = "$want" ] || fail "coord/ holds [$got], not [$want]"
  want=$(for i in $(seq 0 9); do echo "mr-out-$i"; done | LC_ALL=C sort | tr '\n' ' ')
  got=$(entries "$TMP/coord/out")
  [ "$got" = "$want" ] || fail "coord/out holds [$got], not exactly mr-out-0..9"
  found=$(entries "$TMP/coord/in" | wc -w)
  [ "$found" -eq "${#BOOKS[@]}" ] || fail "coord/in holds $found files, not the ${#BOOKS[@]} books"
  found=$(grep -lF -e "$TOKEN" -e "$BAD_TOKEN" "$LOGS"/* 2>/dev/null || true)
  [ -z "$found" ] || fail "a token appears in the logs: $found"
  found=$(for f in "${SCEN_LOGS[@]}"; do case $f in *-intruder.log) ;; *) plain "$f" 2>/dev/null ;; esac; done |
    grep -F "$LOG_AUTH_FAILED" | grep -vF "peer=${IP[w4]}:" || true)
  [ -z "$found" ] || fail "unexpected authentication failures: $(echo "$found" | head -n 3)"
}

# The names in directory $1, sorted, on one line, each followed by a space.
entries() {
  { find "$1" -mindepth 1 -maxdepth 1 -printf '%f\n' 2>/dev/null | LC_ALL=C sort | tr '\n' ' '; } || true
}

show_logs() {
  local f
  for f in "${SCEN_LOGS[@]}"; do
    [ -f "$f" ] || continue
    echo "    ---- tail of ${f#"$TMP"/}"
    tail -n 25 "$f" | sed 's/^/    /'
  done
}

run_scenario() {
  SCEN=$1
  SCEN_FAIL=0
  SCEN_LOGS=()
  echo "*** Starting $SCEN test."
  MODE=()
  JOB_INPUTS=("${INPUTS[@]}")
  JOB_FLAGS=()
  COORD_EXTRA=""
  fresh_dirs
  "scenario_${SCEN//-/_}" || SCEN_FAIL=1
  check_no_processes || SCEN_FAIL=1
  kill_all
  check_after_job || SCEN_FAIL=1
  if [ "$SCEN_FAIL" -eq 0 ]; then
    echo "--- $SCEN test: PASS"
  else
    echo "--- $SCEN test: FAIL"
    show_logs
    failed_any=1
  fi
}

#########################################################
# scenarios

# three_workers APP [FLAGS...]: a job over the books with w1, w2, w3 (FLAGS for w3).
three_workers() {
  local app=$1
  shift
  start_coordinator || return 1
  start_worker w1 w1 "$app"; local p1=$LAST_PID
  start_worker w2 w2 "$app"; local p2=$LAST_PID
  start_worker w3 w3 "$app" "$@"; local p3=$LAST_PID
  finish_job "w1=$p1" "w2=$p2" "w3=$p3"
  check_output "$app"
}

scenario_wc() {
  start_capture || return 1
  three_workers wc
  stop_capture
  check_capture encrypted
}

scenario_indexer() {
  start_capture || return 1
  three_workers indexer --data-addr "0.0.0.0:7070"
  stop_capture
  check_capture encrypted
}

scenario_plaintext() {
  MODE=(--insecure-plaintext)
  start_capture || return 1
  three_workers wc
  stop_capture
  check_capture plaintext
  log_has "$COORD_LOG" "insecure-plaintext" || fail "the coordinator did not warn about --insecure-plaintext"
}

scenario_lost_map() {
  local i a y child n_reduce p1 p2 p3 hold=$TMP/w1/hold held=""
  start_coordinator || return 1
  # w1 must not finish the reduces before it is killed: the worker's test hook holds the
  # first attempt of each reduce while a file named for it exists in the hold directory
  # (writing NAME.held when it starts holding), so w1 runs every map, then holds the
  # first reduce it gets until it is killed.
  mkdir -p "$hold"
  for y in $(seq 0 9); do : >"$hold/reduce-$y.1"; done
  start_worker w1-first w1 wc --hold-dir "$hold"
  a=$LAST_PID
  for ((i = 0; i < JOB_TIMEOUT * 20; i++)); do
    held=$(compgen -G "$hold/reduce-*.1.held" || true)
    [ "$(completed map)" -ge "${#INPUTS[@]}" ] && [ -n "$held" ] && break
    alive "$a" || break
    alive "$COORD_PID" || break
    sleep 0.05
  done
  if [ "$(completed map)" -lt "${#INPUTS[@]}" ] || [ -z "$held" ]; then
    fail "w1 did not run ${#INPUTS[@]} maps (saw $(completed map)) and hold a reduce (${held:-none held})"
    return 1
  fi
  child=$(tr -d ' ' <"/proc/$a/task/$a/children" 2>/dev/null) || child=""
  if [ -z "$child" ] || ! tr '\0' '\n' <"/proc/$child/cmdline" | grep -xF "$BIN/worker" >/dev/null; then
    fail "cannot find w1's worker process (child of $a: '${child:-none}')"
    return 1
  fi
  { kill -9 "$child"; wait "$a"; } 2>/dev/null
  rm -rf "$hold"
  n_reduce=$(completed reduce)
  echo "    killed w1 (SIGKILL) after ${#INPUTS[@]} maps and $n_reduce reduces"
  if [ "$n_reduce" -ge 10 ] || ! alive "$COORD_PID"; then
    fail "the job ended before w1 was killed: nothing was lost, the scenario did not happen"
  fi
  # Its map output was on its disk only (and is now unreachable with it): one packed
  # mr-X.data per map (mr::packed).
  if ! (cd "$TMP/w1" && compgen -G 'mr-shuffle-*/mr-*.data' >/dev/null); then
    fail "no map output in w1/mr-shuffle-*/ after the kill"
  fi
  start_worker w1-second w1 wc; p1=$LAST_PID
  start_worker w2 w2 wc; p2=$LAST_PID
  start_worker w3 w3 wc; p3=$LAST_PID
  finish_job "w1-second=$p1" "w2=$p2" "w3=$p3"
  check_output wc
  log_has "$COORD_LOG" "$LOG_RERUN" || fail "the coordinator log has no '$LOG_RERUN'"
}

scenario_wrong_token() {
  local i p1 p2 p3 intruder started log=$LOGS/wrong-token-intruder.log
  start_coordinator || return 1
  # The intruder first, so it meets a running job; the good workers once it was refused.
  started=$SECONDS
  start intruder w4 "$INTRUDER_LIMIT" "$BIN/worker" --coordinator "$COORD_ADDR" \
    --work-dir "$TMP/w4" --token-file "$TMP/w4/token" "$BIN/libwc.so"
  intruder=$LAST_PID
  for ((i = 0; i < INTRUDER_LIMIT * 10; i++)); do
    log_has "$COORD_LOG" "$LOG_AUTH_FAILED" "peer=${IP[w4]}:" && break
    sleep 0.1
  done
  start_worker w1 w1 wc; p1=$LAST_PID
  start_worker w2 w2 wc; p2=$LAST_PID
  start_worker w3 w3 wc; p3=$LAST_PID
  if ! wait_exit "$intruder" "$((started + INTRUDER_LIMIT + 6))"; then
    fail "the intruder is still running"
  elif [ "$RC" -eq 124 ] || [ "$RC" -eq 137 ]; then
    fail "the intruder did not exit within $INTRUDER_LIMIT s"
  elif [ "$RC" -eq 0 ]; then
    fail "the intruder exited with status 0"
  else
    grep -qiF "$WORKER_TOKEN_WORD" "$log" || fail "the intruder's message does not mention the token: $(tail -n 2 "$log")"
    echo "    intruder exited with status $RC: $(grep -iF "$WORKER_TOKEN_WORD" "$log" | tail -n 1 | cut -c1-160)"
  fi
  log_has "$COORD_LOG" "$LOG_AUTH_FAILED" "peer=${IP[w4]}:" ||
    fail "the coordinator log has no '$LOG_AUTH_FAILED' line with peer=${IP[w4]}:PORT"
  finish_job "w1=$p1" "w2=$p2" "w3=$p3"
  check_output wc
}

# A total-order sort of gensort records over the network: range partitioning (sample
# tasks first, split points in every map assignment), splits streamed from the
# coordinator, map output shuffled between the workers over TLS, the outputs sent back;
# valsort checks order across mr-out-0..9, the count and the checksum of every record.
scenario_sort() {
  local i p1 p2 p3 out=()
  mkdir -p "$TMP/coord/sortin"
  JOB_INPUTS=()
  for i in 0 1 2 3; do
    "$BIN/gensort" -a -b $((i * 25000)) --skew 25000 "$TMP/coord/sortin/part-$i.dat" ||
      { fail "gensort failed"; return 1; }
    JOB_INPUTS+=("sortin/part-$i.dat")
  done
  JOB_FLAGS=(--partition range --split-size 1MiB)
  COORD_EXTRA="sortin "
  start_coordinator || return 1
  start_worker w1 w1 sort; p1=$LAST_PID
  start_worker w2 w2 sort; p2=$LAST_PID
  start_worker w3 w3 sort; p3=$LAST_PID
  finish_job "w1=$p1" "w2=$p2" "w3=$p3"
  for i in $(seq 0 9); do out+=("$TMP/coord/out/mr-out-$i"); done
  local inputs=()
  for i in "${JOB_INPUTS[@]}"; do inputs+=(--input "$TMP/coord/$i"); done
  if "$BIN/valsort" "${inputs[@]}" "${out[@]}" >"$LOGS/sort-valsort.log" 2>&1; then
    echo "    valsort: $(tr '\n' ' ' <"$LOGS/sort-valsort.log" | cut -c1-160)"
  else
    fail "valsort: $(cat "$LOGS/sort-valsort.log")"
  fi
}

for s in "${SCENARIOS[@]}"; do
  run_scenario "$s"
done

if [ "$failed_any" -eq 0 ]; then
  echo '*** PASSED ALL TESTS'
else
  echo '*** FAILED SOME TESTS'
  exit 1
fi
