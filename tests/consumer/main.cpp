// Downstream smoke test: compiles against statefold's public headers and links
// statefold::runtime (see CMakeLists.txt beside this file).
#include <statefold/partitioner.hpp>

int main() {
  statefold::partitioner p(4, 4096);
  return p.partition_of("booking-1") < 4 ? 0 : 1;
}
