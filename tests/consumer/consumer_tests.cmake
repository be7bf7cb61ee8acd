# Downstream-consumer tests: build tests/consumer against statefold
#   - consumer_find_package:      install ${CMAKE_BINARY_DIR} to a temporary prefix
#                                 and use find_package(statefold)
#   - consumer_add_subdirectory:  add_subdirectory() of the statefold source tree
# Include from tests/CMakeLists.txt: include(consumer/consumer_tests.cmake)
# They run the statefold build's install step, so they run after the main build
# (ctest is run after cmake --build); they configure whole CMake projects, hence
# the long TIMEOUT. Select or skip them with ctest -L consumer / -LE consumer.

find_program(STATEFOLD_BASH bash REQUIRED)
set(_consumer_script ${CMAKE_CURRENT_LIST_DIR}/run_consumer_test.sh)

add_test(NAME consumer_find_package
  COMMAND ${STATEFOLD_BASH} ${_consumer_script}
          ${PROJECT_SOURCE_DIR} ${CMAKE_BINARY_DIR} find_package)
add_test(NAME consumer_add_subdirectory
  COMMAND ${STATEFOLD_BASH} ${_consumer_script}
          ${PROJECT_SOURCE_DIR} ${CMAKE_BINARY_DIR} subdirectory)

set_tests_properties(consumer_find_package consumer_add_subdirectory PROPERTIES
  TIMEOUT 300
  LABELS consumer
  # Both configure and build whole projects: don't run them side by side
  # with each other on a small machine.
  RESOURCE_LOCK statefold_consumer)
unset(_consumer_script)
