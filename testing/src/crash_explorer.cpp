#include "statefold/testing/crash_explorer.hpp"

#include <unistd.h>

#include <cstdio>
#include <cstdlib>

namespace statefold::testing {

std::string crash_report::summary() const {
  std::string s = name + ": crash points: " + std::to_string(operations) + " operations (" +
                  std::to_string(applied) + " events applied, LSN " + std::to_string(acknowledged) +
                  " acknowledged), " + std::to_string(cycles) + " crash-and-recover cycles, " +
                  std::to_string(failures.size()) + " failures";
  if (cycles == 0) s += " (nothing explored: the workload did no I/O, or STATEFOLD_CRASH_CASE matched no case)";
  // The first few in full (each names its case and how to replay it); the rest counted.
  constexpr std::size_t shown = 10;
  for (std::size_t i = 0; i < failures.size() && i < shown; ++i) s += "\n- " + failures[i];
  if (failures.size() > shown) s += "\n- ... and " + std::to_string(failures.size() - shown) + " more";
  return s;
}

std::ostream& operator<<(std::ostream& os, const crash_report& r) { return os << r.summary(); }

namespace detail {

std::optional<crash_case> crash_case_from_env() {
  const char* v = std::getenv("STATEFOLD_CRASH_CASE");
  if (!v || !*v) return std::nullopt;
  const std::string s(v);
  const auto colon = s.find(':');
  crash_case c;
  const std::string flavour = s.substr(0, colon);
  char* end = nullptr;
  const std::string number = colon == std::string::npos ? "" : s.substr(colon + 1);
  c.operation = std::strtoull(number.c_str(), &end, 10);
  if ((flavour != "power_loss" && flavour != "process_crash") || number.empty() || *end != '\0') {
    std::fprintf(stderr,
                 "STATEFOLD_CRASH_CASE='%s': expected power_loss:<operation> or "
                 "process_crash:<operation>\n",
                 v);
    std::abort();
  }
  c.power_loss = flavour == "power_loss";
  return c;
}

std::string replay_line(const std::string& name, bool power_loss, uint64_t operation) {
  std::string exe = "<your test program>";
  char buf[4096];
  if (const ssize_t n = ::readlink("/proc/self/exe", buf, sizeof buf - 1); n > 0) exe.assign(buf, static_cast<std::size_t>(n));
  return std::string("STATEFOLD_CRASH_CASE=") + (power_loss ? "power_loss:" : "process_crash:") +
         std::to_string(operation) + " " + exe + " --gtest_filter='" + name + "'";
}

}  // namespace detail
}  // namespace statefold::testing
