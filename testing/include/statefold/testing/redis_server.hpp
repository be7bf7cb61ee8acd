#pragma once

// A private redis-server for tests and benchmarks: started from PATH on a free loopback port
// with its AOF in a directory the caller owns, killed (SIGKILL: a crash) and restarted on the
// same port and data, and always stopped and reaped by the destructor. It speaks to the
// server over a plain socket (PING, SHUTDOWN), so the test kit needs no Redis client library.

#include <sys/types.h>

#include <memory>
#include <string>
#include <vector>

#include "statefold/status.hpp"

namespace statefold::testing {

struct redis_server_options {
  std::string dir;                     ///< its AOF, log and output (required; must exist)
  bool appendonly = true;
  std::string appendfsync = "always";  ///< always | everysec | no
  int port = 0;                        ///< 0: a free loopback port
  std::vector<std::string> extra;      ///< more redis-server arguments ("--maxmemory", "10mb")
};

/// Sends one command to 127.0.0.1:`port` in RESP and returns the first line of the reply
/// ("+OK", ":3", "-ERR ...", "$5" for a bulk string), or "" when the server closed the
/// connection without one (SHUTDOWN). For tests that poke a server (FLUSHALL, SCRIPT FLUSH).
result<std::string> redis_command(int port, const std::vector<std::string>& argv, double timeout_s = 10);

class redis_server {
 public:
  /// Starts it and waits (up to 10 s) until it answers PING; an error carries its log's tail.
  static result<std::unique_ptr<redis_server>> start(redis_server_options o);
  ~redis_server();
  redis_server(const redis_server&) = delete;
  redis_server& operator=(const redis_server&) = delete;

  int port() const noexcept { return port_; }
  pid_t pid() const noexcept { return pid_; }
  bool running() const noexcept { return pid_ > 0; }
  /// "redis://127.0.0.1:<port>/<db>"
  std::string url(int db = 0) const;
  const std::string& dir() const noexcept { return o_.dir; }

  /// SHUTDOWN NOSAVE, then SIGTERM, then SIGKILL after 10 s; reaped. Idempotent.
  status stop();
  /// SIGKILL and reap: what a crash of the server looks like to its clients.
  void kill();
  /// Starts it again on the same port and directory (after kill() or stop()).
  status restart();
  /// The last bytes of its log and output, for messages.
  std::string log_tail() const;

 private:
  explicit redis_server(redis_server_options o) : o_(std::move(o)) {}
  status spawn();
  status wait_ready();
  bool reaped();
  bool wait_exit(double timeout_s);

  redis_server_options o_;
  pid_t pid_ = -1;
  int port_ = 0;
};

}  // namespace statefold::testing
