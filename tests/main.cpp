// The doctest runner for lory_tests: every tests/test_*.cpp links against this
// main. ctest runs one TEST_CASE per process (doctest_discover_tests in
// CMakeLists.txt); run build/bin/lory_tests directly to run them all at once,
// or with --test-case="<name>" for one.
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include <doctest/doctest.h>
