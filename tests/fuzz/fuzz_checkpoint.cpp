// Fuzz target: the checkpoint decoder. The input is a checkpoint file's content; the CRC check
// passes in this build (STATEFOLD_FUZZING), so the fuzzer reaches the body parser. When the
// decode succeeds, every entity's state is decoded with the ledger model (statefold/testing/ledger_model.hpp) and
// the booking model (apps/booking), and each decoded state must survive a re-encoding.

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "booking_model.hpp"
#include "fuzz_common.hpp"
#include "statefold/checkpoint.hpp"
#include "statefold/testing/ledger_model.hpp"
#include "statefold/testing/temp_dir.hpp"

using namespace statefold;
using statefold::fuzz::touch;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, std::size_t size) {
  std::string bytes(reinterpret_cast<const char*>(data), size);
  auto c = decode_checkpoint(std::move(bytes), "fuzz.ckpt", 0);
  if (!c) {
    const errc code = c.error().code();
    FUZZ_CHECK(code == errc::corruption || code == errc::unsupported,
               "decode_checkpoint: unexpected error " + c.error().to_string());
    FUZZ_CHECK(!c.error().message().empty(), "decode_checkpoint: error without a message");
    return 0;
  }
  FUZZ_CHECK(c->bytes.size() == size, "decode_checkpoint: bytes changed size");
  const char* lo = c->bytes.data();
  const char* hi = lo + c->bytes.size();
  auto inside = [&](std::string_view v) {
    return v.empty() || (v.data() >= lo && v.data() + v.size() <= hi);
  };
  for (const auto& [name, offset] : c->sources) touch(name);
  for (const auto& [key, state] : c->entities) {
    FUZZ_CHECK(inside(key) && inside(state), "entity view outside the checkpoint bytes");
    touch(key);
    touch(state);

    testing::ledger_state l;
    if (testing::ledger_model::decode_state(state, l)) {
      std::string re;
      testing::ledger_model::encode_state(l, re);
      testing::ledger_state back;
      FUZZ_CHECK(testing::ledger_model::decode_state(re, back) && back == l,
                 "ledger state round trip differs");
    }
    booking::state b;
    if (booking::model::decode_state(state, b))
      fuzz::check_booking_state_round_trip(b, "checkpoint booking state");
  }
  return 0;
}
