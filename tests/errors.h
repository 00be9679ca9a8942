// errors.h — what an error says, for the tests that check it: the message of
// the lory::Error a call throws.
#pragma once

#include <string>

#include "tensor/error.h"

namespace lory::test {

// The message of the lory::Error that fn() throws, or "no error" when it
// returns (which no expected message equals or contains).
template <typename Fn>
std::string error_of(Fn&& fn) {
  try {
    fn();
  } catch (const Error& e) {
    return e.what();
  }
  return "no error";
}

}  // namespace lory::test
