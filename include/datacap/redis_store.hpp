// A page store on Redis: a standalone server or a Redis Cluster, shared by every node of a
// fleet (store.hpp has the PageStore contract this store follows).
//
// Content addressing makes a shared store safe to read from anywhere: every page a cap loads is
// checked against the root it was fetched by (PageStore does it), so a wrong or lost page is an
// IntegrityError or a Missing page, never wrong bytes.
//
// Keys. Pages live under "<prefix>p:<64 hex digits of the page root>" (the value: the page's
// bytes trimmed of trailing zeros, 0..4096 bytes), cap records under "<prefix>c:<hex cap root>"
// (the record of docs/format.md §3) (hex: a raw root could hold "{...}" and pick a hash slot by
// accident), spread over the cluster's slots by the key's CRC16 (the cluster specification's
// rule, applied exactly). Writes are SET NX: a key already present is left as it is. The
// save/gc lock lives under "<prefix>lock": a hash of leases kept by Lua scripts on the server —
// a save holds a shared lease, gc the exclusive one, a waiting gc blocks new shared leases (no
// starvation); leases last 15 s and are renewed every 5 s by a thread of the store holding
// them, so a crashed holder delays the others by 15 s at most (src/store/redis_store.cpp has
// the protocol in full).
//
// gc beside other writers: the lock keeps gc and saves apart across every process and machine,
// so a page a save wrote (or found present) is never swept before its record exists, and a
// record never names a page gc removed. put()/put_many() take no lock: gc may remove their
// pages, as PageStore says. Loads take no lock: a cap gc removes meanwhile loads as NotFound or
// with Missing pages. gc is not one transaction: it checks every kept root first (NotFound,
// nothing removed), then removes records, then pages; interrupted, it leaves only pages no
// record references. Nor is a batch of pages one transaction (keys live on several masters):
// a failed save leaves only unreferenced pages.
//
// Costs: a batch of pages is one pipeline per master (GET, EXISTS, SET NX per key; MGET would
// need one slot). page_count, list_caps, verify and gc SCAN every master for the prefix's keys:
// O(keys on the servers), with the roots found held in memory (page_count: O(pages); gc: the
// pages the kept caps reference).
//
// Errors: IoError naming the node ("host:port") when it cannot be reached, does not answer
// within a timeout, refuses authentication or answers with an error; DecodeError naming name()
// and the root for a stored value that cannot be a page (longer than 4096 bytes) or a record.
//
// Thread-safety: every member may be called from any number of threads at once. Connections
// are pooled per node; a call borrows one per node it talks to and closes it after any error.
// Signals: a server that closes a connection while it is written to raises SIGPIPE in the
// writer (hiredis writes with write(2)); the store blocks SIGPIPE on the calling thread during
// its calls, so the process is never killed by it. Not fork-safe: a child process opens its own
// store.
//
// Servers: Redis 5 or later (the lock's scripts write after TIME), with maxmemory-policy
// noeviction — eviction would drop pages (found Missing on load) or the lock (gc beside saves).
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>

#include "datacap/export.hpp"
#include "datacap/store.hpp"

namespace datacap {

struct RedisOptions {
  // Opening a TCP connection; a server that does not answer in time is an IoError. Positive.
  std::chrono::milliseconds connect_timeout{2000};
  // Each read or write of a command or pipelined batch; a server that stops answering (paused,
  // a network partition) is an IoError naming it after this long, never a hang. A command
  // timeout is not retried (a connect timeout is: the node may have been replaced). Positive.
  std::chrono::milliseconds command_timeout{10000};
  // Retries of commands the cluster asks to repeat (TRYAGAIN, CLUSTERDOWN, LOADING, a
  // connection lost, refused or timed out connecting during a failover), with a pause doubling
  // from retry_pause up to 2 s; then an IoError naming the node. Every command the store sends
  // is safe to repeat. MOVED and ASK redirects are followed without counting against it. At
  // most 1000; retry_pause not negative (InvalidArgument).
  unsigned max_retries = 8;
  std::chrono::milliseconds retry_pause{100};
  // Replicas that must acknowledge a save's pages and record before it returns (WAIT, per
  // master; a master with fewer replicas is waited for by those it has, a standalone server not
  // at all). Redis replicates asynchronously: without it, a master that dies right after a save
  // can take pages the save reported stored with it (a later load finds them Missing, never
  // wrong). Not a guarantee against every loss (a replica that was not the one promoted), but
  // it makes the common failover lossless. 0: do not wait.
  unsigned wait_replicas = 1;
  // Namespace of every key, so several stores share a server. No '{' or '}' (InvalidArgument).
  std::string key_prefix = "datacap:";
};

// Opens the store at `url`: "redis://[user[:password]@]host:port[,host:port...]" — one server,
// or seed nodes of a cluster (the cluster is detected with CLUSTER SLOTS and its slot map is
// refreshed on MOVED). "user:password@" authenticates with AUTH user password, ":password@"
// with AUTH password, on every connection; '%XX' escapes a character of either; the port
// defaults to 6379; hosts are IPv4 addresses or names. Throws InvalidArgument for a malformed
// URL, a key_prefix holding '{' or '}', or a timeout that is not positive; IoError (naming the
// node) when no seed can be reached or authentication fails. name() is the URL without its
// password. Starts one thread (lease renewal), stopped by the destructor.
[[nodiscard]] DATACAP_API std::unique_ptr<PageStore> open_redis_store(const std::string& url,
                                                                      RedisOptions options = {});

}  // namespace datacap
