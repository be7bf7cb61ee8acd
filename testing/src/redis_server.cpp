#include "statefold/testing/redis_server.hpp"

#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <fstream>
#include <sstream>
#include <thread>

extern char** environ;

namespace statefold::testing {
namespace {

double now_s() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

std::string tail_of(const std::string& path, std::size_t max) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return {};
  std::stringstream ss;
  ss << in.rdbuf();
  std::string s = ss.str();
  return s.size() > max ? s.substr(s.size() - max) : s;
}

result<int> free_loopback_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return status(errc::io_error, std::string("socket(): ") + std::strerror(errno));
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof a;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 ||
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) != 0) {
    const int err = errno;
    ::close(fd);
    return status(errc::io_error, std::string("picking a free port on 127.0.0.1: ") + std::strerror(err));
  }
  ::close(fd);
  return static_cast<int>(ntohs(a.sin_port));
}

// Sends one command in RESP and returns the first line of the reply ("" when the server
// closed the connection without one, as SHUTDOWN does). No Redis client library needed.
result<std::string> resp_command(int port, const std::vector<std::string>& argv, double timeout_s) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return status(errc::io_error, std::string("socket(): ") + std::strerror(errno));
  struct closer {
    int fd;
    ~closer() { ::close(fd); }
  } close_fd{fd};
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = htons(static_cast<uint16_t>(port));
  if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0)
    return status(errc::io_error, "connect to 127.0.0.1:" + std::to_string(port) + ": " + std::strerror(errno));
  std::string req = "*" + std::to_string(argv.size()) + "\r\n";
  for (const auto& s : argv) req += "$" + std::to_string(s.size()) + "\r\n" + s + "\r\n";
  if (::send(fd, req.data(), req.size(), MSG_NOSIGNAL) != static_cast<ssize_t>(req.size()))
    return status(errc::io_error, std::string("send: ") + std::strerror(errno));
  std::string got;
  const double deadline = now_s() + timeout_s;
  while (got.find("\r\n") == std::string::npos) {
    pollfd p{fd, POLLIN, 0};
    const int ms = static_cast<int>((deadline - now_s()) * 1000);
    if (ms <= 0 || ::poll(&p, 1, ms) <= 0) return status(errc::io_error, "no reply within the timeout");
    char buf[512];
    const ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    if (n == 0) return std::string();  // closed
    if (n < 0) return status(errc::io_error, std::string("recv: ") + std::strerror(errno));
    got.append(buf, static_cast<std::size_t>(n));
  }
  return got.substr(0, got.find("\r\n"));
}

}  // namespace

result<std::string> redis_command(int port, const std::vector<std::string>& argv, double timeout_s) {
  return resp_command(port, argv, timeout_s);
}

result<std::unique_ptr<redis_server>> redis_server::start(redis_server_options o) {
  if (o.dir.empty()) return status(errc::invalid_argument, "redis_server: options.dir is required");
  std::unique_ptr<redis_server> s(new redis_server(std::move(o)));
  status last;
  for (int attempt = 0; attempt < 3; ++attempt) {  // another process may take a free port first
    if (s->o_.port != 0) s->port_ = s->o_.port;
    else {
      SF_ASSIGN_OR_RETURN(s->port_, free_loopback_port());
    }
    last = s->spawn();
    if (last.is_ok()) return s;
    if (s->o_.port != 0) break;
  }
  return last;
}

redis_server::~redis_server() { ignore(stop()); }

std::string redis_server::url(int db) const {
  return "redis://127.0.0.1:" + std::to_string(port_) + "/" + std::to_string(db);
}

status redis_server::spawn() {
  const std::string port_s = std::to_string(port_);
  std::vector<std::string> args = {"redis-server", "--port", port_s, "--bind", "127.0.0.1",
                                   "--dir", o_.dir, "--appendonly", o_.appendonly ? "yes" : "no",
                                   "--appendfsync", o_.appendfsync, "--save", "",
                                   "--daemonize", "no", "--protected-mode", "no",
                                   "--logfile", o_.dir + "/redis.log"};
  args.insert(args.end(), o_.extra.begin(), o_.extra.end());
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  const std::string out = o_.dir + "/redis.stdout";
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_addopen(&fa, 1, out.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
  posix_spawn_file_actions_adddup2(&fa, 1, 2);
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  sigset_t none, defaults;
  sigemptyset(&none);
  sigemptyset(&defaults);
  sigaddset(&defaults, SIGPIPE);
  posix_spawnattr_setsigmask(&attr, &none);
  posix_spawnattr_setsigdefault(&attr, &defaults);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
  pid_t pid = -1;
  const int rc = posix_spawnp(&pid, "redis-server", &fa, &attr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&fa);
  posix_spawnattr_destroy(&attr);
  if (rc != 0)
    return status(errc::io_error, std::string("posix_spawnp(redis-server): ") + std::strerror(rc) +
                                      " (is redis-server on PATH? apt-get install redis-server)");
  pid_ = pid;
  return wait_ready();
}

status redis_server::wait_ready() {
  const double deadline = now_s() + 10;
  std::string last = "no attempt";
  while (now_s() < deadline) {
    if (reaped())
      return status(errc::io_error, "redis-server on port " + std::to_string(port_) +
                                        " exited before answering PING; " + log_tail());
    auto r = resp_command(port_, {"PING"}, 1.0);
    if (r && *r == "+PONG") return status::ok();
    last = r ? *r : r.error().message();
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  kill();
  return status(errc::io_error, "redis-server on port " + std::to_string(port_) +
                                    " did not answer PING within 10 s (" + last + "); " + log_tail());
}

bool redis_server::reaped() {
  if (pid_ <= 0) return true;
  int ws = 0;
  const pid_t r = ::waitpid(pid_, &ws, WNOHANG);
  if (r == pid_ || (r < 0 && errno == ECHILD)) {
    pid_ = -1;
    return true;
  }
  return false;
}

bool redis_server::wait_exit(double timeout_s) {
  const double deadline = now_s() + timeout_s;
  while (!reaped()) {
    if (now_s() > deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return true;
}

status redis_server::stop() {
  if (pid_ <= 0) return status::ok();
  auto r = resp_command(port_, {"SHUTDOWN", "NOSAVE"}, 10.0);
  if (!r || (!r->empty() && (*r)[0] == '-')) ::kill(pid_, SIGTERM);
  if (wait_exit(10)) return status::ok();
  kill();
  return status(errc::failed, "redis-server on port " + std::to_string(port_) +
                                  " did not exit within 10 s of SHUTDOWN NOSAVE / SIGTERM and was killed; " +
                                  log_tail());
}

void redis_server::kill() {
  if (pid_ <= 0) return;
  ::kill(pid_, SIGKILL);
  int ws = 0;
  ::waitpid(pid_, &ws, 0);
  pid_ = -1;
}

status redis_server::restart() {
  if (pid_ > 0) SF_RETURN_IF_ERROR(stop());
  // The port may linger for a moment after a kill: retry for a while.
  status last;
  for (int attempt = 0; attempt < 20; ++attempt) {
    last = spawn();
    if (last.is_ok()) return last;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  return last;
}

std::string redis_server::log_tail() const {
  const std::string log = tail_of(o_.dir + "/redis.log", 1500);
  const std::string out = tail_of(o_.dir + "/redis.stdout", 500);
  std::string msg = "tail of " + o_.dir + "/redis.log:\n" + (log.empty() ? "(empty)\n" : log);
  if (!out.empty()) msg += "tail of " + o_.dir + "/redis.stdout:\n" + out;
  return msg;
}

}  // namespace statefold::testing
