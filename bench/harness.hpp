#pragma once

// A small benchmark harness: repeated runs, median and spread, a table on stdout and a JSON
// file. Every report states the core count, because on a 2-core machine that is the context
// every number needs.

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

namespace statefold::bench {

inline double now_seconds() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

struct sample_set {
  std::string name;
  std::string unit;
  std::vector<double> values;

  double median() const {
    std::vector<double> v = values;
    std::sort(v.begin(), v.end());
    if (v.empty()) return 0;
    return v.size() % 2 ? v[v.size() / 2] : (v[v.size() / 2 - 1] + v[v.size() / 2]) / 2;
  }
  double min() const { return values.empty() ? 0 : *std::min_element(values.begin(), values.end()); }
  double max() const { return values.empty() ? 0 : *std::max_element(values.begin(), values.end()); }
};

class report {
 public:
  explicit report(std::string title) : title_(std::move(title)) {}

  sample_set& series(const std::string& name, const std::string& unit) {
    for (auto& s : sets_)
      if (s.name == name) return s;
    sets_.push_back({name, unit, {}});
    return sets_.back();
  }
  void note(std::string line) { notes_.push_back(std::move(line)); }
  void ratio(std::string name, const std::string& of, const std::string& against) {
    ratios_.push_back({std::move(name), of, against});
  }

  void print() const {
    std::printf("\n%s — %u cores\n", title_.c_str(), std::thread::hardware_concurrency());
    std::printf("%-52s %14s %14s %14s  %s\n", "measurement", "median", "min", "max", "unit");
    for (const auto& s : sets_)
      std::printf("%-52s %14.4g %14.4g %14.4g  %s (n=%zu)\n", s.name.c_str(), s.median(), s.min(),
                  s.max(), s.unit.c_str(), s.values.size());
    for (const auto& r : ratios_) {
      const sample_set* a = find(r.of);
      const sample_set* b = find(r.against);
      if (a && b && b->median() > 0)
        std::printf("%-52s %14.2f  (%s / %s, medians)\n", r.name.c_str(), a->median() / b->median(),
                    r.of.c_str(), r.against.c_str());
    }
    for (const auto& n : notes_) std::printf("  note: %s\n", n.c_str());
  }

  void write_json(const std::string& path) const {
    std::ofstream out(path);
    out << "{\n  \"title\": \"" << title_ << "\",\n  \"cores\": "
        << std::thread::hardware_concurrency() << ",\n  \"series\": [\n";
    for (std::size_t i = 0; i < sets_.size(); ++i) {
      const auto& s = sets_[i];
      out << "    {\"name\": \"" << s.name << "\", \"unit\": \"" << s.unit
          << "\", \"median\": " << s.median() << ", \"min\": " << s.min() << ", \"max\": " << s.max()
          << ", \"values\": [";
      for (std::size_t j = 0; j < s.values.size(); ++j) out << (j ? ", " : "") << s.values[j];
      out << "]}" << (i + 1 < sets_.size() ? "," : "") << "\n";
    }
    out << "  ],\n  \"ratios\": [\n";
    for (std::size_t i = 0; i < ratios_.size(); ++i) {
      const sample_set* a = find(ratios_[i].of);
      const sample_set* b = find(ratios_[i].against);
      double v = (a && b && b->median() > 0) ? a->median() / b->median() : 0;
      out << "    {\"name\": \"" << ratios_[i].name << "\", \"value\": " << v << "}"
          << (i + 1 < ratios_.size() ? "," : "") << "\n";
    }
    out << "  ]\n}\n";
  }

 private:
  struct ratio_def {
    std::string name, of, against;
  };
  const sample_set* find(const std::string& n) const {
    for (const auto& s : sets_)
      if (s.name == n) return &s;
    return nullptr;
  }
  std::string title_;
  std::vector<sample_set> sets_;
  std::vector<ratio_def> ratios_;
  std::vector<std::string> notes_;
};

}  // namespace statefold::bench
