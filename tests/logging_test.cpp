// statefold::make_stderr_logger's JSON lines: every line parses (nlohmann::json as the
// independent parser), fields appear only on the line logged with them, and text that is not
// UTF-8 or holds control characters still makes valid JSON.

#include <gtest/gtest.h>
#include <unistd.h>

#include <nlohmann/json.hpp>
#include <sstream>
#include <string>

#include "statefold/log.hpp"
#include "statefold/testing/temp_dir.hpp"

namespace statefold {
namespace {

// Runs `body` with stderr redirected to a file; returns what was written.
template <class F>
std::string captured_stderr(F body) {
  testing::temp_dir t;
  const std::string file = t / "err";
  std::fflush(stderr);
  const int saved = ::dup(2);
  FILE* f = std::fopen(file.c_str(), "w");
  ::dup2(::fileno(f), 2);
  body();
  std::fflush(stderr);
  ::dup2(saved, 2);
  ::close(saved);
  std::fclose(f);
  return testing::read_bytes(file);
}

TEST(Logging, JsonLinesParseAndCarryTheirFields) {
  const std::string out = captured_stderr([] {
    auto log = make_stderr_logger("statefold", log_style::json);
    log_with(*log, spdlog::level::warn, {.partition = 7, .lsn = 1200, .session = "s\"1"},
             "partition {}: checkpoint at LSN {} failed", 7, 1200);
    log->info("no fields: {}", std::string("bad \xff\xfe utf-8, \x01 control, \xed\xa0\x80 surrogate, \"quoted\"\n"));
    log_with(*log, spdlog::level::err, {.source = "in.jsonl", .line = 3}, "{}", "caf\xc3\xa9 \xf0\x9f\x8e\xab");
  });
  std::istringstream in(out);
  std::vector<nlohmann::json> lines;
  for (std::string line; std::getline(in, line);) {
    auto j = nlohmann::json::parse(line, nullptr, false);
    ASSERT_FALSE(j.is_discarded()) << line;
    lines.push_back(std::move(j));
  }
  ASSERT_EQ(lines.size(), 3u) << out;
  EXPECT_EQ(lines[0]["level"], "warning");
  EXPECT_EQ(lines[0]["logger"], "statefold");
  EXPECT_EQ(lines[0]["msg"], "partition 7: checkpoint at LSN 1200 failed");
  EXPECT_EQ(lines[0]["partition"], 7);
  EXPECT_EQ(lines[0]["lsn"], 1200);
  EXPECT_EQ(lines[0]["session"], "s\"1");
  EXPECT_EQ(lines[0].count("source"), 0u);
  EXPECT_EQ(lines[1].count("partition"), 0u) << "a field leaked to the next line";
  EXPECT_EQ(lines[1]["msg"],
            "no fields: bad \xef\xbf\xbd\xef\xbf\xbd utf-8, \x01 control, \xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd "
            "surrogate, \"quoted\"\n");
  EXPECT_EQ(lines[2]["msg"], "caf\xc3\xa9 \xf0\x9f\x8e\xab");  // valid UTF-8 passes as is
  EXPECT_EQ(lines[2]["line"], 3);
  EXPECT_EQ(lines[2]["source"], "in.jsonl");
  const std::string time = lines[2]["time"];
  EXPECT_EQ(time.size(), 24u) << time;  // 2026-12-05T13:06:42.123Z
  EXPECT_EQ(time.back(), 'Z');
}

TEST(Logging, TextLeavesTheFieldsToTheMessage) {
  const std::string out = captured_stderr([] {
    auto log = make_stderr_logger("statefold", log_style::text);
    log_with(*log, spdlog::level::info, {.partition = 2}, "partition {} restarted", 2);
  });
  EXPECT_NE(out.find("] info partition 2 restarted\n"), std::string::npos) << out;
  EXPECT_EQ(out.find('{'), std::string::npos) << out;
}

TEST(Logging, TheStyleIsParsedStrictly) {
  EXPECT_EQ(parse_log_style("json"), log_style::json);
  EXPECT_EQ(parse_log_style("text"), log_style::text);
  EXPECT_FALSE(parse_log_style("JSON"));
  EXPECT_FALSE(parse_log_style(""));
}

}  // namespace
}  // namespace statefold
