// http_open_loop: an open-loop, rate-controlled HTTP load generator for POST /events.
//
//   http_open_loop HOST:PORT RATE_REQUESTS_PER_S SECONDS EVENTS_PER_REQUEST [CONNECTIONS]
//
// Each connection (keep-alive, its own thread) sends its share of the requests at their
// scheduled times, each a JSON Lines body of fresh events (unique IDs: nothing is a
// duplicate). Latency is measured from each request's *intended* send time, so a slow answer
// that delays the next request is counted against it too (no coordinated omission). Prints
// requests, events/s achieved, non-200 answers, and per-request p50/p99/p999 in ms.

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace {

using clock_type = std::chrono::steady_clock;

int connect_to(const std::string& host, int port) {
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<uint16_t>(port));
  if (::inet_pton(AF_INET, host.c_str(), &a.sin_addr) != 1) return -1;
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  const int one = 1;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
    ::close(fd);
    return -1;
  }
  return fd;
}

// Reads one HTTP response (Content-Length framed); its status, or -1.
int read_response(int fd, std::string& buf) {
  for (;;) {
    const auto head_end = buf.find("\r\n\r\n");
    if (head_end != std::string::npos) {
      const int status = std::atoi(buf.c_str() + 9);
      std::size_t length = 0;
      const auto cl = buf.find("Content-Length: ");
      if (cl != std::string::npos && cl < head_end) length = std::strtoull(buf.c_str() + cl + 16, nullptr, 10);
      if (buf.size() >= head_end + 4 + length) {
        buf.erase(0, head_end + 4 + length);
        return status;
      }
    }
    char tmp[65536];
    const ssize_t n = ::recv(fd, tmp, sizeof tmp, 0);
    if (n <= 0) return -1;
    buf.append(tmp, static_cast<std::size_t>(n));
  }
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 5) {
    std::fprintf(stderr, "usage: %s HOST:PORT RATE_REQUESTS_PER_S SECONDS EVENTS_PER_REQUEST [CONNECTIONS]\n", argv[0]);
    return 2;
  }
  const std::string address = argv[1];
  const auto colon = address.rfind(':');
  const std::string host = address.substr(0, colon);
  const int port = std::atoi(address.c_str() + colon + 1);
  const double rate = std::atof(argv[2]);
  const double seconds = std::atof(argv[3]);
  const int per = std::atoi(argv[4]);
  const int conns = argc > 5 ? std::atoi(argv[5]) : 8;
  if (rate <= 0 || seconds <= 0 || per <= 0 || conns <= 0) return 2;

  const auto t0 = clock_type::now() + std::chrono::milliseconds(100);
  const auto total = static_cast<uint64_t>(rate * seconds);
  std::mutex mu;
  std::vector<double> latencies_ms;
  std::atomic<uint64_t> not_ok{0}, sent{0};
  std::vector<std::thread> threads;
  for (int c = 0; c < conns; ++c) {
    threads.emplace_back([&, c] {
      const int fd = connect_to(host, port);
      if (fd < 0) {
        not_ok += total / static_cast<uint64_t>(conns);
        return;
      }
      std::vector<double> mine;
      std::string buf, body, request;
      for (uint64_t k = static_cast<uint64_t>(c); k < total; k += static_cast<uint64_t>(conns)) {
        // Request k is due at t0 + k / rate, whichever connection sends it.
        const auto due = t0 + std::chrono::duration_cast<clock_type::duration>(std::chrono::duration<double>(k / rate));
        std::this_thread::sleep_until(due);
        body.clear();
        for (int i = 0; i < per; ++i) {
          const uint64_t n = k * static_cast<uint64_t>(per) + static_cast<uint64_t>(i);
          body += "{\"event_id\":\"o" + std::to_string(n) + "\",\"booking_id\":\"bk-" + std::to_string(n % 100000) +
                  "\",\"type\":\"payment\",\"amount_cents\":100}\n";
        }
        request = "POST /events HTTP/1.1\r\nHost: " + address + "\r\nContent-Type: application/x-ndjson\r\n"
                  "Content-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body;
        if (::send(fd, request.data(), request.size(), MSG_NOSIGNAL) != static_cast<ssize_t>(request.size())) {
          ++not_ok;
          break;
        }
        const int status = read_response(fd, buf);
        mine.push_back(std::chrono::duration<double, std::milli>(clock_type::now() - due).count());
        ++sent;
        if (status != 200) ++not_ok;
        if (status < 0) break;
      }
      ::close(fd);
      std::lock_guard lock(mu);
      latencies_ms.insert(latencies_ms.end(), mine.begin(), mine.end());
    });
  }
  for (auto& t : threads) t.join();
  const double elapsed = std::chrono::duration<double>(clock_type::now() - t0).count();
  std::sort(latencies_ms.begin(), latencies_ms.end());
  auto pct = [&](double p) {
    return latencies_ms.empty() ? 0.0 : latencies_ms[std::min(latencies_ms.size() - 1, static_cast<std::size_t>(p * latencies_ms.size()))];
  };
  std::printf("requests %llu\nevents_per_s %.0f\nnot_200 %llu\np50_ms %.3f\np99_ms %.3f\np999_ms %.3f\n",
              static_cast<unsigned long long>(sent.load()), static_cast<double>(sent.load()) * per / elapsed,
              static_cast<unsigned long long>(not_ok.load()), pct(0.5), pct(0.99), pct(0.999));
  return not_ok.load() == 0 ? 0 : 1;
}
