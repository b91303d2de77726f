#!/usr/bin/env bash
# Starts or stops the Redis servers the Redis tests run against (cmake/redis_tests.cmake), all
# on loopback, all state under DIR:
#   - a standalone server, no password                     DATACAP_REDIS_URL
#   - a standalone server with a password for the default user (requirepass) and an ACL user
#     "datacap"                                            DATACAP_REDIS_AUTH_URL (the ACL user),
#                                                          DATACAP_REDIS_PASS_URL (requirepass)
#   - a cluster of 3 masters and 3 replicas                DATACAP_REDIS_CLUSTER_URL (every master
#                                                          and replica as seeds)
# The URLs are written to DIR/urls.env (KEY=value lines) once every server answers and the
# cluster reports cluster_state:ok on every node.
#
# Usage: scripts/redis-servers.sh start DIR   (a no-op when DIR's servers already answer)
#        scripts/redis-servers.sh stop DIR    (a no-op when DIR does not exist)
#
# Ports are probed free (the port and, for cluster nodes, its bus port +10000) from a random
# base, so two runs at once do not collide. Nothing is persisted (--save "" --appendonly no).
# `stop` shuts each server down (SHUTDOWN NOSAVE), then kills what is left by the pid in its pid
# file (only when that pid is still a redis-server), then removes DIR: no process stays behind.
set -euo pipefail

usage() {
  echo "usage: $0 start|stop DIR" >&2
  exit 2
}
[[ $# -eq 2 ]] || usage
action=$1
dir=$2
[[ -n "$dir" && "$dir" != "/" ]] || usage

# The passwords of the test servers: loopback only, gone with DIR.
readonly REQUIREPASS="datacap-requirepass"
readonly ACL_USER="datacap"
readonly ACL_PASS="datacap-acl-pass"

# Whether nothing listens on 127.0.0.1:$1 (a bind test; a connect test would miss a port in
# TIME_WAIT that redis-server then fails to bind).
port_free() {
  python3 - "$1" <<'EOF'
import socket, sys
s = socket.socket()
try:
    s.bind(("127.0.0.1", int(sys.argv[1])))
except OSError:
    sys.exit(1)
finally:
    s.close()
EOF
}

# Picks `count` free ports (each with its cluster bus port +10000 free too) from a random base.
pick_ports() {
  local count=$1 port=$((20000 + RANDOM % 20000)) found=()
  while [[ ${#found[@]} -lt $count ]]; do
    if port_free "$port" && port_free $((port + 10000)); then found+=("$port"); fi
    port=$((port + 1))
    [[ $port -lt 45000 ]] || port=20000
  done
  echo "${found[@]}"
}

# redis-cli against one of DIR's servers, authenticating when that server has a password.
cli() {
  local port=$1
  shift
  if [[ -f "$dir/node-$port/password" ]]; then
    REDISCLI_AUTH=$(cat "$dir/node-$port/password") timeout 10 redis-cli -p "$port" "$@"
  else
    timeout 10 redis-cli -p "$port" "$@"
  fi
}

# Starts one daemonized server in DIR/node-PORT with the given extra arguments.
start_server() {
  local port=$1
  shift
  local node="$dir/node-$port"
  mkdir -p "$node"
  redis-server --port "$port" --bind 127.0.0.1 --daemonize yes --dir "$node" \
    --pidfile "$node/redis.pid" --logfile "$node/redis.log" --save "" --appendonly no "$@"
}

# Waits until every server in DIR answers PING (10 s at most).
wait_ping() {
  local port
  for port in "$@"; do
    for _ in $(seq 100); do
      if [[ "$(cli "$port" ping 2>/dev/null)" == "PONG" ]]; then continue 2; fi
      sleep 0.1
    done
    echo "redis-servers: 127.0.0.1:$port does not answer" >&2
    return 1
  done
}

stop_all() {
  [[ -d "$dir" ]] || return 0
  local node port pid
  for node in "$dir"/node-*; do
    [[ -d "$node" ]] || continue
    port=${node##*/node-}
    cli "$port" shutdown nosave >/dev/null 2>&1 || true
  done
  for node in "$dir"/node-*; do
    [[ -f "$node/redis.pid" ]] || continue
    pid=$(cat "$node/redis.pid")
    for _ in $(seq 50); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
    # Still there: kill it, but only if that pid is still one of our redis-servers.
    if kill -0 "$pid" 2>/dev/null && grep -q redis-server "/proc/$pid/cmdline" 2>/dev/null; then
      kill -9 "$pid" 2>/dev/null || true
    fi
  done
  rm -rf "$dir"
}

already_running() {
  [[ -f "$dir/urls.env" && -f "$dir/ports" ]] || return 1
  local port ports
  read -r -a ports <"$dir/ports"
  for port in "${ports[@]}"; do
    [[ "$(cli "$port" ping 2>/dev/null)" == "PONG" ]] || return 1
  done
}

start_all() {
  if already_running; then
    echo "redis-servers: already running in $dir"
    return 0
  fi
  stop_all  # what a failed or interrupted start left
  mkdir -p "$dir"
  trap 'echo "redis-servers: start failed, stopping what started" >&2; stop_all' ERR
  local ports
  read -r -a ports <<<"$(pick_ports 8)"
  echo "${ports[*]}" >"$dir/ports"
  local plain=${ports[0]} auth=${ports[1]}
  local cluster=("${ports[@]:2:6}")

  start_server "$plain"
  mkdir -p "$dir/node-$auth"
  echo "$REQUIREPASS" >"$dir/node-$auth/password"  # read by cli(), to stop it
  start_server "$auth" --requirepass "$REQUIREPASS" \
    --user "$ACL_USER" on ">$ACL_PASS" "~*" "&*" "+@all"
  local port
  for port in "${cluster[@]}"; do
    start_server "$port" --cluster-enabled yes --cluster-config-file "$dir/node-$port/nodes.conf" \
      --cluster-node-timeout 5000 --cluster-replica-validity-factor 0
  done
  wait_ping "${ports[@]}"

  local seeds=()
  for port in "${cluster[@]}"; do seeds+=("127.0.0.1:$port"); done
  timeout 60 redis-cli --cluster create "${seeds[@]}" --cluster-replicas 1 --cluster-yes >"$dir/cluster-create.log"
  for port in "${cluster[@]}"; do
    for _ in $(seq 300); do
      if cli "$port" cluster info 2>/dev/null | grep -q '^cluster_state:ok'; then continue 2; fi
      sleep 0.1
    done
    echo "redis-servers: the cluster is not ok on 127.0.0.1:$port after 30 s" >&2
    false
  done
  # Every replica has copied its master (a failover test that kills a master at once needs a
  # replica with the data; replicas also never give up failing over: validity factor 0).
  local synced=0
  for _ in $(seq 300); do
    synced=0
    for port in "${cluster[@]}"; do
      if cli "$port" info replication 2>/dev/null | grep -q '^master_link_status:up'; then
        synced=$((synced + 1))
      fi
    done
    [[ $synced -lt 3 ]] || break
    sleep 0.1
  done
  if [[ $synced -lt 3 ]]; then
    echo "redis-servers: $synced of 3 replicas synchronized after 30 s" >&2
    false
  fi

  local seed_list
  seed_list=$(
    IFS=,
    echo "${seeds[*]}"
  )
  cat >"$dir/urls.env.tmp" <<EOF
DATACAP_REDIS_URL=redis://127.0.0.1:$plain
DATACAP_REDIS_AUTH_URL=redis://$ACL_USER:$ACL_PASS@127.0.0.1:$auth
DATACAP_REDIS_PASS_URL=redis://:$REQUIREPASS@127.0.0.1:$auth
DATACAP_REDIS_CLUSTER_URL=redis://$seed_list
EOF
  mv "$dir/urls.env.tmp" "$dir/urls.env"
  trap - ERR
  echo "redis-servers: started in $dir"
  cat "$dir/urls.env"
}

case "$action" in
  start) start_all ;;
  stop) stop_all ;;
  *) usage ;;
esac
